#!/usr/bin/env bash
# The main job on the local test environment: shipit build --push of the
# example app. Run `make demo` (it starts the environment first).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck disable=SC1091
. "$repo/.testenv/env"
cd "$repo/examples/app"
# The web image reads this through a secret mount; it never reaches the image.
export DEMO_API_TOKEN=${DEMO_API_TOKEN:-demo-token-$RANDOM$RANDOM}
echo "shipit build --push (examples/app, BuildKit at $BUILDKIT_HOST):" >&2
"$repo/bin/shipit" build --push --progress plain
echo "pushed; the daemon and registry keep running: stop them with 'make testenv-down'" >&2
