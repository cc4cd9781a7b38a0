#!/usr/bin/env bash
# The whole suite, from a fresh machine: start the test environment (real
# buildkitd and registries), lint, run every test, stop the environment.
set -euo pipefail
cd "$(dirname "$0")/.."
export CI=${CI:-true} # a missing daemon is a failure here, never a skip

ci/testenv.sh up
trap 'ci/cluster.sh down; ci/testenv.sh down' EXIT
# shellcheck disable=SC1091
. .testenv/env
# The Kubernetes control plane and Argo CD for the --wait tests.
ci/cluster.sh up
export SHIPIT_TEST_KUBECONFIG="$PWD/.testenv/kubeconfig"

ci/lint.sh
go test -count=1 -timeout 20m ./...
ci/fuzz.sh
