#!/usr/bin/env bash
# Online backup of api-rest's database, taken while the service runs.
#   backup.sh --database-url URL --out DIR [--keep N] [--textfile FILE]
# URL is api-rest's DATABASE_URL: a SQLite file path (sqlite:// optional) or a
# postgres:// URL. SQLite: `VACUUM INTO` writes a consistent, compacted copy
# from one read transaction (writers are not blocked; WAL mode). PostgreSQL:
# `pg_dump --format=custom` (one snapshot; use the client of the server's major
# version). The copy is checked (integrity_check / pg_restore --list) before it
# gets its final name mop-<UTC time>.sqlite3|.pgdump plus a .sha256 file, so a
# half-written file never looks like a backup. --keep N deletes all but the N
# newest backups of that kind in DIR. --textfile writes, after a success, the
# node exporter textfile the MopBackupStale alert reads
# (mop_backup_last_success_timestamp_seconds, mop_backup_size_bytes), e.g.
# /var/lib/prometheus/node-exporter/mop-backup.prom. Prints the file name on stdout.
# Exit: 0 ok, 1 backup or check failed, 64 usage.
set -euo pipefail
umask 077
log() { echo "mop-backup: level=$1 event=$2${3:+ $3}" >&2; }
usage() { echo "usage: $0 --database-url URL --out DIR [--keep N] [--textfile FILE]" >&2; exit 64; }
url="" out="" keep=0 textfile=""
while (($#)); do
	case $1 in
	--database-url) url=${2:-}; shift 2 || usage ;;
	--out) out=${2:-}; shift 2 || usage ;;
	--keep) keep=${2:-}; shift 2 || usage ;;
	--textfile) textfile=${2:-}; shift 2 || usage ;;
	*) usage ;;
	esac
done
[[ -n $url && -n $out && $keep =~ ^[0-9]+$ ]] || usage
mkdir -p "$out"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
case $url in
postgres://* | postgresql://*)
	kind=pgdump
	tmp=$(mktemp "$out/.mop-$stamp.XXXXXX")
	trap 'rm -f "$tmp"' EXIT
	if ! pg_dump --format=custom --no-owner --no-privileges --file="$tmp" "$url"; then
		log error dump_failed; exit 1
	fi
	pg_restore --list "$tmp" >/dev/null || { log error check_failed "file=$tmp"; exit 1; }
	;;
*)
	kind=sqlite3
	db=${url#sqlite://}
	db=${db%%\?*}
	[ -f "$db" ] || { log error no_database "path=$db"; exit 1; }
	tmp=$(mktemp "$out/.mop-$stamp.XXXXXX")
	rm -f "$tmp" # VACUUM INTO refuses an existing file
	trap 'rm -f "$tmp"' EXIT
	# Single quotes in the path would end the SQL string: double them.
	if ! sqlite3 -bail "$db" ".timeout 30000" "VACUUM INTO '${tmp//\'/\'\'}'"; then
		log error vacuum_failed "path=$db"; exit 1
	fi
	check=$(sqlite3 -bail "$tmp" "PRAGMA integrity_check") || check=failed
	[ "$check" = ok ] || { log error check_failed "result=$check"; exit 1; }
	;;
esac
final="$out/mop-$stamp.$kind"
mv "$tmp" "$final"
trap - EXIT
(cd "$out" && sha256sum "$(basename "$final")" >"$(basename "$final").sha256")
bytes=$(stat -c %s "$final")
log info done "file=$final bytes=$bytes"
if [ -n "$textfile" ]; then
	prom=$(mktemp "$textfile.XXXXXX")
	cat >"$prom" <<PROM
# HELP mop_backup_last_success_timestamp_seconds When the last database backup succeeded.
# TYPE mop_backup_last_success_timestamp_seconds gauge
mop_backup_last_success_timestamp_seconds{kind="$kind"} $(date -u +%s)
# HELP mop_backup_size_bytes Size of the last database backup.
# TYPE mop_backup_size_bytes gauge
mop_backup_size_bytes{kind="$kind"} $bytes
PROM
	chmod 0644 "$prom"
	mv -f "$prom" "$textfile"
fi
if ((keep > 0)); then
	ls -1 "$out"/mop-*."$kind" 2>/dev/null | sort -r | tail -n +"$((keep + 1))" | while read -r old; do
		rm -f "$old" "$old.sha256"
		log info pruned "file=$old"
	done
fi
echo "$final"
