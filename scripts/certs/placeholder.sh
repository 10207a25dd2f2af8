#!/usr/bin/env bash
# Create a self-signed placeholder certificate for every given host that has no certificate yet
# in CERTS_DIR/<host>/{fullchain.pem,privkey.pem}, so nginx can start before the first issuance.
# Existing files are never touched. Keys are written 0600.
#
#   scripts/certs/placeholder.sh [--certs-dir DIR] [--days N] HOST...
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
certs_dir="$here/../../certs" days=30
while (($#)); do
	case "$1" in
	--certs-dir) certs_dir="$2"; shift 2 ;;
	--days) days="$2"; shift 2 ;;
	--) shift; break ;;
	-*) echo "placeholder: unknown option $1" >&2; exit 64 ;;
	*) break ;;
	esac
done
(($#)) || { echo "usage: $0 [--certs-dir DIR] [--days N] HOST..." >&2; exit 64; }
for host in "$@"; do
	[[ $host =~ ^[A-Za-z0-9.-]+$ ]] || { echo "placeholder: bad host name '$host'" >&2; exit 64; }
	dir="$certs_dir/$host"
	if [ -s "$dir/fullchain.pem" ] && [ -s "$dir/privkey.pem" ]; then continue; fi
	mkdir -p "$dir"
	chmod 0755 "$dir"
	tmp="$(mktemp -d "$dir/.placeholder.XXXXXX")"
	(
		umask 077
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
			-keyout "$tmp/privkey.pem" -out "$tmp/fullchain.pem" -days "$days" \
			-subj "/CN=$host/O=mop placeholder (not yet issued)" \
			-addext "subjectAltName=DNS:$host" >/dev/null 2>&1
	)
	chmod 0600 "$tmp/privkey.pem"
	chmod 0644 "$tmp/fullchain.pem"
	# key first, then certificate: a reader that sees the new certificate also sees its key
	mv -f "$tmp/privkey.pem" "$dir/privkey.pem"
	mv -f "$tmp/fullchain.pem" "$dir/fullchain.pem"
	rmdir "$tmp"
	echo "mop-certs: level=info event=placeholder host=$host dir=$dir"
done
