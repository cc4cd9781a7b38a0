#!/usr/bin/env bash
# The test environment: a real BuildKit daemon and real registries on this
# machine, set up from nothing on a fresh Debian machine.
#
#   ci/testenv.sh up     install what is missing, build buildkitd (pinned in
#                        go.mod), start buildkitd and two registries, make
#                        the busybox base image; writes .testenv/env
#   ci/testenv.sh down   stop them
#
# Everything lives under .testenv/ in the repository: a private BuildKit
# socket and state directory, and registries on loopback ports.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
state="$repo/.testenv"
bin="$repo/bin"
REGISTRY_PORT=${SHIPIT_TEST_REGISTRY_PORT:-5055}
AUTH_REGISTRY_PORT=${SHIPIT_TEST_AUTH_REGISTRY_PORT:-5056}

log() { printf 'testenv: %s\n' "$*" >&2; }

need_root() {
	if [ "$(id -u)" != 0 ]; then
		log "buildkitd with the OCI worker needs root here (namespaces, overlayfs); run as root"
		exit 1
	fi
}

install_packages() {
	local missing=()
	command -v runc >/dev/null || missing+=(runc)
	command -v docker-registry >/dev/null || missing+=(docker-registry)
	[ -x /bin/busybox ] || missing+=(busybox-static)
	command -v htpasswd >/dev/null || missing+=(apache2-utils)
	command -v git >/dev/null || missing+=(git)
	command -v curl >/dev/null || missing+=(curl)
	if [ ${#missing[@]} -gt 0 ]; then
		log "installing ${missing[*]} from Debian"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq
		apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	fi
	# The Debian package starts a registry of its own on :5000; we run ours.
	if command -v systemctl >/dev/null && systemctl is-active --quiet docker-registry 2>/dev/null; then
		systemctl stop docker-registry || true
	fi
}

build_tools() {
	mkdir -p "$bin"
	cd "$repo"
	log "building buildkitd and buildctl (the versions pinned in go.mod)"
	go build -o "$bin/buildkitd" github.com/moby/buildkit/cmd/buildkitd
	go build -o "$bin/buildctl" github.com/moby/buildkit/cmd/buildctl
	go build -o "$bin/shipit-testenv" ./ci/testenv
}

wait_for() { # what, command...
	local what=$1; shift
	for _ in $(seq 1 100); do
		if "$@" >/dev/null 2>&1; then return 0; fi
		sleep 0.1
	done
	log "$what did not come up; its log:"
	cat "$state/$what.log" >&2 || true
	exit 1
}

start_registry() { # name port [htpasswd]
	local name=$1 port=$2 htpasswd=${3:-}
	mkdir -p "$state/$name"
	{
		echo "version: 0.1"
		echo "log: {level: warn}"
		echo "storage: {filesystem: {rootdirectory: $state/$name/data}, delete: {enabled: true}}"
		echo "http: {addr: 127.0.0.1:$port}"
		if [ -n "$htpasswd" ]; then
			echo "auth: {htpasswd: {realm: shipit-test, path: $htpasswd}}"
		fi
	} >"$state/$name/config.yml"
	docker-registry serve "$state/$name/config.yml" >"$state/$name.log" 2>&1 &
	echo $! >"$state/$name.pid"
	wait_for "$name" curl -fsS -o /dev/null -w '' "http://127.0.0.1:$port/v2/" --user "shipit:$(cat "$state/auth/password" 2>/dev/null || true)"
}

up() {
	need_root
	down quiet
	install_packages
	build_tools
	mkdir -p "$state/auth"
	# A registry that, like ECR, answers 401 without credentials.
	head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$state/auth/password"
	htpasswd -Bbn shipit "$(cat "$state/auth/password")" >"$state/auth/htpasswd"

	start_registry registry "$REGISTRY_PORT"
	start_registry auth-registry "$AUTH_REGISTRY_PORT" "$state/auth/htpasswd"

	cat >"$state/buildkitd.toml" <<TOML
[registry."127.0.0.1:$REGISTRY_PORT"]
  http = true
[registry."127.0.0.1:$AUTH_REGISTRY_PORT"]
  http = true
TOML
	mkdir -p "$state/buildkit"
	"$bin/buildkitd" --config "$state/buildkitd.toml" --root "$state/buildkit" \
		--addr "unix://$state/buildkitd.sock" --oci-worker=true --containerd-worker=false \
		>"$state/buildkitd.log" 2>&1 &
	echo $! >"$state/buildkitd.pid"
	wait_for buildkitd "$bin/buildctl" --addr "unix://$state/buildkitd.sock" debug workers

	local base="127.0.0.1:$REGISTRY_PORT/base/busybox:1"
	"$bin/shipit-testenv" base --busybox /bin/busybox --ref "$base"

	cat >"$state/env" <<ENV
export BUILDKIT_HOST=unix://$state/buildkitd.sock
export SHIPIT_TEST_BUILDKITD=$bin/buildkitd
export SHIPIT_TEST_BUILDCTL=$bin/buildctl
export SHIPIT_TEST_BUILDKITD_CONFIG=$state/buildkitd.toml
export SHIPIT_TEST_REGISTRY=127.0.0.1:$REGISTRY_PORT
export SHIPIT_TEST_AUTH_REGISTRY=127.0.0.1:$AUTH_REGISTRY_PORT
export SHIPIT_TEST_AUTH_USER=shipit
export SHIPIT_TEST_AUTH_PASSWORD_FILE=$state/auth/password
export SHIPIT_TEST_BASE=$base
ENV
	log "up: source $state/env"
}

down() {
	for name in buildkitd registry auth-registry; do
		if [ -f "$state/$name.pid" ]; then
			kill "$(cat "$state/$name.pid")" 2>/dev/null || true
			rm -f "$state/$name.pid"
		fi
	done
	# buildkitd leaves its runc state and mounts behind when killed mid-build.
	if [ -d "$state/buildkit" ]; then
		grep -o " $state/buildkit[^ ]*" /proc/mounts 2>/dev/null | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
	fi
	[ "${1:-}" = quiet ] || log "down"
}

case "${1:-}" in
up) up ;;
down) down ;;
*)
	echo "usage: $0 up|down" >&2
	exit 2
	;;
esac
