#!/usr/bin/env bash
# Issue and renew the edge certificates: one certificate per host, HTTP-01 through the nginx
# ACME webroot, certbot non-interactive. Idempotent: issues what is missing, renews what is due
# (certbot's rule: less than 30 days left), installs a host's files only when they changed, and
# touches nothing else. Safe to run from a timer twice a day.
#
#   scripts/certs/renew.sh --email ops@example.org [options]
#
# Options:
#   --server URL               ACME directory (default: Let's Encrypt production)
#   --staging                  Let's Encrypt staging directory
#   --email ADDR               contact address for the ACME account (or --no-email)
#   --no-email                 register without a contact address
#   --domain NAME              chat5202ol.xyz; hosts default to api. ws-api. www. app. of it
#   --hosts LIST               comma-separated host names (overrides --domain's four)
#   --certs-dir DIR            where nginx reads certs: DIR/<host>/{fullchain,privkey}.pem (REPO/certs)
#   --webroot DIR              nginx's ACME webroot (/var/www/mop-acme)
#   --config-dir DIR           certbot config dir (/etc/letsencrypt)
#   --work-dir DIR             certbot work dir (/var/lib/letsencrypt)
#   --logs-dir DIR             certbot logs dir (/var/log/letsencrypt)
#   --nginx-test-cmd CMD       config check run by the deploy hook ("nginx -t -q")
#   --nginx-reload-cmd CMD     reload run by the deploy hook ("systemctl reload nginx", or
#                              "nginx -s reload" where systemd is not running)
#   --ca-bundle FILE           CA bundle to trust for the ACME server's own TLS (test servers)
#   --key-type ecdsa|rsa       (ecdsa)
#   --force-renew HOST         renew HOST now whether due or not (repeatable)
#   --no-random-sleep-on-renew do not let certbot sleep up to 8 minutes before renewing
#   --dry-run                  talk to the ACME server but save and install nothing
#
# Environment defaults (for EnvironmentFile/cron): MOP_ACME_SERVER, MOP_ACME_EMAIL, MOP_DOMAIN,
# MOP_ACME_HOSTS, MOP_CERTS_DIR, MOP_ACME_WEBROOT, MOP_CERTBOT_CONFIG_DIR, MOP_CERTBOT_WORK_DIR,
# MOP_CERTBOT_LOGS_DIR, MOP_NGINX_TEST_CMD, MOP_NGINX_RELOAD_CMD, MOP_ACME_CA_BUNDLE, MOP_ACME_KEY_TYPE.
#
# Log lines: "mop-certs: level=<info|warn|error> event=<name> key=value ...", one per action
# (events: start, issue, issued, issue_failed, renew, renewed, not_due, renew_failed, install,
# installed, install_failed, rollback, reload_failed, in_sync, done). Alert on level=error or on
# "event=done result=error".
#
# Exit codes: 0 success (including "nothing to do"); 1 certbot could not issue or renew a host;
# 2 a host's new files failed the nginx check and the previous files were restored; 3 nginx
# reload failed; 64 usage error; 75 another run holds the lock. With several failures, the
# highest code wins.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
LE_PROD=https://acme-v02.api.letsencrypt.org/directory
LE_STAGING=https://acme-staging-v02.api.letsencrypt.org/directory

log() { # level event k=v...
	local level="$1" event="$2"
	shift 2
	echo "mop-certs: level=$level event=$event $*"
}
die_usage() { echo "renew: error: $*" >&2; exit 64; }

# Defaults may also come from the environment (the systemd unit's EnvironmentFile, see
# scripts/systemd/certs-renew.env.example); command-line options win.
server="${MOP_ACME_SERVER:-$LE_PROD}" email="${MOP_ACME_EMAIL:-}" no_email=0
domain="${MOP_DOMAIN:-chat5202ol.xyz}" hosts_csv="${MOP_ACME_HOSTS:-}"
certs_dir="${MOP_CERTS_DIR:-$repo/certs}" webroot="${MOP_ACME_WEBROOT:-/var/www/mop-acme}"
config_dir="${MOP_CERTBOT_CONFIG_DIR:-/etc/letsencrypt}" work_dir="${MOP_CERTBOT_WORK_DIR:-/var/lib/letsencrypt}"
logs_dir="${MOP_CERTBOT_LOGS_DIR:-/var/log/letsencrypt}"
nginx_test_cmd="${MOP_NGINX_TEST_CMD:-nginx -t -q}" nginx_reload_cmd="${MOP_NGINX_RELOAD_CMD:-}"
ca_bundle="${MOP_ACME_CA_BUNDLE:-}" key_type="${MOP_ACME_KEY_TYPE:-ecdsa}"
dry_run=0 no_sleep=0 force=()
while (($#)); do
	case "$1" in
	--server) server="$2"; shift ;;
	--staging) server="$LE_STAGING" ;;
	--email) email="$2"; shift ;;
	--no-email) no_email=1 ;;
	--domain) domain="$2"; shift ;;
	--hosts) hosts_csv="$2"; shift ;;
	--certs-dir) certs_dir="$2"; shift ;;
	--webroot) webroot="$2"; shift ;;
	--config-dir) config_dir="$2"; shift ;;
	--work-dir) work_dir="$2"; shift ;;
	--logs-dir) logs_dir="$2"; shift ;;
	--nginx-test-cmd) nginx_test_cmd="$2"; shift ;;
	--nginx-reload-cmd) nginx_reload_cmd="$2"; shift ;;
	--ca-bundle) ca_bundle="$2"; shift ;;
	--key-type) key_type="$2"; shift ;;
	--force-renew) force+=("$2"); shift ;;
	--no-random-sleep-on-renew) no_sleep=1 ;;
	--dry-run) dry_run=1 ;;
	-h | --help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
	*) die_usage "unknown argument: $1 (see --help)" ;;
	esac
	shift
done

[ -n "$email" ] || ((no_email)) || die_usage "--email ADDR (or --no-email) is required"
[[ $key_type == ecdsa || $key_type == rsa ]] || die_usage "--key-type must be ecdsa or rsa"
if [ -z "$hosts_csv" ]; then hosts_csv="api.$domain,ws-api.$domain,www.$domain,app.$domain"; fi
IFS=',' read -r -a hosts <<<"$hosts_csv"
for h in "${hosts[@]}"; do [[ $h =~ ^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$ ]] || die_usage "bad host name '$h'"; done
for h in "${force[@]}"; do [[ ",$hosts_csv," == *",$h,"* ]] || die_usage "--force-renew $h: not in the host list"; done
if [ -z "$nginx_reload_cmd" ]; then
	if [ -d /run/systemd/system ]; then nginx_reload_cmd="systemctl reload nginx"; else nginx_reload_cmd="nginx -s reload"; fi
fi
command -v certbot >/dev/null || { log error start reason=certbot_not_installed; exit 1; }
[ -z "$ca_bundle" ] || [ -r "$ca_bundle" ] || die_usage "--ca-bundle $ca_bundle is not readable"

mkdir -p "$config_dir" "$work_dir" "$logs_dir" "$webroot"
certs_dir="$(mkdir -p "$certs_dir" && cd "$certs_dir" && pwd)"

exec 9>>"$config_dir/mop-renew.lock"
if ! flock -n 9; then log error start reason=locked lock="$config_dir/mop-renew.lock"; exit 75; fi

# The deploy hook finds its settings in the environment (below) or, when certbot is run by
# something else, in this file next to the lineages. Written only when it changes.
hook="$here/deploy-hook.sh"
hook_env="$config_dir/mop-deploy-hook.env"
want_env="$(printf 'MOP_CERTS_DIR=%q\nMOP_NGINX_TEST_CMD=%q\nMOP_NGINX_RELOAD_CMD=%q\n' \
	"$certs_dir" "$nginx_test_cmd" "$nginx_reload_cmd")"
if ((!dry_run)) && [ "$(cat "$hook_env" 2>/dev/null)" != "$want_env" ]; then
	printf '%s\n' "$want_env" >"$hook_env.tmp" && mv -f "$hook_env.tmp" "$hook_env"
fi
export MOP_CERTS_DIR="$certs_dir" MOP_NGINX_TEST_CMD="$nginx_test_cmd" MOP_NGINX_RELOAD_CMD="$nginx_reload_cmd"
status_dir="$(mktemp -d "${TMPDIR:-/tmp}/mop-renew.XXXXXX")"
trap 'rm -rf "$status_dir"' EXIT
export MOP_HOOK_STATUS_DIR="$status_dir"
[ -z "$ca_bundle" ] || export REQUESTS_CA_BUNDLE="$ca_bundle"

log info start server="$server" hosts="$hosts_csv" dry_run="$dry_run" certs_dir="$certs_dir"

# Placeholders for hosts that have no files yet, so nginx (and its config check) can run.
if ((!dry_run)); then "$here/placeholder.sh" --certs-dir "$certs_dir" "${hosts[@]}"; fi

common=(--non-interactive --config-dir "$config_dir" --work-dir "$work_dir" --logs-dir "$logs_dir"
	--server "$server" --agree-tos --no-eff-email --key-type "$key_type"
	--authenticator webroot --webroot-path "$webroot" --preferred-challenges http
	--deploy-hook "$hook")
if ((no_email)); then common+=(--register-unsafely-without-email); else common+=(-m "$email"); fi
((!dry_run)) || common+=(--dry-run)

rc=0
bump() { if (($1 > rc)); then rc=$1; fi; }
sha() { if [ -f "$1" ]; then sha256sum <"$1" | cut -d' ' -f1; else echo none; fi; }
run_certbot() { # host, certbot args...: output prefixed, exit code kept
	local host="$1"
	shift
	set +e
	certbot "$@" 2>&1 | sed -u -e "s/^ *mop-certs: /(hook) /" -e "s/^/certbot[$host]: /"
	local st="${PIPESTATUS[0]}"
	set -e
	return "$st"
}
replay_hook_log() { # the hook's log lines for a host, at top level
	if [ -f "$status_dir/$1.log" ]; then cat "$status_dir/$1.log"; rm -f "$status_dir/$1.log"; fi
}
hook_status() { cat "$status_dir/$1" 2>/dev/null || true; } # the hook's exit code; empty: it did not run

for host in "${hosts[@]}"; do
	live="$config_dir/live/$host"
	if [ ! -f "$config_dir/renewal/$host.conf" ]; then
		action=issue
		log info issue host="$host"
		args=(certonly "${common[@]}" --cert-name "$host" -d "$host")
	else
		action=renew
		forced=0
		for f in "${force[@]}"; do [ "$f" != "$host" ] || forced=1; done
		args=(renew "${common[@]}" --cert-name "$host")
		((!forced)) || args+=(--force-renewal)
		((!no_sleep)) || args+=(--no-random-sleep-on-renew)
		log info renew host="$host" forced="$forced"
	fi
	before="$(sha "$live/cert.pem")"
	cb_rc=0
	run_certbot "$host" "${args[@]}" || cb_rc=$?
	replay_hook_log "$host"
	st="$(hook_status "$host")"
	if [ -n "$st" ]; then
		# certbot obtained a certificate and ran the deploy hook; the hook's outcome decides
		if [ "$action" = issue ]; then log info issued host="$host"; else log info renewed host="$host"; fi
		bump "$st"
		continue
	fi
	if ((cb_rc != 0)); then
		log error "${action}_failed" host="$host" certbot_exit="$cb_rc"
		bump 1
		continue
	fi
	if ((dry_run)); then
		if [ "$action" = issue ]; then log info issued host="$host" dry_run=1; else log info renewed host="$host" dry_run=1; fi
		continue
	elif [ "$before" != "$(sha "$live/cert.pem")" ]; then
		# a new certificate without a hook run (certbot skipped the hook): the check below installs it
		if [ "$action" = issue ]; then log info issued host="$host"; else log info renewed host="$host"; fi
	elif [ "$action" = renew ]; then
		log info not_due host="$host"
	fi
	# Safety net: the lineage and the installed files must match (e.g. after an earlier deploy
	# failure, or when certbot renewed outside this script). Install only when they differ.
	[ -f "$live/fullchain.pem" ] || continue
	if [ "$(sha "$live/fullchain.pem")" = "$(sha "$certs_dir/$host/fullchain.pem")" ] &&
		[ "$(sha "$live/privkey.pem")" = "$(sha "$certs_dir/$host/privkey.pem")" ]; then
		log info in_sync host="$host"
		continue
	fi
	log warn out_of_sync host="$host" action=install
	set +e
	MOP_HOOK_STATUS_DIR="" RENEWED_LINEAGE="$live" RENEWED_DOMAINS="$host" "$hook"
	st=$?
	set -e
	bump "$st"
done

if ((rc == 0)); then log info done result=ok; else log error done result=error exit_code="$rc"; fi
exit "$rc"
