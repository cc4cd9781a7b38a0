#!/usr/bin/env bash
# gofmt, go vet and golangci-lint (built from tools/go.mod, so its version is pinned).
set -euo pipefail
cd "$(dirname "$0")/.."
unformatted=$(gofmt -l $(git ls-files '*.go'))
if [ -n "$unformatted" ]; then
	echo "gofmt: these files need formatting:" >&2
	echo "$unformatted" >&2
	exit 1
fi
go vet ./...
# No function in internal/cli over 60 lines, none elsewhere over 80.
go run ./ci/funlen
if [ ! -x bin/golangci-lint ] || [ tools/go.mod -nt bin/golangci-lint ]; then
	echo "lint: building golangci-lint (tools/go.mod)" >&2
	(cd tools && go build -o ../bin/golangci-lint github.com/golangci/golangci-lint/v2/cmd/golangci-lint)
fi
bin/golangci-lint run ./...

# GitHub workflows: shipit's own, and the template shipit init writes.
if [ ! -x bin/actionlint ] || [ tools/actionlint/go.mod -nt bin/actionlint ]; then
	echo "lint: building actionlint (tools/actionlint/go.mod)" >&2
	(cd tools/actionlint && go build -o ../../bin/actionlint github.com/rhysd/actionlint/cmd/actionlint)
fi
bin/actionlint .github/workflows/*.yml ci/templates/github-actions.yml ci/templates/github-preview.yml

# Every action, in shipit's workflows and in what init writes, pinned by a
# 40-hex commit with its tag in a comment beside it.
unpinned=$(grep -nE '^\s*(-\s+)?uses:' .github/workflows/*.yml ci/templates/*.yml internal/scaffold/templates/ci/*.tmpl |
	grep -vE 'uses:\s*[A-Za-z0-9_.-]+/[A-Za-z0-9_./-]+@[0-9a-f]{40} # v[0-9]' || true)
if [ -n "$unpinned" ]; then
	echo "lint: actions not pinned by commit SHA (with '# vX.Y.Z' beside it):" >&2
	echo "$unpinned" >&2
	exit 1
fi
