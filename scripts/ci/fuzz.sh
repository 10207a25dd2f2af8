#!/usr/bin/env bash
# make test-fuzz: every fuzz target of the workspace, each for FUZZ_TIME
# (default 100000x: that many coverage-guided inputs, a few seconds each) on
# top of its seed corpus (which plain `go test` already runs). A count, not a
# duration: a duration that runs out while the engine is between inputs is
# reported as a failure ("context deadline exceeded") by Go's fuzzer. A crash
# fails the run and leaves the input under the package's testdata/fuzz/.
set -euo pipefail
cd "$(dirname "$0")/../.."
GO=${GO:-go}
t=${FUZZ_TIME:-100000x}
n=0
while IFS=: read -r file _ decl; do
	name=$(sed -E 's/^func (Fuzz[A-Za-z0-9_]*).*/\1/' <<<"$decl")
	dir=$(dirname "$file")
	echo "== fuzz $dir $name ($t)"
	(cd "$dir" && $GO test -run='^$' -fuzz="^${name}\$" -fuzztime="$t" .)
	n=$((n + 1))
done < <(git ls-files '*_test.go' | xargs grep -H -n '^func Fuzz' | sort)
echo "fuzz: $n targets, no crash"
