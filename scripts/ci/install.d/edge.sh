#!/usr/bin/env bash
# Edge test tools from the Go module proxy: Pebble (ACME test server) and pebble-challtestsrv
# (its DNS/challenge test server). Idempotent: skips the build when the pinned version is
# already installed in $(go env GOPATH)/bin.
set -euo pipefail
PEBBLE_VERSION="${PEBBLE_VERSION:-v2.10.3}"
export PATH="$PATH:/usr/local/go/bin"
gobin="$(go env GOBIN)"; [ -n "$gobin" ] || gobin="$(go env GOPATH)/bin"
for cmd in pebble pebble-challtestsrv; do
	bin="$gobin/$cmd"
	if [ -x "$bin" ] && go version -m "$bin" 2>/dev/null | grep -qE "^[[:space:]]+mod[[:space:]]+github.com/letsencrypt/pebble/v2[[:space:]]+${PEBBLE_VERSION}([[:space:]]|$)"; then
		echo "edge: $cmd $PEBBLE_VERSION already installed ($bin)"
		continue
	fi
	echo "edge: go install github.com/letsencrypt/pebble/v2/cmd/$cmd@$PEBBLE_VERSION"
	GOFLAGS=-trimpath GOWORK=off go install "github.com/letsencrypt/pebble/v2/cmd/$cmd@$PEBBLE_VERSION"
done
