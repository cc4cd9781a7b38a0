#!/usr/bin/env bash
# The npm tools the pipeline tests run init's pipelines against, pinned by
# ci/npm/package-lock.json: gitlab-ci-local 4.60.1 (the newest that runs on
# Node 20; it needs rsync) and CircleCI's config parser and SDK.
#
#   ci/npm.sh    install them (npm ci, no install scripts) into
#                ~/.cache/shipit/npm/<sha256 of the lockfile>, once per
#                lockfile; print that directory
#
# ci/testenv.sh up calls it and writes the tools' paths into .testenv/env.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
log() { printf 'npm: %s\n' "$*" >&2; }

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
	log "node and npm are needed (Node 20): apt-get install nodejs npm"
	exit 1
fi
if ! command -v rsync >/dev/null; then
	log "installing rsync from Debian (gitlab-ci-local copies the checkout with it)"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends rsync >/dev/null
fi

lock="$repo/ci/npm/package-lock.json"
key=$(sha256sum "$lock" | cut -c1-16)
dir="${XDG_CACHE_HOME:-$HOME/.cache}/shipit/npm/$key"
if [ ! -f "$dir/node_modules/re2/build/Release/re2.node" ] || [ ! -x "$dir/node_modules/.bin/gitlab-ci-local" ]; then
	log "installing the CI checkers (ci/npm/package-lock.json) into $dir"
	tmp="$dir.tmp.$$"
	rm -rf "$tmp"
	mkdir -p "$tmp"
	cp "$repo/ci/npm/package.json" "$lock" "$tmp/"
	# --ignore-scripts: no package runs code at install, but for re2
	# (gitlab-ci-local needs it), built from its source with node-gyp
	# against the installed node's headers: its install script would fetch
	# a prebuilt binary from GitHub. Slow once (minutes), then cached.
	(cd "$tmp" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2)
	(cd "$tmp" && RE2_DOWNLOAD_SKIP_PATH=1 RE2_DOWNLOAD_SKIP_VER=1 npm_config_nodedir="$(dirname "$(dirname "$(command -v node)")")" \
		npm rebuild re2 --no-audit --no-fund --loglevel=error >&2)
	[ -f "$tmp/node_modules/re2/build/Release/re2.node" ] || { log "re2 did not build (g++, make and python3 are needed)"; exit 1; }
	rm -rf "$dir"
	mv "$tmp" "$dir"
fi
echo "$dir"
