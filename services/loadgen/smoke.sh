#!/usr/bin/env bash
# make test-bench-smoke: the harness end to end on a tiny scale so it cannot
# rot: NATS, api-rest and api-ws from bin/, 20 connected members, a burst, a
# short fan-out and a reconnect storm; fails on any lost or duplicated delivery
# (the generator's exit status). No timing is judged.
set -euo pipefail
cd "$(dirname "$0")/../.."
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
exec timeout 180 bin/loadgen smoke -bin bin -timeout 150s
