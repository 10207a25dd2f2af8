#!/usr/bin/env bash
# certbot deploy hook: install the renewed host's certificate into CERTS_DIR/<host>/, check the
# nginx configuration, reload nginx. If the check fails, the previous files are put back and
# nginx is not reloaded. Only the renewed host's folder is touched.
#
# Input (from certbot): RENEWED_LINEAGE=<config-dir>/live/<host> (the certificate name is the
# host), RENEWED_DOMAINS. Settings: MOP_CERTS_DIR, MOP_NGINX_TEST_CMD, MOP_NGINX_RELOAD_CMD from
# the environment (scripts/certs/renew.sh exports them), else from
# <config-dir>/mop-deploy-hook.env (written by renew.sh), for certbot runs started elsewhere.
#
# Exit codes: 0 installed and reloaded; 2 refused or rolled back (old files in place);
# 3 installed but nginx reload failed; 64 bad input.
set -euo pipefail

log() {
	local level="$1" event="$2"
	shift 2
	local line="mop-certs: level=$level event=$event $*"
	echo "$line"
	# renew.sh re-prints these lines at top level (certbot indents hook output)
	if [ -n "${MOP_HOOK_STATUS_DIR:-}" ] && [ -n "${host:-}" ]; then echo "$line" >>"$MOP_HOOK_STATUS_DIR/$host.log"; fi
}
host=""
lineage="${RENEWED_LINEAGE:-}"
[ -n "$lineage" ] && [ -d "$lineage" ] || { log error install_failed reason=no_lineage lineage="$lineage"; exit 64; }
host="$(basename "$lineage")"
[[ $host =~ ^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$ ]] || { log error install_failed reason=bad_name lineage="$lineage"; exit 64; }

env_file="$(dirname "$(dirname "$lineage")")/mop-deploy-hook.env"
if [ -z "${MOP_CERTS_DIR:-}" ] && [ -r "$env_file" ]; then
	# shellcheck disable=SC1090
	. "$env_file"
fi
certs_dir="${MOP_CERTS_DIR:?MOP_CERTS_DIR not set and no $env_file}"
test_cmd="${MOP_NGINX_TEST_CMD:-nginx -t -q}"
reload_cmd="${MOP_NGINX_RELOAD_CMD:-nginx -s reload}"
status() { # remember the outcome for renew.sh, then exit with it
	[ -z "${MOP_HOOK_STATUS_DIR:-}" ] || echo "$1" >"$MOP_HOOK_STATUS_DIR/$host"
	exit "$1"
}

src_cert="$lineage/fullchain.pem" src_key="$lineage/privkey.pem"
dst="$certs_dir/$host"
log info install host="$host" from="$lineage" to="$dst"
if ! [ -s "$src_cert" ] || ! [ -s "$src_key" ]; then
	log error install_failed host="$host" reason=missing_source_files
	status 2
fi
# Refuse a pair that does not belong together before touching anything.
pub_cert="$(openssl x509 -in "$src_cert" -noout -pubkey 2>/dev/null | sha256sum)"
pub_key="$(openssl pkey -in "$src_key" -pubout 2>/dev/null | sha256sum)"
if [ "$pub_cert" != "$pub_key" ]; then
	log error install_failed host="$host" reason=key_mismatch
	status 2
fi

mkdir -p "$dst"
chmod 0755 "$dst"
backup="$dst/.rollback"
rm -rf "$backup"
mkdir -m 0700 "$backup"
had_old=0
if [ -e "$dst/fullchain.pem" ] && [ -e "$dst/privkey.pem" ]; then
	cp -p "$dst/fullchain.pem" "$dst/privkey.pem" "$backup/"
	had_old=1
fi
(
	umask 077
	cp -L "$src_key" "$dst/.privkey.pem.new"
	cp -L "$src_cert" "$dst/.fullchain.pem.new"
)
chmod 0600 "$dst/.privkey.pem.new"
chmod 0644 "$dst/.fullchain.pem.new"
mv -f "$dst/.privkey.pem.new" "$dst/privkey.pem"
mv -f "$dst/.fullchain.pem.new" "$dst/fullchain.pem"

serial="$(openssl x509 -in "$dst/fullchain.pem" -noout -serial | cut -d= -f2)"
not_after="$(date -u -d "$(openssl x509 -in "$dst/fullchain.pem" -noout -enddate | cut -d= -f2)" +%Y-%m-%dT%H:%M:%SZ)"

if ! out="$(bash -c "$test_cmd" 2>&1)"; then
	printf '%s\n' "$out" | sed "s/^/nginx-t[$host]: /"
	if ((had_old)); then
		mv -f "$backup/privkey.pem" "$dst/privkey.pem"
		mv -f "$backup/fullchain.pem" "$dst/fullchain.pem"
	fi
	log error rollback host="$host" reason=nginx_test_failed restored="$had_old"
	status 2
fi
if ! out="$(bash -c "$reload_cmd" 2>&1)"; then
	printf '%s\n' "$out" | sed "s/^/nginx-reload[$host]: /"
	log error reload_failed host="$host" serial="$serial"
	status 3
fi
rm -rf "$backup"
log info installed host="$host" serial="$serial" not_after="$not_after"
status 0
