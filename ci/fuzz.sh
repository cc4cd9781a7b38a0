#!/usr/bin/env bash
# Run every Go fuzz target for FUZZTIME each: a duration (2m) or a count of
# inputs (10000x, the default: a count has no deadline for the fuzzer's
# shutdown to trip on). `make fuzz` runs them longer. The seed corpora also
# run as plain tests in `go test`.
set -euo pipefail
cd "$(dirname "$0")/.."
t=${FUZZTIME:-10000x}
targets=(
	"./internal/config FuzzParse"
	"./internal/tag FuzzParse"
	"./internal/redact FuzzURL"
	"./release FuzzCheckRecord"
	"./internal/kustomize FuzzSetImage"
)
for entry in "${targets[@]}"; do
	read -r pkg fn <<<"$entry"
	echo "fuzz: $pkg $fn for $t"
	if ! out=$(go test -run '^$' -fuzz "^${fn}\$" -fuzztime "$t" "$pkg" 2>&1); then
		echo "$out"
		# Go's fuzzer sometimes reports its own time limit as a failure
		# ("context deadline exceeded") with no failing input: run again.
		# A real failure writes the input under testdata/fuzz and fails again.
		if grep -q 'context deadline exceeded' <<<"$out" && ! grep -q 'Failing input written' <<<"$out"; then
			echo "fuzz: $fn: the fuzzer's own deadline, not a failing input: once more"
			go test -run '^$' -fuzz "^${fn}\$" -fuzztime "$t" "$pkg"
		else
			exit 1
		fi
	else
		echo "$out" | tail -n 2
	fi
done
