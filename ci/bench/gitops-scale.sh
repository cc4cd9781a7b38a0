#!/usr/bin/env bash
# ci/bench.sh gitops-scale: shipit's GitOps writes in a platform team's
# repository (300 apps of a 20-file base and two overlays, 20,000
# commits, built with git fast-import), side by side in one run,
# alternating: shipit release and shipit promote of one app; the same by
# hand with a shallow clone; and the floor, a shallow, blobless, sparse
# clone of the app's directory with the same edit, commit and push. Then
# 32 releases of different apps at once. Needs the test environment
# (sourced by ci/bench.sh) and bin/shipit.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
N=${N:-9}
shipit="$repo/bin/shipit"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a/b}'; }
gitc() { git -c user.name=bench -c user.email=bench@example.com "$@"; }

gitops="$work/gitops.git"
git init -q --bare -b main "$gitops"
git -C "$gitops" config uploadpack.allowFilter true
# GITOPS_APPS, GITOPS_FILES and GITOPS_COMMITS size the fixture (300, 20,
# 20,000 by default): a larger repository shows how each side grows.
(cd "$repo" && go run ./ci/bench/gitopsfixture -registry "$SHIPIT_TEST_REGISTRY/bench" \
	-apps "${GITOPS_APPS:-300}" -files "${GITOPS_FILES:-20}" -commits "${GITOPS_COMMITS:-20000}") |
	git -C "$gitops" fast-import --quiet
nfiles=$(git -C "$gitops" ls-tree -r main | wc -l) ncommits=$(git -C "$gitops" rev-list --count main)
echo "fixture: $nfiles files, $ncommits commits, $(du -sh "$gitops" | cut -f1) packed"

# The app: the example app, released into app007's overlays.
app="$work/app"
cp -r "$repo/examples/app/." "$app/"
rm -rf "$app/.shipit"
cat >"$app/shipit.yaml" <<YAML
registry: $SHIPIT_TEST_REGISTRY/bench
images:
  app007-web:
    context: web
    target: runtime
    kustomize_name: web
    args: {BASE: "$SHIPIT_TEST_BASE", GREETING: hello}
    secrets: [{id: api_token, env: DEMO_API_TOKEN}]
  app007-proxy:
    context: proxy
    kustomize_name: proxy
    args: {BASE: "$SHIPIT_TEST_BASE"}
deploy:
  repo: $gitops
  branch: main
  environments:
    - {name: staging, overlays: [apps/app007/overlays/staging]}
    - {name: production, overlays: [apps/app007/overlays/production]}
  previews: {from: staging, dir: apps/app007/previews}
YAML
export DEMO_API_TOKEN=bench-token
git -C "$app" init -q && git -C "$app" add -A && gitc -C "$app" commit -qm bench
cd "$app"
round=0
next_build() { # a new commit of the app, built and pushed (untimed)
	round=$((round + 1))
	echo "listen 8080; # round $round" >proxy/proxy.conf
	gitc commit -qam "round $round"
	"$shipit" build --push --progress quiet >/dev/null
}
edit_pin() { # dir file tag: what the by-hand pipelines do to the overlay
	sed -i "s/newTag: \".*\"/newTag: \"$3\"/" "$1/$2"
}
by_hand() { # a shallow clone of the whole tree
	local c t
	c=$(mktemp -d) t=$("$shipit" tag)
	git clone -q --depth 1 --branch main "file://$gitops" "$c"
	edit_pin "$c" apps/app007/overlays/staging/kustomization.yaml "$t"
	gitc -C "$c" commit -qam "release $t" && git -C "$c" push -q origin HEAD:main
	rm -rf "$c"
}
floor() { # shallow, blobless, sparse on the app's directory
	local c t
	c=$(mktemp -d) t=$("$shipit" tag)
	git clone -q --depth 1 --filter=blob:none --sparse --branch main "file://$gitops" "$c"
	git -C "$c" sparse-checkout set apps/app007
	edit_pin "$c" apps/app007/overlays/staging/kustomization.yaml "$t"
	gitc -C "$c" commit -qam "release $t" && git -C "$c" push -q origin HEAD:main
	rm -rf "$c"
}
shipit_release() { "$shipit" release >/dev/null 2>&1; }
shipit_promote() { "$shipit" promote production >/dev/null 2>&1; }
shipit_preview() { "$shipit" preview up "pr-$round" >/dev/null 2>&1; }
declare -A times
for _ in $(seq "$N"); do
	for f in shipit_release by_hand floor shipit_preview; do
		next_build
		t=$(date +%s%N)
		"$f"
		times[$f]+="$(ms "$t") "
	done
	# promote: staging has a newer release than production now.
	next_build
	"$shipit" release >/dev/null 2>&1
	t=$(date +%s%N)
	shipit_promote
	times[shipit_promote]+="$(ms "$t") "
done
med() { tr ' ' '\n' <<<"${times[$1]}" | grep . | median; }
r=$(med shipit_release) h=$(med by_hand) s=$(med floor) p=$(med shipit_promote) v=$(med shipit_preview)
echo "one app's release in a $nfiles-file, $ncommits-commit GitOps repository, median of $N alternating rounds:"
echo "  shipit release (2 images present, pin, commit, push)  ${r} ms"
echo "  shipit promote staging -> production                  ${p} ms"
echo "  shipit preview up pr-N (a new preview folder)         ${v} ms"
echo "  by hand: git clone --depth 1, edit, commit, push      ${h} ms"
echo "  floor: --depth 1 --filter=blob:none --sparse          ${s} ms"
echo "  release / floor $(ratio "$r" "$s") (target <= 2.00); by hand / release $(ratio "$h" "$r") (target >= 5.00); promote / floor $(ratio "$p" "$s"); preview up / floor $(ratio "$v" "$s")"

# Retention: prune --dry-run --keep-history 20 reads each overlay's pins back
# through the history; the floor is git itself reading the same history of
# the same overlays (a blobless clone, then git log -p over them).
for _ in $(seq 3); do # 20 more distinct pins of staging to read back
	for _ in $(seq 7); do next_build && "$shipit" release >/dev/null 2>&1; done
done
# The commits the walk must read: back to each overlay's 20th distinct pin
# before the current one, at most 1000 (prune's bound).
depth=0
for o in staging production; do
	c=$(git -C "$gitops" rev-list main -- "apps/app007/overlays/$o" | sed -n 21p)
	d=1000
	[ -n "$c" ] && d=$(git -C "$gitops" rev-list --count "main" "^$c")
	d=$((d > 1000 ? 1000 : d + 1))
	depth=$((d > depth ? d : depth))
done
prune_shipit() { "$shipit" prune --dry-run --keep-history 20 >/dev/null 2>&1; }
prune_gitlog() {
	local c
	c=$(mktemp -d)
	git clone -q --bare --filter=blob:none --depth "$depth" --branch main "file://$gitops" "$c"
	git -C "$c" log -p --format=%H main -- apps/app007/overlays >/dev/null
	rm -rf "$c"
}
declare -A ptimes
for _ in $(seq "$N"); do
	for f in prune_shipit prune_gitlog; do
		t=$(date +%s%N)
		"$f"
		ptimes[$f]+="$(ms "$t") "
	done
done
pmed() { tr ' ' '\n' <<<"${ptimes[$1]}" | grep . | median; }
ps=$(pmed prune_shipit) pg=$(pmed prune_gitlog)
echo "retention over the same repository, median of $N alternating rounds:"
echo "  shipit prune --dry-run --keep-history 20              ${ps} ms"
echo "  git clone --bare --filter=blob:none --depth $depth + git log -p ${pg} ms"
echo "  prune / git log $(ratio "$ps" "$pg") (target <= 3.00)"

# 32 releases of different apps at once: one build, 32 configurations.
for i in $(seq 0 31); do
	a=$(printf 'app%03d' $((100 + i)))
	sed "s#apps/app007/#apps/$a/#g" shipit.yaml >".cfg-$a.yaml"
done
echo '.cfg-*.yaml' >>.git/info/exclude
next_build
t=$(date +%s%N)
pids=()
for i in $(seq 0 31); do
	a=$(printf 'app%03d' $((100 + i)))
	"$shipit" release --config ".cfg-$a.yaml" >"$work/out-$a" 2>&1 &
	pids+=($!)
done
fail=0
for p in "${pids[@]}"; do wait "$p" || fail=$((fail + 1)); done
wall=$(ms "$t")
for i in $(seq 0 31); do # what a release that failed said
	a=$(printf 'app%03d' $((100 + i)))
	grep -q . "$work/out-$a" && grep -qi "error\|gave up" "$work/out-$a" && { echo "release of $a:"; tail -n 5 "$work/out-$a"; }
done
tag=$("$shipit" tag)
pinned=0
for i in $(seq 0 31); do
	a=$(printf 'app%03d' $((100 + i)))
	git -C "$gitops" show "main:apps/$a/overlays/staging/kustomization.yaml" | grep -q "newTag: \"$tag\"" && pinned=$((pinned + 1))
done
echo "32 concurrent releases of different apps: $((32 - fail)) exited 0, $pinned pinned at the head, wall ${wall} ms"
[ "$fail" = 0 ] && [ "$pinned" = 32 ]
