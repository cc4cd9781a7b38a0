#!/usr/bin/env bash
# Benchmarks shipit build against buildctl on the same daemon and registry,
# side by side in one run, alternating the two so that neither gets a
# warmer machine. Needs the test environment: it starts it when it is not up.
#
#   ci/bench.sh            # everything, N=15 rounds
#   ci/bench.sh build      # shipit build against one buildctl per image in parallel and buildx bake: the example app and 8 images, no-op and one file changed, OCI layouts and push; each split into the daemon's solves and the rest
#   BASELINE=/tmp/ab43720/shipit ci/bench.sh startup   # shipit version and tag against another build, alternating (no daemon)
#   ci/bench.sh images     # the same with 1, 2 and 8 images
#   ci/bench.sh release    # shipit release against crane push + kustomize edit + git
#   ci/bench.sh sign       # shipit release with sign: against without (two images, the real registry); verify's registry requests
#   ci/bench.sh overlays   # pin editing and render checks over 100 overlays (Go benchmark)
#   ci/bench.sh pin        # shipit pin of two images over three overlays (Go benchmark)
#   ci/bench.sh nodes      # 8 images on 2 builder nodes against 1; arm64 (QEMU) against amd64; start to first solve
#   ci/bench.sh preview    # shipit preview up against git clone + commit + push (Go benchmark), and --wait on the cluster
#   ci/bench.sh scale      # history, status and prune against many tags (Go benchmarks)
#   ci/bench.sh cold       # a cold daemon importing the registry cache, against one without
#   ci/bench.sh gitops-scale  # release and promote in a 6,900-file, 20,000-commit GitOps repository against git by hand and the sparse floor; 32 at once
#   GITOPS_APPS=1000 GITOPS_COMMITS=60000 ci/bench.sh gitops-scale   # the same on a larger repository
#   BENCH_APP=DIR BENCH_CHANGE=DIR/FILE ci/bench.sh build   # also an app of your own (see bench_build)
#   N=40 ci/bench.sh build
#   BENCH_ONLY=example ci/bench.sh build   # one app of the three: example, eight or app
#   BASELINE=/tmp/old/shipit ci/bench.sh build   # also against another shipit binary, alternating
#
# Prints medians and ratios, and the time shipit takes from process start
# to its first solve request.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
N=${N:-15}
what=${1:-all}
# startup needs no daemon: shipit version and shipit tag, this build
# against BASELINE (another shipit binary, e.g. one built from ab43720),
# alternating in one run; the clock is bash's own ($EPOCHREALTIME, no
# process of its own), and the CPU time is hyperfine's.
if [ "$what" = startup ]; then
	: "${BASELINE:?BASELINE=path/to/another/shipit: the binary to compare with}"
	(cd "$repo" && go build -o bin/shipit ./cmd/shipit)
	rounds=${N_STARTUP:-200}
	app=$(mktemp -d)
	trap 'rm -rf "$app"' EXIT
	cp -r "$repo/examples/app/." "$app/"
	git -C "$app" init -q && git -C "$app" add -A && git -C "$app" -c user.name=b -c user.email=b@example.com commit -qm startup
	cd "$app"
	# Both binaries copied here, so that both are as fresh in the page
	# cache: a binary just written starts 1-2 ms sooner here than one
	# written minutes before, which favoured whichever was built last.
	mkdir "$app/.bin"
	cp "$repo/bin/shipit" "$app/.bin/new" && cp "$BASELINE" "$app/.bin/old"
	new="$app/.bin/new" old="$app/.bin/old"
	us() { local t=$EPOCHREALTIME; "$@" >/dev/null; echo $(( (${EPOCHREALTIME/./} - ${t/./}) )); }
	median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
	for cmd in version tag; do
		: >"$app/.new" && : >"$app/.old"
		"$new" "$cmd" >/dev/null && "$old" "$cmd" >/dev/null
		for _ in $(seq "$rounds"); do
			us "$new" "$cmd" >>"$app/.new"
			us "$old" "$cmd" >>"$app/.old"
		done
		a=$(median <"$app/.new") b=$(median <"$app/.old")
		printf 'shipit %-7s median of %s alternating runs: this build %5.1f ms, %s %5.1f ms, ratio %s (target <= 1.00)\n' \
			"$cmd" "$rounds" "$(awk -v v="$a" 'BEGIN{print v/1000}')" "$BASELINE" "$(awk -v v="$b" 'BEGIN{print v/1000}')" \
			"$(awk -v a="$a" -v b="$b" 'BEGIN{printf "%.2f", a/b}')"
	done
	if command -v hyperfine >/dev/null; then
		hyperfine -N -w 5 -r 100 "$new version" "$old version" "$new tag" "$old tag" 2>&1 | grep -E 'Benchmark|User'
	fi
	exit 0
fi
if [ ! -S "$repo/.testenv/buildkitd.sock" ]; then "$repo/ci/testenv.sh" up; fi
# shellcheck disable=SC1091
. "$repo/.testenv/env"
(cd "$repo" && go build -o bin/shipit ./cmd/shipit)
shipit="$repo/bin/shipit"
buildctl="$repo/bin/buildctl"

work=$(mktemp -d)
results=$(mktemp -d)
trap 'rm -rf "$work" "$results"' EXIT
ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

# alternate A B [ROUNDS [SETUP [TEARDOWN]]] runs the shell functions A and
# B ROUNDS times each (default N), alternating, with SETUP before and
# TEARDOWN after each run untimed, and leaves their medians in ms in
# $med_a and $med_b.
alternate() {
	local a=$1 b=$2 rounds=${3:-$N} setup=${4:-:} teardown=${5:-:} f t
	: >"$results/$a.ms"
	: >"$results/$b.ms"
	for _ in $(seq "$rounds"); do
		for f in "$a" "$b"; do
			"$setup"
			t=$(date +%s%N)
			"$f"
			ms "$t" >>"$results/$f.ms"
			"$teardown"
		done
	done
	med_a=$(median <"$results/$a.ms")
	med_b=$(median <"$results/$b.ms")
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a/b}'; }

# alternate3 A B C [ROUNDS [SETUP]] is alternate for three: medians in
# $med_a, $med_b and $med_c.
# Each run's start and end (ns) go to $results/windows, for daemon_split.
alternate3() {
	local rounds=${4:-$N} setup=${5:-:} f t
	for f in "$1" "$2" "$3"; do : >"$results/$f.ms"; done
	: >"$results/windows"
	for _ in $(seq "$rounds"); do
		for f in "$1" "$2" "$3"; do
			"$setup"
			t=$(date +%s%N)
			"$f"
			ms "$t" >>"$results/$f.ms"
			echo "$f $t $(date +%s%N)" >>"$results/windows"
		done
	done
	med_a=$(median <"$results/$1.ms")
	med_b=$(median <"$results/$2.ms")
	med_c=$(median <"$results/$3.ms")
}

# daemon_split A B C splits each run that alternate3 timed into the time
# the daemon spent on its solves and the rest, from the daemon's own build
# history: a run's solves are those the daemon began inside its window,
# and their time runs from the first one's start to the last one's end
# (the context upload is inside it: the daemon asks for the files). The
# rest is what the client adds: starting, reading its configuration,
# connecting, anything done before the first solve or after the last,
# and the daemon's writing of the history record itself, which comes
# after the end it records and before it answers (the same for all). It
# leaves the medians in ms in $in_a, $in_b, $in_c (the daemon's) and
# $out_a, $out_b, $out_c (the rest). A run that solves nothing (a kept
# image) is all rest.
daemon_split() {
	"$buildctl" debug histories --format '{{.Record.CreatedAt.Seconds}} {{.Record.CreatedAt.Nanos}} {{if .Record.CompletedAt}}{{.Record.CompletedAt.Seconds}} {{.Record.CompletedAt.Nanos}}{{else}}- -{{end}}' >"$results/history" ||
		{ echo "bench: buildctl debug histories failed: the daemon's build history is needed to split the times" >&2; exit 1; }
	# Times as ms from the first window's second: ns since 1970 do not
	# fit in awk's doubles.
	awk 'NR == FNR {
		if (!base) base = substr($2, 1, 10)
		n++; who[n] = $1
		s[n] = (substr($2, 1, 10) - base) * 1000 + substr($2, 11) / 1e6
		e[n] = (substr($3, 1, 10) - base) * 1000 + substr($3, 11) / 1e6
		next
	}
	$3 != "-" {
		c = ($1 - base) * 1000 + $2 / 1e6; d = ($3 - base) * 1000 + $4 / 1e6
		for (i = 1; i <= n; i++) if (c >= s[i] && c <= e[i]) {
			if (!(i in lo) || c < lo[i]) lo[i] = c
			if (!(i in hi) || d > hi[i]) hi[i] = d
			break
		}
	}
	END {
		for (i = 1; i <= n; i++) {
			span = (i in lo) ? hi[i] - lo[i] : 0
			printf "%s %d %d\n", who[i], span, e[i] - s[i] - span
		}
	}' "$results/windows" "$results/history" >"$results/split"
	# split_median F COLUMN: the median of one column of F's runs.
	split_median() { awk -v f="$1" -v c="$2" '$1 == f {print $c}' "$results/split" | median; }
	in_a=$(split_median "$1" 2) out_a=$(split_median "$1" 3)
	in_b=$(split_median "$2" 2) out_b=$(split_median "$2" 3)
	in_c=$(split_median "$3" 2) out_c=$(split_median "$3" 3)
}

# verdict SHIPIT BUILDCTL BAKE (medians, ms) says whether shipit is inside
# both build targets (<= 0.80 of parallel buildctl, <= 0.60 of bake) and,
# when it is not, whether any client could be: one that added nothing
# would still wait for the daemon's solves, at least the least of the
# three clients' in-daemon medians ($in_a, $in_b, $in_c from daemon_split).
verdict() {
	local floor
	floor=$(printf '%s\n' "$in_a" "$in_b" "$in_c" | sort -n | head -1)
	awk -v a="$1" -v b="$2" -v c="$3" -v f="$floor" 'BEGIN {
		if (a / b <= 0.80 && a / c <= 0.60) { print "  " sprintf("%-14s", "") "within both targets"; exit }
		printf "  %-14s MISSES a target: a client that added nothing would take at least the daemon'"'"'s %d ms, %.2f of buildctl and %.2f of bake", "", f, f / b, f / c
		if (f / b > 0.80 || f / c > 0.60) print ": out of any client'"'"'s reach on this app"
		else print ": within reach, so the miss is shipit'"'"'s"
	}'
}

# build_buildx builds docker/buildx (tools/buildx/go.mod, its own module:
# it needs a newer BuildKit client than shipit's go.mod pins, and talks to
# the v0.33.1 daemon over the same API) and makes a remote-driver builder
# of the test daemon, in a buildx configuration of this run's own.
build_buildx() {
	local bin="$repo/.testenv/bin" v
	mkdir -p "$bin"
	v=$(cd "$repo/tools/buildx" && go list -m -f '{{.Version}}' github.com/docker/buildx)
	(cd "$repo/tools/buildx" && go build -ldflags "-X github.com/docker/buildx/version.Version=$v" -o "$bin/buildx" github.com/docker/buildx/cmd/buildx)
	buildx="$bin/buildx"
	export BUILDX_CONFIG="$results/buildx" DOCKER_CONFIG="$results/docker"
	# shipit writes no attestations unless provenance is configured.
	export BUILDX_NO_DEFAULT_ATTESTATIONS=1
	"$buildx" create --name shipit-bench --driver remote "$BUILDKIT_HOST" >/dev/null
	"$buildx" --builder shipit-bench inspect --bootstrap >/dev/null
}

# read_images APP reads APP's images from its shipit.yaml, as shipit
# plans them (ci/bench/benchimages), into $results/images, one a line:
# name, repository, context, Dockerfile, target, secrets (id=env=VAR or
# id=src=FILE, joined by |), build args (K=V joined by |) and platforms,
# tab-separated, - for none. It sets what shipit stamps every image of
# HEAD with, for buildctl and bake to stamp theirs with too: epoch
# (SOURCE_DATE_EPOCH: the tag's release time), sha, created_at and source
# (- for none), and from them stamp (the labels, K=V, that shipit also
# writes as the manifest's annotations), label_opts (as buildctl options)
# and annotations (as buildctl's exporter attributes).
(cd "$repo" && go build -o "$results/benchimages" ./ci/bench/benchimages)
read_images() {
	"$results/benchimages" "$1" >"$results/described" || exit 1
	IFS=$'\t' read -r _ epoch sha created_at source <"$results/described"
	tail -n +2 "$results/described" >"$results/images"
	stamp=("org.opencontainers.image.revision=$sha" "org.opencontainers.image.created=$created_at")
	[ "$source" != - ] && stamp+=("org.opencontainers.image.source=$source")
	label_opts=() annotations=""
	local kv
	for kv in "${stamp[@]}"; do
		label_opts+=(--opt "label:$kv")
		annotations+="${annotations:+,}annotation.$kv"
	done
}

# make_eight DIR writes an app of eight images, each a COPY and a RUN on
# the base image, committed.
make_eight() {
	local app=$1 i
	mkdir -p "$app"
	printf 'registry: %s/bench8\nimages:\n' "$SHIPIT_TEST_REGISTRY" >"$app/shipit.yaml"
	for i in 1 2 3 4 5 6 7 8; do
		mkdir -p "$app/img$i"
		printf 'ARG BASE=busybox\nFROM ${BASE}\nCOPY f /f\nRUN cat /f > /g\n' >"$app/img$i/Dockerfile"
		# Each f of its own size: buildctl sets no session shared key, so
		# BuildKit syncs every buildctl's context into one cached copy
		# (source/local, "context:context:"), and a file with the size and
		# mtime of the one there is taken as unchanged. Eight files of one
		# size, written within one clock tick, gave img3 img2's file.
		printf "%${i}s\n" "" | tr ' ' "$i" >"$app/img$i/f"
		printf '  img%s:\n    context: img%s\n    args: {BASE: "%s"}\n' "$i" "$i" "$SHIPIT_TEST_BASE" >>"$app/shipit.yaml"
	done
	git -C "$app" init -q && git -C "$app" add -A && git -C "$app" -c user.name=b -c user.email=b@example.com commit -qm eight
}

# buildctl_one NAME REPOSITORY CONTEXT DOCKERFILE TARGET SECRETS ARGS
# PLATFORMS OUT builds one image as shipit does (the same frontend
# options, secrets and exporter attributes), OUT being oci or push.
buildctl_one() {
	local name=$1 repository=$2 ctx=$3 dockerfile=$4 target=$5 secrets=$6 args=$7 plats=$8 out a kv
	local opts=(--opt "build-arg:SOURCE_DATE_EPOCH=$epoch" "${label_opts[@]}" --opt "filename=$(basename "$dockerfile")")
	[ "$target" != - ] && opts+=(--opt "target=$target")
	[ "$plats" != - ] && opts+=(--opt "platform=$plats")
	if [ "$secrets" != - ]; then
		IFS='|' read -ra a <<<"$secrets"
		# id=env=VAR is buildctl's id=ID,env=VAR (src= the same way).
		for kv in "${a[@]}"; do opts+=(--secret "id=${kv%%=*},${kv#*=}"); done
	fi
	if [ "$args" != - ]; then
		IFS='|' read -ra a <<<"$args"
		for kv in "${a[@]}"; do opts+=(--opt "build-arg:$kv"); done
	fi
	out="type=image,name=$repository:$tag,push=true,registry.insecure=true"
	[ "$9" = oci ] && out="type=oci,dest=$results/bc-$name,tar=false,name=$repository:$tag"
	"$buildctl" build --progress quiet --frontend dockerfile.v0 --local "context=$ctx" --local "dockerfile=$(dirname "$dockerfile")" \
		"${opts[@]}" --output "$out,oci-mediatypes=true,rewrite-timestamp=true,$annotations" 2>>"$results/buildctl.log"
}
buildctl_all() {
	local fields
	while IFS=$'\t' read -ra fields; do
		buildctl_one "${fields[@]}" "$1" &
	done <"$results/images"
	wait
}
buildctl_oci() { buildctl_all oci; }
buildctl_push() { buildctl_all push; }

# pushed_digests CLIENT writes the digest each image's tag names in the
# registry now to $results/digests-CLIENT, after CLIENT's push.
pushed_digests() {
	local name repository accept=application/vnd.oci.image.index.v1+json,application/vnd.oci.image.manifest.v1+json
	while IFS=$'\t' read -r name repository _; do
		printf '%s %s\n' "$name" "$(curl -fsS -o /dev/null -D - -H "Accept: $accept" "http://${repository%%/*}/v2/${repository#*/}/manifests/$tag" |
			tr -d '\r' | sed -n 's/^[Dd]ocker-[Cc]ontent-[Dd]igest: //p')"
	done <"$results/images" >"$results/digests-$1"
}
# same_images says whether the three clients pushed the same images: the
# comparison is of the same work only if they did.
same_images() {
	if cmp -s "$results/digests-shipit" "$results/digests-buildctl" && cmp -s "$results/digests-shipit" "$results/digests-bake"; then
		echo "  the same images from all three: $(awk '{printf "%s%s %.19s", (NR > 1 ? ", " : ""), $1, $2}' "$results/digests-shipit")"
	else
		echo "  WARNING: the three clients pushed different images, so these times are not of the same work:" >&2
		paste "$results/digests-shipit" "$results/digests-buildctl" "$results/digests-bake" | sed 's/^/    shipit, buildctl, bake: /' >&2
	fi
}

# write_bake OUT is a bake file of the same images: OCI layouts or push.
write_bake() {
	local name repository ctx dockerfile target secrets args plats names=() kv a
	while IFS=$'\t' read -r name _; do names+=("\"$name\""); done <"$results/images"
	printf 'group "default" {\n  targets = [%s]\n}\n' "$(IFS=,; echo "${names[*]}")"
	while IFS=$'\t' read -r name repository ctx dockerfile target secrets args plats; do
		printf 'target "%s" {\n  context = "%s"\n  dockerfile = "%s"\n' "$name" "$ctx" "$dockerfile"
		[ "$target" != - ] && printf '  target = "%s"\n' "$target"
		[ "$plats" != - ] && printf '  platforms = ["%s"]\n' "${plats//,/\", \"}"
		if [ "$secrets" != - ]; then
			IFS='|' read -ra a <<<"$secrets"
			printf '  secret = [%s]\n' "$(for kv in "${a[@]}"; do printf '"id=%s,%s", ' "${kv%%=*}" "${kv#*=}"; done | sed 's/, $//')"
		fi
		printf '  args = {\n    SOURCE_DATE_EPOCH = "%s"\n' "$epoch"
		if [ "$args" != - ]; then
			IFS='|' read -ra a <<<"$args"
			for kv in "${a[@]}"; do printf '    %s = "%s"\n' "${kv%%=*}" "${kv#*=}"; done
		fi
		printf '  }\n  labels = {\n'
		for kv in "${stamp[@]}"; do printf '    "%s" = "%s"\n' "${kv%%=*}" "${kv#*=}"; done
		printf '  }\n  annotations = [%s]\n' "$(for kv in "${stamp[@]}"; do printf '"%s", ' "$kv"; done | sed 's/, $//')"
		printf '  tags = ["%s:%s"]\n' "$repository" "$tag"
		if [ "$1" = oci ]; then
			printf '  output = ["type=oci,dest=%s/bake-%s,tar=false,oci-mediatypes=true,rewrite-timestamp=true"]\n}\n' "$results" "$name"
		else
			printf '  output = ["type=image,push=true,registry.insecure=true,oci-mediatypes=true,rewrite-timestamp=true"]\n}\n'
		fi
	done <"$results/images"
}
bake_oci() { "$buildx" --builder shipit-bench bake --allow "fs.write=$results" --progress quiet -f "$results/bake-oci.hcl" >/dev/null 2>>"$results/bake.log"; }
bake_push() { "$buildx" --builder shipit-bench bake --progress quiet -f "$results/bake-push.hcl" >/dev/null 2>>"$results/bake.log"; }

shipit_oci() { "$shipit" build --progress quiet >/dev/null 2>>"$results/shipit.log"; }
shipit_push() { "$shipit" build --push --progress quiet >/dev/null 2>>"$results/shipit.log"; }
# BASELINE=path/to/another/shipit: that binary too, alternating with this one.
baseline_oci() { "$BASELINE" build --progress quiet >/dev/null 2>>"$results/shipit.log"; }
baseline_push() { "$BASELINE" build --push --progress quiet >/dev/null 2>>"$results/shipit.log"; }
# One file changed before each run (untimed), for all: the proxy's in the
# example app, img1's in the eight.
changes=0
change_file() {
	changes=$((changes + 1))
	if [ -n "${BENCH_APP:-}" ] && [ "$PWD" = "$BENCH_APP" ]; then
		echo "# change $changes" >>"${BENCH_CHANGE:?BENCH_CHANGE=the file of BENCH_APP to change}"
	elif [ -f proxy/proxy.conf ]; then
		echo "listen 8080; upstream web:3000; # change $changes" >proxy/proxy.conf
	else
		echo "change $changes" >img1/f
	fi
}
cp -r "$repo/examples/app/." "$work/"
rm -rf "$work/.shipit"
sed -i "s#^registry: .*#registry: $SHIPIT_TEST_REGISTRY/bench#" "$work/shipit.yaml"
sed -i "s#127.0.0.1:5055/base/busybox:1#$SHIPIT_TEST_BASE#" "$work/shipit.yaml"
git -C "$work" init -q && git -C "$work" add -A
git -C "$work" -c user.name=bench -c user.email=bench@example.com commit -qm bench
export DEMO_API_TOKEN=bench-token
cd "$work"
tag=$("$shipit" tag)
# hide_state: shipit leaves its own output (.shipit/: the record and an
# OCI layout of every image) out of every context, where buildctl and bake
# send whatever the ignore file does not exclude. A context that holds the
# app's .shipit/ gets it added to its .dockerignore for the run (put back
# after it), so that all three send the same files.
hide_state() {
	local name ctx dockerfile ignore
	created=()
	while IFS=$'\t' read -r name _ ctx dockerfile _; do
		[ "$(cd "$ctx" && pwd)" = "$PWD" ] || continue
		# The frontend reads the Dockerfile's own ignore file (beside it,
		# named after it) before the context's .dockerignore.
		ignore="$ctx/.dockerignore"
		[ -e "$dockerfile.dockerignore" ] && ignore="$dockerfile.dockerignore"
		grep -qsxE '/?\.shipit/?(\*\*)?' "$ignore" && continue
		[ -e "$ignore" ] || created+=("$ignore")
		# A last line without its newline would take the pattern in.
		if [ -s "$ignore" ] && [ -n "$(tail -c 1 "$ignore")" ]; then echo >>"$ignore"; fi
		echo ".shipit/" >>"$ignore"
		echo "  ($name's context holds .shipit/: added to $ignore for this run, as shipit leaves it out)"
	done <"$results/images"
}

bench_build() {
# Three ways to build the same images on the same daemon, alternating:
# shipit build; one buildctl per image, all in parallel (the floor of one
# solve per image); and docker buildx bake (one process, its own session)
# on a remote-driver builder of the same daemon. On the example app (two
# images) and an eight-image app, no-op and one file changed, OCI layouts
# out and pushed to the test registry.
case "${BENCH_ONLY:-all}" in
all | example | eight) ;;
app) [ -n "${BENCH_APP:-}" ] || { echo "bench: BENCH_ONLY=app needs BENCH_APP=DIR" >&2; exit 2; } ;;
*) echo "bench: BENCH_ONLY=$BENCH_ONLY: use example, eight or app" >&2; exit 2 ;;
esac
build_buildx
local eight="$results/eight"
make_eight "$eight"
local app
# BENCH_APP=DIR adds an app of your own: a committed git repository with a
# shipit.yaml (its images are read from it, as shipit plans them), and
# BENCH_CHANGE=PATH the file of it changed before each "changed" run.
# BENCH_ONLY=example (or eight, or app: BENCH_APP's) runs one of them.
for app in "$work" "$eight" ${BENCH_APP:+"$BENCH_APP"}; do
	case "${BENCH_ONLY:-all}:$app" in
	"all:"* | "example:$work" | "eight:$eight" | "app:${BENCH_APP:-}") ;;
	*) continue ;;
	esac
	cd "$app"
	read_images "$app"
	hide_state
	tag=$("$shipit" tag)
	write_bake oci >"$results/bake-oci.hcl"
	write_bake push >"$results/bake-push.hcl"
	local n
	n=$(wc -l <"$results/images")
	echo "warm builds of $(basename "$app") ($n images), median of $N alternating rounds on $(nproc) cores:"
	for scenario in "no-op oci" "no-op push" "changed oci" "changed push"; do
		# shellcheck disable=SC2086 # two words: the scenario and the output
		set -- $scenario
		setup=:
		[ "$1" = changed ] && setup=change_file
		# Warm every path once; after the first push of each, see that the
		# three make the same images.
		local client
		for client in shipit buildctl bake; do
			if ! "${client}_$2"; then
				tail -n 20 "$results"/*.log >&2
				exit 1
			fi
			[ "$scenario" = "no-op push" ] && pushed_digests "$client"
		done
		[ "$scenario" = "no-op push" ] && same_images
		alternate3 "shipit_$2" "buildctl_$2" "bake_$2" "$N" "$setup"
		printf '  %-8s %-5s shipit %5s ms, buildctl x%s parallel %5s ms, bake %5s ms; shipit/buildctl %s (target <= 0.80), shipit/bake %s (target <= 0.60)\n' \
			"$1" "$2" "$med_a" "$n" "$med_b" "$med_c" "$(ratio "$med_a" "$med_b")" "$(ratio "$med_a" "$med_c")"
		daemon_split "shipit_$2" "buildctl_$2" "bake_$2"
		printf '  %-14s inside the daemon'"'"'s solves %5s / %5s / %5s ms; the rest (what the client adds) %5s / %5s / %5s ms; shipit'"'"'s rest/bake'"'"'s %s\n' \
			"" "$in_a" "$in_b" "$in_c" "$out_a" "$out_b" "$out_c" "$(ratio "$out_a" "$out_c")"
		verdict "$med_a" "$med_b" "$med_c"
		if [ -n "${BASELINE:-}" ]; then
			alternate "shipit_$2" "baseline_$2" "$N" "$setup"
			printf '  %-8s %-5s shipit build %5s ms, %s %5s ms, ratio %s\n' "$1" "$2" "$med_a" "$BASELINE" "$med_b" "$(ratio "$med_a" "$med_b")"
		fi
	done
	git checkout -q .
	rm -f "${created[@]}"
done
cd "$work"
tag=$("$shipit" tag)

# Time to the first solve request: from just before shipit is started (the
# shell's clock) to the moment shipit sends its first solve (shipit -v logs
# the wall clock then), and the part of it from main() on. --rebuild: a
# no-op build otherwise sends none.
: >"$results/exec.us"
: >"$results/main.us"
for _ in $(seq "$N"); do
	t0=$(date +%s%N)
	line=$("$shipit" build --push --rebuild --progress quiet -v 2>&1 >/dev/null | grep 'first solve request')
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
}

# A release of the example app, each round a new commit (the worker image
# changes, web gets a new tag on the same digest), alternating shipit
# seed_gitops DIR: a bare GitOps repository with a base of the example
# app and one overlay, overlays/prod.
seed_gitops() {
	local seed
	seed=$(mktemp -d)
	git init -q --bare -b main "$1"
	git clone -q "$1" "$seed" 2>/dev/null
	mkdir -p "$seed/base" "$seed/overlays/prod"
	printf 'resources: [deployment.yaml]\n' >"$seed/base/kustomization.yaml"
	printf 'apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  template:\n    spec:\n      containers:\n      - {name: web, image: web}\n      - {name: proxy, image: proxy}\n' >"$seed/base/deployment.yaml"
	printf '# production\nresources:\n- ../../base\nimages:\n- name: web\n  newTag: old\n' >"$seed/overlays/prod/kustomization.yaml"
	git -C "$seed" add -A && git -C "$seed" -c user.name=b -c user.email=b@example.com commit -qm seed && git -C "$seed" push -q origin HEAD:main
	rm -rf "$seed"
}

# release with the same job by hand: crane push of each OCI layout, a
# shallow clone of the GitOps repository, kustomize edit set image per
# image, git commit and git push.
bench_release() {
	(cd "$repo/tools" && go build -o ../bin/crane github.com/google/go-containerregistry/cmd/crane &&
		go build -o ../bin/kustomize sigs.k8s.io/kustomize/kustomize/v5)
	local gitops="$results/gitops.git"
	seed_gitops "$gitops"
	sed -i "s#^  repo: .*#  repo: $gitops#; s#k8s/overlays/production#overlays/prod#" "$work/shipit.yaml"
	git -C "$work" -c user.name=bench -c user.email=bench@example.com commit -qam "bench release"

	by_hand() {
		local t sha clone
		t=$("$shipit" tag)
		for im in web proxy; do
			"$repo/bin/crane" push --insecure "$work/.shipit/images/$im" "$SHIPIT_TEST_REGISTRY/bench/$im:$t" >/dev/null 2>&1
		done
		clone=$(mktemp -d)
		git clone -q --depth 1 --branch main "file://$gitops" "$clone"
		for im in web proxy; do
			d=$(jq -r ".images[] | select(.name==\"$im\") | .digest" "$work/.shipit/build.json")
			(cd "$clone/overlays/prod" && "$repo/bin/kustomize" edit set image "$im=$SHIPIT_TEST_REGISTRY/bench/$im:$t@$d")
		done
		git -C "$clone" -c user.name=b -c user.email=b@example.com commit -qam "release $t"
		git -C "$clone" push -q origin HEAD:main
		rm -rf "$clone"
	}
	round=0
	next_commit() {
		round=$((round + 1))
		echo "listen 8080; # round $round" >"$work/proxy/proxy.conf"
		git -C "$work" -c user.name=bench -c user.email=bench@example.com commit -qam "round $round"
		"$shipit" build --progress quiet >/dev/null
	}
	shipit_release() { "$shipit" release >/dev/null 2>&1; }
	alternate shipit_release by_hand "$N" next_commit
	echo "release of two images (push + pin + commit + push), median of $N alternating rounds:"
	echo "  shipit release                                     ${med_a} ms"
	echo "  crane push x2, kustomize edit x2, git commit+push  ${med_b} ms"
	echo "  ratio shipit/by hand                               $(ratio "$med_a" "$med_b") (target <= 1.00)"
}

# Signing's cost in a release: release with sign.key against release
# without, alternating, each of a new build (two images, no pins: the
# push and the signatures alone); then the requests verify makes (Go
# benchmark on the in-process registry, counting requests).
bench_sign() {
	local keys="$results/keys"
	mkdir -p "$keys"
	(cd "$keys" && COSIGN_PASSWORD=bench "$SHIPIT_TEST_COSIGN" generate-key-pair >/dev/null 2>&1)
	export COSIGN_PASSWORD=bench
	# Two configurations beside shipit.yaml, ignored by git (the tree stays
	# clean): without deploy (no pins), with and without sign.
	sed '/^deploy:/,$d' "$work/shipit.yaml" >"$work/bench-plain.yaml"
	{ cat "$work/bench-plain.yaml"; echo "sign: {key: $keys/cosign.key}"; } >"$work/bench-signed.yaml"
	printf 'bench-plain.yaml\nbench-signed.yaml\n' >>"$work/.git/info/exclude"
	# deploy.repo defaults to this repository's origin, which release
	# resolves even with no overlays to pin.
	if ! git -C "$work" remote get-url origin >/dev/null 2>&1; then
		git init -q --bare "$results/sign-origin.git"
		git -C "$work" remote add origin "$results/sign-origin.git"
	fi
	round=0
	sign_commit() {
		round=$((round + 1))
		echo "listen 8080; # sign round $round" >"$work/proxy/proxy.conf"
		echo "# sign round $round" >>"$work/web/app.sh"
		git -C "$work" -c user.name=bench -c user.email=bench@example.com commit -qam "sign round $round"
		"$shipit" build --progress quiet >/dev/null
	}
	release_signed() { "$shipit" release --config bench-signed.yaml >/dev/null 2>"$results/sign.log" || { cat "$results/sign.log" >&2; return 1; }; }
	release_plain() { "$shipit" release --config bench-plain.yaml >/dev/null 2>"$results/sign.log" || { cat "$results/sign.log" >&2; return 1; }; }
	alternate release_signed release_plain "$N" sign_commit
	echo "release of two images, push only, median of $N alternating rounds:"
	echo "  with sign: (key decrypted, two digests signed)     ${med_a} ms"
	echo "  without                                            ${med_b} ms"
	awk -v a="$med_a" -v b="$med_b" 'BEGIN {printf "  signing adds                                       %.0f ms per image (target <= 100)\n", (a-b)/2}'
	# The same with the pins: release decrypts the key beside opening the
	# GitOps workspace, as in every pipeline that releases.
	seed_gitops "$results/sign-gitops.git"
	sed "s#^  repo: .*#  repo: $results/sign-gitops.git#; s#k8s/overlays/production#overlays/prod#" "$work/shipit.yaml" >"$work/bench-pins.yaml"
	{ cat "$work/bench-pins.yaml"; echo "sign: {key: $keys/cosign.key}"; } >"$work/bench-signed-pins.yaml"
	printf 'bench-pins.yaml\nbench-signed-pins.yaml\n' >>"$work/.git/info/exclude"
	release_signed_pins() { "$shipit" release --config bench-signed-pins.yaml >/dev/null 2>"$results/sign.log" || { cat "$results/sign.log" >&2; return 1; }; }
	release_pins() { "$shipit" release --config bench-pins.yaml >/dev/null 2>"$results/sign.log" || { cat "$results/sign.log" >&2; return 1; }; }
	alternate release_signed_pins release_pins "$N" sign_commit
	echo "release of two images with their pins (push, commit, push to git), median of $N alternating rounds:"
	echo "  with sign:                                         ${med_a} ms"
	echo "  without                                            ${med_b} ms"
	awk -v a="$med_a" -v b="$med_b" 'BEGIN {printf "  signing adds                                       %.0f ms per image (target <= 100)\n", (a-b)/2}'
	(cd "$repo" && go test ./internal/sign/ -run '^$' -bench 'BenchmarkSign|BenchmarkVerify' -benchtime 20x) | grep -E '^Benchmark' |
		awk '{printf "%-40s %7.1f ms  %5.1f registry requests per image\n", $1, $3/1e6, $5}'
}

bench_overlays() {
	(cd "$repo" && go test ./internal/kustomize/ -run '^$' -bench '^BenchmarkPlan$' -benchtime 5x) | grep -E '^Benchmark' |
		awk '{split($1, a, "="); sub(/-[0-9]+$/, "", a[2]); printf "pin editing and render checks, %3d overlay(s): %7.1f ms (target for 100: < 1000 ms)\n", a[2], $3/1e6}'
}

# history --limit 10 and status at 100, 1000 and 10,000 tags, and prune of
# 1000 tags (Go benchmarks on the in-process registry, counting requests).
bench_scale() {
	(cd "$repo" && go test ./release/prune/ -run '^$' -bench 'BenchmarkHistory|BenchmarkStatusScale' -benchtime 5x) | grep -E '^Benchmark' |
		awk '{printf "%-40s %7.1f ms  %5.0f registry requests\n", $1, $3/1e6, $5}'
	(cd "$repo" && go test ./release/prune/ -run '^$' -bench 'BenchmarkPrune$' -benchtime 1x) | grep -E '^Benchmark' |
		awk '{printf "prune of 1000 tags (970 deleted)          %7.1f ms  %5.0f registry requests (%s DELETE)\n", $3/1e6, $7, $5}'
}

# How a warm no-op build --push grows with the number of images: shipit
# (one process, concurrent solves) against buildctl (one run per image).
bench_images() {
	local app="$results/scale"
	for n in 1 2 8; do
		rm -rf "$app" && mkdir -p "$app"
		printf 'registry: %s/bench-scale\nimages:\n' "$SHIPIT_TEST_REGISTRY" >"$app/shipit.yaml"
		for i in $(seq "$n"); do
			mkdir -p "$app/img$i"
			printf 'ARG BASE=busybox\nFROM ${BASE}\nCOPY f /f\nRUN cat /f > /g\n' >"$app/img$i/Dockerfile"
			# Each f of its own size, for buildctl (see make_eight).
			printf "%${i}s\n" "" | tr ' ' "$i" >"$app/img$i/f"
			printf '  img%s:\n    context: img%s\n    args: {BASE: "%s"}\n' "$i" "$i" "$SHIPIT_TEST_BASE" >>"$app/shipit.yaml"
		done
		git -C "$app" init -q && git -C "$app" add -A && git -C "$app" -c user.name=b -c user.email=b@example.com commit -qm scale
		local t0 ep sh
		t0=$(cd "$app" && "$shipit" tag)
		ep=$(git -C "$app" log -1 --format=%ct)
		sh_all() { (cd "$app" && "$shipit" build --push --rebuild --progress quiet >/dev/null); }
		bc_all() {
			for i in $(seq "$n"); do
				"$buildctl" build --progress quiet --frontend dockerfile.v0 --local "context=$app/img$i" --local "dockerfile=$app/img$i" \
					--opt build-arg:BASE="$SHIPIT_TEST_BASE" --opt build-arg:SOURCE_DATE_EPOCH="$ep" \
					--output "type=image,name=$SHIPIT_TEST_REGISTRY/bench-scale/img$i:$t0,push=true,registry.insecure=true,oci-mediatypes=true,rewrite-timestamp=true"
			done
		}
		sh_all
		bc_all
		alternate sh_all bc_all
		printf 'warm no-op build --push, %d image(s): shipit %5s ms, buildctl one after another %5s ms, ratio %s\n' "$n" "$med_a" "$med_b" "$(ratio "$med_a" "$med_b")"
	done
}

bench_pin() {
	(cd "$repo" && go test ./test/e2e/ -run '^$' -bench 'Pin' -benchtime "${N}x") | grep -E '^Benchmark' |
		awk '{printf "shipit pin, 2 images x 3 overlays, %s: %s ms/pin, %s registry requests/pin, %s blob uploads/pin\n", $1, $7, $9, $5}'
}

bench_preview() {
	(cd "$repo" && go test ./test/e2e/ -run '^$' -bench 'PreviewUp' -benchtime "${N}x") | grep -E '^Benchmark' |
		awk '{printf "shipit preview up (images already pushed): %s ms; git clone --depth 1 + commit + push alone: %s ms; shipit beyond that: %s ms\n", $9, $5, $7}'
	# preview up --wait on the cluster: the test logs how long after Argo CD
	# finished the sync shipit returned.
	if [ -n "${SHIPIT_TEST_KUBECONFIG:-}" ]; then
		(cd "$repo" && go test ./test/e2e/ -run 'TestPreviewCluster' -count=1 -v) | grep -E 'ended .* after Argo CD' || true
	fi
}

# Several builder nodes (the test environment's two node daemons and its
# main one, all on this machine): 8 images on 2 nodes against 1; arm64
# (QEMU here: this machine is amd64) against amd64 for a RUN-heavy stage on
# one node; and the time from start to the first solve with 3 nodes and 1.
bench_nodes() {
	local app="$results/nodesapp" i
	mkdir -p "$app"
	for i in 1 2 3 4 5 6 7 8; do
		mkdir -p "$app/img$i"
		echo "$i" >"$app/img$i/id"
		cat >"$app/img$i/Dockerfile" <<'DF'
ARG BASE=busybox
FROM ${BASE}
COPY id /id
# Stands in for a compile: a second or so of CPU.
RUN i=0; while [ "$i" -lt 400000 ]; do i=$((i+1)); done; cat /id > /out
DF
	done
	{
		printf 'registry: %s/bench-nodes
platforms: [linux/amd64]
builder:
  nodes:
' "$SHIPIT_TEST_REGISTRY"
		printf '    - {name: a, addr: "%s", platforms: [linux/amd64]}
' "$SHIPIT_TEST_NODE_AMD64"
		printf '    - {name: b, addr: "%s", platforms: [linux/amd64]}
' "$SHIPIT_TEST_NODE_ARM64"
		printf 'images:
'
		for i in 1 2 3 4 5 6 7 8; do printf '  img%s: {context: img%s, args: {BASE: "%s"}}
' "$i" "$i" "$SHIPIT_TEST_BASE_MULTI"; done
	} >"$app/shipit.yaml"
	git -C "$app" init -q && git -C "$app" add -A && git -C "$app" -c user.name=b -c user.email=b@example.com commit -qm nodes
	two() { (cd "$app" && "$shipit" build --no-cache --progress quiet >/dev/null); }
	one() { (cd "$app" && "$shipit" build --no-cache --progress quiet --builder "$SHIPIT_TEST_NODE_AMD64" >/dev/null); }
	local rounds=${NODES_N:-5}
	alternate two one "$rounds"
	echo "8 images, RUN-heavy, --no-cache, median of $rounds: 2 nodes ${med_a} ms, 1 node ${med_b} ms, ratio $(ratio "$med_a" "$med_b") ($(nproc) cores shared by both nodes)"

	amd() { (cd "$app" && SHIPIT_PLATFORMS=linux/amd64 "$shipit" build img1 --no-cache --progress quiet --builder "$SHIPIT_TEST_NODE_AMD64" >/dev/null); }
	arm() { (cd "$app" && SHIPIT_PLATFORMS=linux/arm64 "$shipit" build img1 --no-cache --progress quiet --builder "$SHIPIT_TEST_NODE_AMD64" >/dev/null); }
	alternate arm amd "$rounds"
	echo "one RUN-heavy image on one node, median of $rounds: linux/arm64 (QEMU) ${med_a} ms, linux/amd64 (native) ${med_b} ms, ratio $(ratio "$med_a" "$med_b")"

	# Start to first solve: with 3 nodes (the third unreachable at once:
	# a missing socket) and with 1.
	sed -i 's/^images:/    - {name: c, addr: "unix:\/\/\/nonexistent.sock", platforms: [linux\/amd64]}\nimages:/' "$app/shipit.yaml"
	git -C "$app" -c user.name=b -c user.email=b@example.com commit -qam three
	first() { (cd "$app" && "$shipit" build --rebuild -v --progress quiet "$@" 2>&1 >/dev/null) | sed -n 's/.*first solve request \([0-9.]*\)ms.*/\1/p'; }
	local f3 f1
	f3=$(for _ in $(seq "$rounds"); do first; done | median)
	f1=$(for _ in $(seq "$rounds"); do first --builder "$SHIPIT_TEST_NODE_AMD64"; done | median)
	echo "start to first solve, median of $rounds: 3 nodes (2 reachable) ${f3} ms, 1 node ${f1} ms"
}

# What CI runners do: a new runner has a cold daemon. Each round starts a
# daemon with an empty state directory and builds an app whose compile
# step takes seconds, once importing the registry cache (cache.export:
# registry, which a warm build exported) and once without it.
bench_cold() {
	local app="$results/coldapp" sock="$results/cold.sock"
	mkdir -p "$app/src"
	echo "package main" >"$app/src/main.go"
	cat >"$app/Dockerfile" <<'DF'
ARG BASE=busybox
FROM ${BASE} AS build
COPY src /src
# Stands in for a compile: seconds of CPU.
RUN i=0; while [ "$i" -lt 1500000 ]; do i=$((i+1)); done; cp -r /src /out
FROM ${BASE} AS runtime
COPY --from=build /out /app
DF
	printf 'registry: %s/bench-cold\ncache:\n  export: registry\nimages:\n  app:\n    context: .\n    args: {BASE: "%s"}\n' "$SHIPIT_TEST_REGISTRY" "$SHIPIT_TEST_BASE" >"$app/shipit.yaml"
	git -C "$app" init -q && git -C "$app" add -A && git -C "$app" -c user.name=b -c user.email=b@example.com commit -qm cold
	cold_daemon() {
		local root
		root=$(mktemp -d)
		"$repo/bin/buildkitd" --config "$SHIPIT_TEST_BUILDKITD_CONFIG" --root "$root" --addr "unix://$sock" \
			--oci-worker=true --containerd-worker=false >"$results/cold-daemon.log" 2>&1 &
		cold_pid=$! cold_root=$root
		for _ in $(seq 100); do "$buildctl" --addr "unix://$sock" debug workers >/dev/null 2>&1 && return; sleep 0.1; done
	}
	cold_stop() {
		kill "$cold_pid" && wait "$cold_pid" 2>/dev/null || true
		grep -o " $cold_root[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
		rm -rf "$cold_root"
	}
	(cd "$app" && "$shipit" build --progress quiet >/dev/null) # a warm build exports the cache
	cold_cached() { (cd "$app" && BUILDKIT_HOST="unix://$sock" "$shipit" build --rebuild --progress quiet >/dev/null); }
	cold_uncached() { (cd "$app" && BUILDKIT_HOST="unix://$sock" SHIPIT_CACHE_EXPORT=none "$shipit" build --rebuild --progress quiet >/dev/null); }
	local rounds=${COLD_N:-3}
	alternate cold_cached cold_uncached "$rounds" cold_daemon cold_stop
	echo "cold daemon (a new CI runner), median of $rounds alternating rounds:"
	echo "  importing the registry cache (cache.export: registry)   ${med_a} ms"
	echo "  no cache                                                ${med_b} ms"
	echo "  ratio cached/uncached                                   $(ratio "$med_a" "$med_b")"
}

case "$what" in
build) bench_build ;;
images) bench_images ;;
cold) bench_cold ;;
pin) bench_pin ;;
preview) bench_preview ;;
nodes) bench_nodes ;;
release) bench_release ;;
sign) bench_sign ;;
overlays) bench_overlays ;;
scale) bench_scale ;;
gitops-scale) N=${N_GITOPS:-9} "$repo/ci/bench/gitops-scale.sh" ;;
all)
	bench_build
	bench_images
	bench_release
	bench_sign
	bench_overlays
	bench_pin
	bench_preview
	bench_nodes
	bench_scale
	bench_cold
	;;
*)
	echo "usage: $0 [build|images|release|overlays|pin|preview|nodes|scale|cold|gitops-scale|all]" >&2
	exit 2
	;;
esac
