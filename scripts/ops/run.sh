#!/usr/bin/env bash
# Runs operations suites (node:test files of this directory) against the
# binaries of `make build`: ./run.sh backup.test.mjs prometheus.test.mjs.
# Every process a suite starts is stopped when it ends.
set -euo pipefail
cd "$(dirname "$0")"
root=$(cd ../.. && pwd)
for b in nats-server api-rest api-ws; do
	[ -x "$root/bin/$b" ] || { echo "ops suites: bin/$b is missing; run 'make build' first" >&2; exit 1; }
done
if ! cmp -s package-lock.json node_modules/.mop-installed-lock 2>/dev/null; then
	npm ci --no-audit --no-fund --loglevel=error
	cp package-lock.json node_modules/.mop-installed-lock
fi
node --test --test-concurrency=1 "$@" &
suite=$!
trap 'kill -TERM "$suite" 2>/dev/null || true' INT TERM
wait "$suite"
