#!/usr/bin/env bash
# Writes the expiry of every served certificate as Prometheus metrics in the
# node exporter's textfile format, so the MopCertificateExpiring and
# MopCertificateCheckStale alerts see them:
#   mop_cert_not_after_timestamp_seconds{host="<host>"}  notAfter of certs/<host>/fullchain.pem
#   mop_cert_check_timestamp_seconds                     when this script last ran
# Usage: cert-expiry.sh [--certs-dir DIR] [--out FILE]
#   defaults: /opt/mop/certs and /var/lib/prometheus/node-exporter/mop-certs.prom
#   (the textfile directory of Debian's prometheus-node-exporter).
# Run after every renewal attempt (mop-certs-renew.service's ExecStopPost).
# The file is replaced atomically; a certificate that does not parse is an
# error (exit 1) after the others are written, so one bad host hides nothing.
set -euo pipefail
certs=/opt/mop/certs
out=/var/lib/prometheus/node-exporter/mop-certs.prom
while (($#)); do
	case $1 in
	--certs-dir) certs=${2:?}; shift 2 ;;
	--out) out=${2:?}; shift 2 ;;
	*) echo "usage: $0 [--certs-dir DIR] [--out FILE]" >&2; exit 64 ;;
	esac
done
tmp=$(mktemp "$out.XXXXXX")
trap 'rm -f "$tmp"' EXIT
rc=0
{
	echo "# HELP mop_cert_not_after_timestamp_seconds End of validity of the certificate served for a host."
	echo "# TYPE mop_cert_not_after_timestamp_seconds gauge"
	for pem in "$certs"/*/fullchain.pem; do
		[ -e "$pem" ] || continue
		host=$(basename "$(dirname "$pem")")
		if ! end=$(openssl x509 -noout -enddate -in "$pem" 2>/dev/null); then
			echo "cert-expiry: $pem is not a certificate" >&2
			rc=1
			continue
		fi
		echo "mop_cert_not_after_timestamp_seconds{host=\"$host\"} $(date -u -d "${end#notAfter=}" +%s)"
	done
	echo "# HELP mop_cert_check_timestamp_seconds When the certificate expiry was last checked."
	echo "# TYPE mop_cert_check_timestamp_seconds gauge"
	echo "mop_cert_check_timestamp_seconds $(date -u +%s)"
} >"$tmp"
chmod 0644 "$tmp"
mv -f "$tmp" "$out"
exit "$rc"
