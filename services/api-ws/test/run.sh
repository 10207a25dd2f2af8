#!/usr/bin/env bash
# The real-client suite of api-ws: socket.io-client 4.8.x and 2.5.0 (pinned by
# package-lock.json) against bin/nats-server, bin/api-rest and two bin/api-ws
# on free loopback ports (see stack.mjs). `make test-ws` builds the binaries
# first. Every process the suite starts is stopped when it ends.
set -euo pipefail
cd "$(dirname "$0")"
root=$(cd ../../.. && pwd)
for b in nats-server api-rest api-ws; do
  if [ ! -x "$root/bin/$b" ]; then
    echo "api-ws client suite: bin/$b is missing; run 'make build' first" >&2
    exit 1
  fi
done
npm ci --no-audit --no-fund --loglevel=error

node --test --test-concurrency=1 ./*.test.mjs &
suite=$!
# The suite kills its processes on exit and on SIGINT/SIGTERM; forward ours.
trap 'kill -TERM "$suite" 2>/dev/null || true' INT TERM
wait "$suite"
