# shipit's own tasks. `make demo` and `make test` work on a fresh Debian
# machine as root: they install and start what they need (ci/testenv.sh).

.PHONY: all build demo test testenv testenv-down lint bench fuzz clean

all: build

build:
	go build -o bin/shipit ./cmd/shipit

# Start a local BuildKit daemon and registry, then build and push the
# example app (examples/app: two images) with shipit. (Without the tests'
# oracles: cosign's CLI, the SBOM scanner, the npm CI checkers.)
demo: build
	SHIPIT_TESTENV_ORACLES=0 ci/testenv.sh up
	ci/demo.sh

# Everything: gofmt, go vet, golangci-lint, unit and end-to-end tests
# against a real buildkitd and registry, which it starts and stops.
test:
	ci/test.sh

testenv:
	ci/testenv.sh up

testenv-down:
	ci/testenv.sh down

lint:
	ci/lint.sh

bench:
	ci/bench.sh

# Every fuzz target for FUZZTIME each (default here: 2 minutes).
fuzz:
	FUZZTIME=$${FUZZTIME:-2m} ci/fuzz.sh

clean:
	ci/testenv.sh down
	rm -rf bin .testenv examples/app/.shipit
