#!/usr/bin/env bash
# Run every Go fuzz target for FUZZTIME each (default 5s; `make fuzz` runs
# them longer). The seed corpora also run as plain tests in `go test`.
set -euo pipefail
cd "$(dirname "$0")/.."
t=${FUZZTIME:-5s}
targets=(
	"./internal/config FuzzParse"
	"./internal/tag FuzzParse"
	"./internal/redact FuzzURL"
	"./release FuzzCheckRecord"
	"./release/kustomize FuzzSetImage"
)
for entry in "${targets[@]}"; do
	read -r pkg fn <<<"$entry"
	echo "fuzz: $pkg $fn for $t"
	go test -run '^$' -fuzz "^${fn}\$" -fuzztime "$t" "$pkg"
done
