#!/usr/bin/env bash
# Runs every Go package of the workspace with -race. A package that fails is run once more on
# its own: a real failure fails twice and stays red; a timing flake on a loaded 2-core machine
# is printed as FLAKY so it gets fixed, without blocking every other change meanwhile.
set -uo pipefail
cd "$(dirname "$0")/../.."
GO=${GO:-go}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
"$GO" test -race -count=1 work 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
[ "$rc" -eq 0 ] && exit 0
mapfile -t failed < <(grep -E '^FAIL[[:space:]]+[^[:space:]]+' "$log" | awk '{print $2}' | sort -u)
# No failed package named (e.g. the workspace does not load): nothing to retry.
((${#failed[@]})) || exit "$rc"
grep -q '\[build failed\]\|\[setup failed\]' "$log" && exit "$rc"
echo "== test-go: re-running the failed packages once: ${failed[*]}"
"$GO" test -race -count=1 "${failed[@]}" || exit 1
echo "== test-go: FLAKY (failed once, passed alone): ${failed[*]}"
