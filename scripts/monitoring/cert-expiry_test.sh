#!/usr/bin/env bash
# Test of cert-expiry.sh: real certificates from openssl, output checked with
# promtool (format) and against openssl's own notAfter; a damaged certificate
# fails the run but the others are still written.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "cert-expiry test: $*" >&2; exit 1; }
mkcert() { # host days
	mkdir -p "$tmp/certs/$1"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$1" -days "$2" \
		-keyout "$tmp/certs/$1/privkey.pem" -out "$tmp/certs/$1/fullchain.pem" 2>/dev/null
}
mkcert api.example.test 10
mkcert www.example.test 90
before=$(date -u +%s)
"$here/cert-expiry.sh" --certs-dir "$tmp/certs" --out "$tmp/mop-certs.prom"
promtool check metrics <"$tmp/mop-certs.prom" || fail "promtool rejects the output"
for host in api.example.test www.example.test; do
	want=$(date -u -d "$(openssl x509 -noout -enddate -in "$tmp/certs/$host/fullchain.pem" | cut -d= -f2)" +%s)
	grep -qx "mop_cert_not_after_timestamp_seconds{host=\"$host\"} $want" "$tmp/mop-certs.prom" || fail "$host: want notAfter $want"
done
days=$(( ($(awk -F'} ' '/host="api.example.test"/ {print $2}' "$tmp/mop-certs.prom") - before) / 86400 ))
[ "$days" -eq 9 ] || [ "$days" -eq 10 ] || fail "api cert: $days days left, want 10"
checked=$(awk '/^mop_cert_check_timestamp_seconds / {print $2}' "$tmp/mop-certs.prom")
[ "$checked" -ge "$before" ] || fail "check timestamp $checked older than the run"

echo garbage >"$tmp/certs/www.example.test/fullchain.pem"
if "$here/cert-expiry.sh" --certs-dir "$tmp/certs" --out "$tmp/mop-certs.prom" 2>/dev/null; then fail "a damaged certificate must fail the run"; fi
grep -q 'host="api.example.test"' "$tmp/mop-certs.prom" || fail "the good certificate was not written after a bad one"
grep -q 'host="www.example.test"' "$tmp/mop-certs.prom" && fail "the damaged certificate got a value"
[ -z "$(ls "$tmp" | grep 'mop-certs.prom.')" ] || fail "temporary file left behind"
echo "cert-expiry test: ok"
