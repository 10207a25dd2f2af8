#!/usr/bin/env bash
# Restores a backup made by backup.sh into an EMPTY store; stop every api-rest
# instance first, start them on the restored store afterwards.
#   restore.sh --from FILE --database-url URL
# FILE: mop-*.sqlite3 or mop-*.pgdump (its .sha256 is checked when present).
# SQLite: URL names a file that must not exist yet (move the damaged one away,
# never over it); the copy is checked and moved into place atomically.
# PostgreSQL: URL names an existing database with no tables (createdb first);
# pg_restore runs in one transaction, so a failure leaves it empty.
# Exit: 0 ok, 1 restore failed, 2 the target is not empty, 64 usage.
set -euo pipefail
umask 077
log() { echo "mop-restore: level=$1 event=$2${3:+ $3}" >&2; }
usage() { echo "usage: $0 --from FILE --database-url URL" >&2; exit 64; }
from="" url=""
while (($#)); do
	case $1 in
	--from) from=${2:-}; shift 2 || usage ;;
	--database-url) url=${2:-}; shift 2 || usage ;;
	*) usage ;;
	esac
done
[[ -n $from && -n $url ]] || usage
[ -f "$from" ] || { log error no_backup "file=$from"; exit 1; }
if [ -f "$from.sha256" ]; then
	(cd "$(dirname "$from")" && sha256sum --quiet -c "$(basename "$from").sha256") ||
		{ log error checksum_mismatch "file=$from"; exit 1; }
fi
case $url in
postgres://* | postgresql://*)
	[[ $from == *.pgdump ]] || { log error wrong_kind "file=$from want=.pgdump"; exit 1; }
	tables=$(psql -X -Atq -d "$url" -c "SELECT count(*) FROM information_schema.tables WHERE table_schema NOT IN ('pg_catalog', 'information_schema')") ||
		{ log error connect_failed; exit 1; }
	[ "$tables" = 0 ] || { log error target_not_empty "tables=$tables"; exit 2; }
	pg_restore --exit-on-error --single-transaction --no-owner --no-privileges -d "$url" "$from" ||
		{ log error restore_failed; exit 1; }
	;;
*)
	[[ $from == *.sqlite3 ]] || { log error wrong_kind "file=$from want=.sqlite3"; exit 1; }
	db=${url#sqlite://}
	db=${db%%\?*}
	for f in "$db" "$db-wal" "$db-shm"; do
		[ ! -e "$f" ] || { log error target_not_empty "path=$f"; exit 2; }
	done
	mkdir -p "$(dirname "$db")"
	tmp=$(mktemp "$db.restore.XXXXXX")
	trap 'rm -f "$tmp"' EXIT
	cp "$from" "$tmp"
	check=$(sqlite3 -bail "$tmp" "PRAGMA integrity_check") || check=failed
	[ "$check" = ok ] || { log error check_failed "result=$check"; exit 1; }
	# Run as root for a service user: the file belongs to whoever owns the directory.
	if [ "$(id -u)" = 0 ]; then chown --reference="$(dirname "$db")" "$tmp"; fi
	mv "$tmp" "$db"
	trap - EXIT
	;;
esac
log info done "from=$from"
