#!/usr/bin/env bash
# The test environment: a real BuildKit daemon and real registries on this
# machine, set up from nothing on a fresh Debian machine.
#
#   ci/testenv.sh up     install what is missing, build buildkitd (pinned in
#                        go.mod), start buildkitd and the registries, make
#                        the busybox base images; set up QEMU for arm64
#                        (binfmt_misc) and start two more daemons, the
#                        nodes of a multi-node builder; build the SBOM
#                        scanner (tools/sbom-scanner) into an image; install
#                        the npm CI checkers (ci/npm.sh); build cosign's CLI
#                        (tools/cosign, the signatures' oracle, cached);
#                        writes .testenv/env
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
ECR_PORT=${SHIPIT_TEST_ECR_PORT:-5057}
# A registry named like Amazon ECR, on loopback (an /etc/hosts entry), with
# TLS and htpasswd: the ECR tests' stand-in API issues tokens it accepts.
ECR_HOST=210987654321.dkr.ecr.us-east-1.amazonaws.com
HOSTS_MARK="# shipit-testenv"
# The tests' oracles and checkers (cosign's CLI, the SBOM scanner image,
# the npm CI checkers) take minutes to build on a fresh machine; `make
# demo` needs none of them (SHIPIT_TESTENV_ORACLES=0). The tests need
# them all: under CI=true a missing one fails its test.
ORACLES=${SHIPIT_TESTENV_ORACLES:-1}
COSIGN="" scanner="" npm_dir=""

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
	command -v openssl >/dev/null || missing+=(openssl)
	[ -e /usr/lib/binfmt.d/qemu-aarch64.conf ] || missing+=(qemu-user-static)
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

# arm64 runs here through QEMU: Debian's qemu-user-static, registered with
# the kernel's binfmt_misc (flag F: the interpreter is opened now, so it
# works inside BuildKit's containers too).
setup_qemu() {
	if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
		mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
	fi
	if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
		cat /usr/lib/binfmt.d/qemu-aarch64.conf >/proc/sys/fs/binfmt_misc/register
	fi
}

# arm64_busybox fetches Debian's busybox-static for arm64 (not installed:
# only its binary is used, in the arm64 half of the test base image).
arm64_busybox() {
	local d="$state/arm64"
	if [ ! -x "$d/bin/busybox" ]; then
		dpkg --print-foreign-architectures | grep -qx arm64 || { dpkg --add-architecture arm64 && apt-get update -qq; }
		mkdir -p "$d"
		(cd "$d" && apt-get download -qq busybox-static:arm64 2>/dev/null && dpkg-deb -x busybox-static_*_arm64.deb . && rm -f busybox-static_*_arm64.deb)
	fi
	echo "$d/bin/busybox"
}

build_tools() {
	mkdir -p "$bin"
	cd "$repo"
	log "building buildkitd and buildctl (the versions pinned in go.mod)"
	local v
	v=$(go list -m -f '{{.Version}}' github.com/moby/buildkit)
	go build -ldflags "-X github.com/moby/buildkit/version.Version=$v" -o "$bin/buildkitd" github.com/moby/buildkit/cmd/buildkitd
	go build -ldflags "-X github.com/moby/buildkit/version.Version=$v" -o "$bin/buildctl" github.com/moby/buildkit/cmd/buildctl
	go build -o "$bin/shipit-testenv" ./ci/testenv
	if [ "$ORACLES" = 1 ]; then build_cosign; fi
}

# cosign v2.6.5's CLI, the tests' oracle for shipit's signatures, pinned
# by tools/cosign/go.mod. Cold it builds for minutes, so, like the cluster
# binaries, it is kept outside the work tree per go.sum
# (SHIPIT_COSIGN_BIN overrides the directory).
build_cosign() {
	local sum dir
	sum=$(sha256sum "$repo/tools/cosign/go.sum" | cut -c1-12)
	dir=${SHIPIT_COSIGN_BIN:-${XDG_CACHE_HOME:-$HOME/.cache}/shipit/cosign-$sum}
	if [ ! -x "$dir/cosign" ]; then
		log "building cosign (tools/cosign/go.mod) into $dir: minutes, once"
		mkdir -p "$dir"
		(cd "$repo/tools/cosign" && go build -o "$dir/cosign.new" github.com/sigstore/cosign/v2/cmd/cosign)
		mv "$dir/cosign.new" "$dir/cosign"
	fi
	COSIGN="$dir/cosign"
}

# build_scanner builds the SBOM scanner (tools/sbom-scanner, the syft
# library following BuildKit's scanner protocol): about 200 s cold, so the
# binary is kept outside the work tree, keyed by its module's sources.
build_scanner() {
	local d="$repo/tools/sbom-scanner" sum cache
	sum=$(cat "$d/go.mod" "$d/go.sum" "$d"/*.go | sha256sum | cut -c1-16)
	cache=${XDG_CACHE_HOME:-$HOME/.cache}/shipit/sbom-scanner-$sum
	if [ ! -x "$cache/sbom-scanner" ]; then
		log "building the SBOM scanner (syft; about 200 s cold, kept in $cache)"
		mkdir -p "$cache"
		(cd "$d" && GOTOOLCHAIN=local CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$cache/sbom-scanner.tmp" .)
		mv "$cache/sbom-scanner.tmp" "$cache/sbom-scanner"
	fi
	echo "$cache/sbom-scanner"
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

start_registry() { # name port [htpasswd [tls-dir user]]
	local name=$1 port=$2 htpasswd=${3:-} tls=${4:-} user=${5:-shipit}
	mkdir -p "$state/$name"
	{
		echo "version: 0.1"
		echo "log: {level: warn}"
		echo "storage: {filesystem: {rootdirectory: $state/$name/data}, delete: {enabled: true}}"
		if [ -n "$tls" ]; then
			echo "http: {addr: 127.0.0.1:$port, tls: {certificate: $tls/server.pem, key: $tls/server-key.pem}}"
		else
			echo "http: {addr: 127.0.0.1:$port}"
		fi
		if [ -n "$htpasswd" ]; then
			echo "auth: {htpasswd: {realm: shipit-test, path: $htpasswd}}"
		fi
	} >"$state/$name/config.yml"
	docker-registry serve "$state/$name/config.yml" >"$state/$name.log" 2>&1 &
	echo $! >"$state/$name.pid"
	if [ -n "$tls" ]; then
		wait_for "$name" curl -fsS -o /dev/null --cacert "$tls/ca.pem" --resolve "$ECR_HOST:$port:127.0.0.1" \
			"https://$ECR_HOST:$port/v2/" --user "$user:$(cat "$tls/password")"
	else
		wait_for "$name" curl -fsS -o /dev/null "http://127.0.0.1:$port/v2/" --user "shipit:$(cat "$state/auth/password" 2>/dev/null || true)"
	fi
}

# make_ecr_tls writes a CA and a server certificate for $ECR_HOST.
make_ecr_tls() {
	local d=$1
	mkdir -p "$d"
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=shipit-test-ca" \
		-keyout "$d/ca-key.pem" -out "$d/ca.pem" 2>/dev/null
	openssl req -newkey rsa:2048 -nodes -subj "/CN=$ECR_HOST" \
		-keyout "$d/server-key.pem" -out "$d/server.csr" 2>/dev/null
	printf 'subjectAltName=DNS:%s\nextendedKeyUsage=serverAuth\n' "$ECR_HOST" >"$d/ext.cnf"
	openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca-key.pem" -CAcreateserial \
		-days 2 -extfile "$d/ext.cnf" -out "$d/server.pem" 2>/dev/null
}

hosts_add() {
	grep -q "$HOSTS_MARK" /etc/hosts || echo "127.0.0.1 $ECR_HOST $HOSTS_MARK" >>/etc/hosts
}

hosts_remove() {
	if grep -q "$HOSTS_MARK" /etc/hosts 2>/dev/null; then
		# /etc/hosts may be a bind mount: rewrite it in place rather than replace it.
		local kept
		kept=$(grep -v "$HOSTS_MARK" /etc/hosts)
		printf '%s\n' "$kept" >/etc/hosts
	fi
}

up() {
	need_root
	down quiet
	install_packages
	build_tools
	local scanner_bin=""
	if [ "$ORACLES" = 1 ]; then
		scanner_bin=$(build_scanner)
		# The CI checkers the pipeline tests run init's pipelines against
		# (gitlab-ci-local, CircleCI's config parser): npm, cached by lockfile.
		npm_dir=$("$repo/ci/npm.sh")
	fi
	mkdir -p "$state/auth"
	# A registry that, like ECR, answers 401 without credentials.
	head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$state/auth/password"
	htpasswd -Bbn shipit "$(cat "$state/auth/password")" >"$state/auth/htpasswd"

	start_registry registry "$REGISTRY_PORT"
	start_registry auth-registry "$AUTH_REGISTRY_PORT" "$state/auth/htpasswd"

	make_ecr_tls "$state/ecr"
	head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$state/ecr/password"
	htpasswd -Bbn AWS "$(cat "$state/ecr/password")" >"$state/ecr/htpasswd"
	hosts_add
	start_registry ecr-registry "$ECR_PORT" "$state/ecr/htpasswd" "$state/ecr" AWS

	cat >"$state/buildkitd.toml" <<TOML
[registry."127.0.0.1:$REGISTRY_PORT"]
  http = true
[registry."127.0.0.1:$AUTH_REGISTRY_PORT"]
  http = true
[registry."$ECR_HOST:$ECR_PORT"]
  ca = ["$state/ecr/ca.pem"]
TOML
	mkdir -p "$state/buildkit"
	"$bin/buildkitd" --config "$state/buildkitd.toml" --root "$state/buildkit" \
		--addr "unix://$state/buildkitd.sock" --oci-worker=true --containerd-worker=false \
		>"$state/buildkitd.log" 2>&1 &
	echo $! >"$state/buildkitd.pid"
	wait_for buildkitd "$bin/buildctl" --addr "unix://$state/buildkitd.sock" debug workers

	local base="127.0.0.1:$REGISTRY_PORT/base/busybox:1"
	"$bin/shipit-testenv" base --busybox /bin/busybox --ref "$base"
	# An SBOM generator image for attest.sbomGenerator: BuildKit's default
	# (docker/buildkit-syft-scanner) cannot be pulled here.
	if [ -n "$scanner_bin" ]; then
		scanner="127.0.0.1:$REGISTRY_PORT/base/sbom-scanner:1"
		"$bin/shipit-testenv" scanner --busybox /bin/busybox --scanner "$scanner_bin" --ref "$scanner" >/dev/null
	fi

	# A multi-node builder: two more daemons, each with its own state and
	# socket (the tests declare one amd64 and one arm64), and a base image
	# for both platforms.
	setup_qemu
	local multi="127.0.0.1:$REGISTRY_PORT/base/busybox-multi:1"
	"$bin/shipit-testenv" base --busybox /bin/busybox --arm64 "$(arm64_busybox)" --ref "$multi" >/dev/null
	for node in amd64 arm64; do
		mkdir -p "$state/buildkit-$node"
		"$bin/buildkitd" --config "$state/buildkitd.toml" --root "$state/buildkit-$node" \
			--addr "unix://$state/buildkitd-$node.sock" --oci-worker=true --containerd-worker=false \
			>"$state/buildkitd-$node.log" 2>&1 &
		echo $! >"$state/buildkitd-$node.pid"
		wait_for "buildkitd-$node" "$bin/buildctl" --addr "unix://$state/buildkitd-$node.sock" debug workers
	done

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
export SHIPIT_TEST_BASE_MULTI=$multi
export SHIPIT_TEST_SBOM_GENERATOR=$scanner
export SHIPIT_TEST_NODE_AMD64=unix://$state/buildkitd-amd64.sock
export SHIPIT_TEST_NODE_ARM64=unix://$state/buildkitd-arm64.sock
export SHIPIT_TEST_ECR_REGISTRY=$ECR_HOST:$ECR_PORT
export SHIPIT_TEST_ECR_CA=$state/ecr/ca.pem
export SHIPIT_TEST_ECR_PASSWORD_FILE=$state/ecr/password
export SHIPIT_TEST_GITLAB_CI_LOCAL=${npm_dir:+$npm_dir/node_modules/.bin/gitlab-ci-local}
export SHIPIT_TEST_NODE_MODULES=${npm_dir:+$npm_dir/node_modules}
export SHIPIT_TEST_COSIGN=$COSIGN
ENV
	log "up: source $state/env"
}

down() {
	for name in buildkitd buildkitd-amd64 buildkitd-arm64 registry auth-registry ecr-registry; do
		if [ -f "$state/$name.pid" ]; then
			kill "$(cat "$state/$name.pid")" 2>/dev/null || true
			rm -f "$state/$name.pid"
		fi
	done
	# buildkitd leaves its runc state and mounts behind when killed mid-build.
	grep -o " $state/buildkit[^ ]*" /proc/mounts 2>/dev/null | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
	hosts_remove
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
