#!/usr/bin/env bash
# make bench: measure api-ws/api-rest and the Node.js Socket.IO reference in one
# run and write JSON, a Markdown table and PNG plots to bench-results/<ts>/.
#
#   BENCH_PROFILE=quick|full   (default quick: under 10 minutes)
#   BENCH_POSTGRES_URL=...     (admin URL for the REST scenario's throwaway
#                               database; default the local test server; "" skips)
#   BENCH_OUT=dir              (results folder)
#   BENCH_FLAGS="..."          (extra loadgen flags, e.g. -systems mop)
set -euo pipefail
cd "$(dirname "$0")/../.."

# Every connection costs one descriptor in the server and one in the
# generator; raise the soft limit as far as the hard one allows.
ulimit -n 1048576 2>/dev/null || ulimit -n "$(ulimit -Hn)"
echo "bench: open files $(ulimit -n), ephemeral ports $(tr '\t' - </proc/sys/net/ipv4/ip_local_port_range)"

profile=${BENCH_PROFILE:-quick}
out=${BENCH_OUT:-bench-results/$(date -u +%Y%m%d-%H%M%S)-$profile}
pg=${BENCH_POSTGRES_URL-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}
mkdir -p "$out"

(cd services/loadgen/reference && npm ci --no-audit --no-fund --loglevel=error)

# Private copies: a concurrent `make build` must not swap a binary mid-run.
bindir=$(mktemp -d)
trap 'rm -rf "$bindir"' EXIT
cp bin/api-rest bin/api-ws bin/nats-server bin/loadgen "$bindir"/

# shellcheck disable=SC2086
"$bindir/loadgen" bench -profile "$profile" -out "$out" -bin "$bindir" \
	-reference services/loadgen/reference -postgres "$pg" ${BENCH_FLAGS:-} 2>&1 | tee "$out/bench.log"
mkdir -p bench-results && ln -sfn "$(cd "$out" && pwd)" bench-results/latest
echo "bench: summary in $out/summary.md"
