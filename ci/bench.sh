#!/usr/bin/env bash
# Benchmarks shipit build against buildctl on the same daemon and registry,
# side by side in one run, alternating the two so that neither gets a
# warmer machine. Needs the test environment: it starts it when it is not up.
#
#   ci/bench.sh            # N=15 rounds
#   N=40 ci/bench.sh
#
# Prints medians and the ratio shipit/buildctl, and the time shipit takes
# from process start to its first solve request.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
N=${N:-15}
if [ ! -S "$repo/.testenv/buildkitd.sock" ]; then "$repo/ci/testenv.sh" up; fi
# shellcheck disable=SC1091
. "$repo/.testenv/env"
(cd "$repo" && go build -o bin/shipit ./cmd/shipit)
shipit="$repo/bin/shipit"
buildctl="$repo/bin/buildctl"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r "$repo/examples/app/." "$work/"
rm -rf "$work/.shipit"
sed -i "s#^registry: .*#registry: $SHIPIT_TEST_REGISTRY/bench#" "$work/shipit.yaml"
sed -i "s#127.0.0.1:5055/base/busybox:1#$SHIPIT_TEST_BASE#" "$work/shipit.yaml"
git -C "$work" init -q && git -C "$work" add -A
git -C "$work" -c user.name=bench -c user.email=bench@example.com commit -qm bench
export DEMO_API_TOKEN=bench-token
cd "$work"
tag=$("$shipit" tag)
epoch=$(git log -1 --format=%ct)
sha=$(git rev-parse HEAD)

# The same two builds as shipit's, one after the other, with buildctl.
buildctl_both() {
	"$buildctl" build --progress quiet --frontend dockerfile.v0 \
		--local context=web --local dockerfile=web --opt target=runtime \
		--opt build-arg:BASE="$SHIPIT_TEST_BASE" --opt "build-arg:GREETING=hello from shipit" \
		--opt build-arg:SOURCE_DATE_EPOCH="$epoch" --opt label:org.opencontainers.image.revision="$sha" \
		--secret id=api_token,env=DEMO_API_TOKEN \
		--output "type=image,name=$SHIPIT_TEST_REGISTRY/bench/web:$tag,push=true,registry.insecure=true,oci-mediatypes=true,rewrite-timestamp=true"
	"$buildctl" build --progress quiet --frontend dockerfile.v0 \
		--local context=proxy --local dockerfile=proxy \
		--opt build-arg:BASE="$SHIPIT_TEST_BASE" --opt build-arg:SOURCE_DATE_EPOCH="$epoch" \
		--opt label:org.opencontainers.image.revision="$sha" \
		--output "type=image,name=$SHIPIT_TEST_REGISTRY/bench/proxy:$tag,push=true,registry.insecure=true,oci-mediatypes=true,rewrite-timestamp=true"
}
shipit_build() { "$shipit" build --push --progress quiet >/dev/null; }

ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

# Warm both paths once.
shipit_build
buildctl_both
results=$(mktemp -d)
trap 'rm -rf "$work" "$results"' EXIT
: >"$results/shipit.ms"
: >"$results/buildctl.ms"
for _ in $(seq "$N"); do
	t=$(date +%s%N); shipit_build; ms "$t" >>"$results/shipit.ms"
	t=$(date +%s%N); buildctl_both; ms "$t" >>"$results/buildctl.ms"
done
s=$(median <"$results/shipit.ms")
b=$(median <"$results/buildctl.ms")
echo "warm no-op build --push of two images, median of $N alternating runs on $(nproc) cores:"
echo "  shipit build --push                 ${s} ms"
echo "  buildctl build (web, then proxy)    ${b} ms"
awk -v s="$s" -v b="$b" 'BEGIN {printf "  ratio shipit/buildctl               %.2f (target <= 1.00)\n", s/b}'

# Time to the first solve request: from just before shipit is started (the
# shell's clock) to the moment shipit sends its first solve (shipit -v logs
# the wall clock then), and the part of it from main() on.
: >"$results/exec.us"
: >"$results/main.us"
for _ in $(seq "$N"); do
	t0=$(date +%s%N)
	line=$("$shipit" build --push --progress quiet -v 2>&1 >/dev/null | grep 'first solve request')
	t1=$(sed -n 's/.*unix time \([0-9]*\) ns.*/\1/p' <<<"$line")
	echo $(( (t1 - t0) / 1000 )) >>"$results/exec.us"
	sed -n 's/.*first solve request \([0-9.]*\)\(ms\|µs\) after.*/\1 \2/p' <<<"$line" |
		awk '{v=$1; if ($2=="ms") v*=1000; printf "%d\n", v}' >>"$results/main.us"
done
: >"$results/baseline.us"
for _ in $(seq "$N"); do
	t0=$(date +%s%N); t1=$(date +%s%N); echo $(( (t1 - t0) / 1000 )) >>"$results/baseline.us"
done
e=$(median <"$results/exec.us")
m=$(median <"$results/main.us")
z=$(median <"$results/baseline.us")
echo "start to first solve request, median of $N:"
echo "  shell start of shipit to its first solve request   $(awk -v v="$e" 'BEGIN{printf "%.1f", v/1000}') ms (target <= 50 ms)"
echo "    of which main() to the first solve request       $(awk -v v="$m" 'BEGIN{printf "%.1f", v/1000}') ms (config, git, connecting)"
echo "    the same clock around 'date' alone               $(awk -v v="$z" 'BEGIN{printf "%.1f", v/1000}') ms (the measurement's own cost)"
echo "  so shipit's own start to first solve request       $(awk -v e="$e" -v z="$z" 'BEGIN{printf "%.1f", (e-z)/1000}') ms"
# What starting a process costs before main(): Go's package initialisation,
# most of it BuildKit's client library (gRPC, OpenTelemetry, protobuf),
# which buildctl loads too.
: >"$results/sv.us"
: >"$results/bv.us"
for _ in $(seq "$N"); do
	t=$(date +%s%N); "$shipit" version >/dev/null; echo $(( ($(date +%s%N) - t) / 1000 )) >>"$results/sv.us"
	t=$(date +%s%N); "$buildctl" --version >/dev/null; echo $(( ($(date +%s%N) - t) / 1000 )) >>"$results/bv.us"
done
echo "whole run of a command that does nothing, median of $N:"
echo "  shipit version                                     $(awk -v v="$(median <"$results/sv.us")" 'BEGIN{printf "%.1f", v/1000}') ms"
echo "  buildctl --version                                 $(awk -v v="$(median <"$results/bv.us")" 'BEGIN{printf "%.1f", v/1000}') ms"
