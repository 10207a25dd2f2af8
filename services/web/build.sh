#!/usr/bin/env bash
# Build the web client into services/web/dist (see build.mjs). Installs the locked npm
# dependencies first when they are missing or older than package-lock.json.
# Env: MOP_API_BASE, MOP_WS_BASE (origins written to dist/config.js; production by default;
# `make run` passes the local ones it serves, so the log names the hosts the page talks to).
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
	npm ci --no-audit --no-fund --loglevel=error
fi
node build.mjs
