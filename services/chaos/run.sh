#!/usr/bin/env bash
# The fault-injection suite (`make test-chaos`, part of `make test`): the
# scenarios of *.test.mjs against bin/nats-server, bin/api-rest and bin/api-ws
# (built by `make build`) on free loopback ports, with socket.io-client 4.8.x
# and 2.5.0 pinned by package-lock.json. Each scenario prints one `CHAOS ...`
# line with its counts. PostgreSQL: MOP_CHAOS_POSTGRES_URL (a fresh schema per
# run, dropped afterwards; psql creates it). MOP_CHAOS_KEEP=1 keeps the temp
# dirs (service logs). Every process the suite starts is stopped when it ends.
set -euo pipefail
cd "$(dirname "$0")"
root=$(cd ../.. && pwd)
for b in nats-server api-rest api-ws; do
	if [ ! -x "$root/bin/$b" ]; then
		echo "chaos suite: bin/$b is missing; run 'make build' first" >&2
		exit 1
	fi
done
command -v psql >/dev/null || { echo "chaos suite: psql is missing (scripts/ci/install.d/chaos.apt)" >&2; exit 1; }
npm ci --no-audit --no-fund --loglevel=error

node --test --test-concurrency=1 ./*.test.mjs &
suite=$!
trap 'kill -TERM "$suite" 2>/dev/null || true' INT TERM
wait "$suite"
