#!/usr/bin/env bash
# Render the nginx templates in nginx/ for production or for a test run.
#
#   scripts/edge/render.sh --mode prod [options]            # 80/443, /etc/nginx/mop, /var/log/nginx
#   scripts/edge/render.sh --mode test --prefix DIR \
#       --http-port P --https-port Q --api-upstreams 127.0.0.1:A --ws-upstreams 127.0.0.1:B,127.0.0.1:C
#
# Output: CONF_DIR/nginx.conf (standalone main config), CONF_DIR/mop.conf (http-context include),
# CONF_DIR/snippets/*.conf, CONF_DIR/sites/*.conf. The previous CONF_DIR is kept as CONF_DIR.prev
# and restored when --check (nginx -t) fails. Missing certificates are replaced by self-signed
# placeholders (scripts/certs/placeholder.sh) so that nginx starts before the first issuance.
#
# Options (defaults: prod / test):
#   --mode prod|test          required
#   --prefix DIR              test: runtime root (conf/, logs/, tmp/, acme/, nginx.pid); prod: unused
#   --conf-dir DIR            /etc/nginx/mop / PREFIX/conf
#   --log-dir DIR             /var/log/nginx / PREFIX/logs
#   --pid-file FILE           /run/nginx.pid / PREFIX/nginx.pid
#   --acme-root DIR           /var/www/mop-acme / PREFIX/acme   (certbot --webroot -w DIR)
#   --certs-dir DIR           REPO/certs (both)
#   --web-root DIR            REPO/services/web/dist (both); --www-root/--app-root override per host
#   --domain NAME             chat5202ol.xyz
#   --http-port N             80 / required
#   --https-port N            443 / required
#   --listen-addr ADDR        "" (all) / 127.0.0.1
#   --ipv6 yes|no             yes / no (also listen on [::])
#   --api-upstreams LIST      127.0.0.1:8080 / required   host:port,host:port
#   --ws-upstreams LIST       127.0.0.1:8081 / required
#   --user NAME               www-data / root when run as root, else none
#   --hsts-max-age SECONDS    31536000 / 300
#   --ws-read-timeout DUR     3600s
#   --auth-rate RATE          60r/m   requests to /api/v1/auth/ per client address (limit_req)
#   --auth-burst N            30      burst above that rate before 429
#   --ws-conn-per-addr N      100     concurrent connections per address on the ws-api host
#   --sites LIST              api,ws-api,www,app (render only these hosts, e.g. after moving one)
#   --check                   run `nginx -t` on the result (restores the previous render on failure)
#   --no-placeholder-certs    do not create placeholder certificates
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
tmpl="$repo/nginx"

die() { echo "render: error: $*" >&2; exit 64; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit "${1:-0}"; }

mode="" prefix="" conf_dir="" log_dir="" pid_file="" acme_root="" certs_dir="" web_root=""
www_root="" app_root="" domain="chat5202ol.xyz" http_port="" https_port="" listen_addr=""
ipv6="" api_up="" ws_up="" user="__default__" hsts_max_age="" ws_read_timeout="3600s"
check=0 placeholders=1 sites="api,ws-api,www,app" auth_rate="" auth_burst="" ws_conn=""
while (($#)); do
	case "$1" in
	--mode) mode="$2"; shift ;;
	--prefix) prefix="$2"; shift ;;
	--conf-dir) conf_dir="$2"; shift ;;
	--log-dir) log_dir="$2"; shift ;;
	--pid-file) pid_file="$2"; shift ;;
	--acme-root) acme_root="$2"; shift ;;
	--certs-dir) certs_dir="$2"; shift ;;
	--web-root) web_root="$2"; shift ;;
	--www-root) www_root="$2"; shift ;;
	--app-root) app_root="$2"; shift ;;
	--domain) domain="$2"; shift ;;
	--http-port) http_port="$2"; shift ;;
	--auth-rate) auth_rate="$2"; shift ;;
	--auth-burst) auth_burst="$2"; shift ;;
	--ws-conn-per-addr) ws_conn="$2"; shift ;;
	--https-port) https_port="$2"; shift ;;
	--listen-addr) listen_addr="$2"; shift ;;
	--ipv6) ipv6="$2"; shift ;;
	--api-upstreams) api_up="$2"; shift ;;
	--ws-upstreams) ws_up="$2"; shift ;;
	--user) user="$2"; shift ;;
	--hsts-max-age) hsts_max_age="$2"; shift ;;
	--ws-read-timeout) ws_read_timeout="$2"; shift ;;
	--sites) sites="$2"; shift ;;
	--check) check=1 ;;
	--no-placeholder-certs) placeholders=0 ;;
	-h | --help) usage 0 ;;
	*) die "unknown argument: $1 (see --help)" ;;
	esac
	shift || die "missing value for the last option"
done

case "$mode" in
prod)
	conf_dir="${conf_dir:-/etc/nginx/mop}"
	log_dir="${log_dir:-/var/log/nginx}"
	pid_file="${pid_file:-/run/nginx.pid}"
	acme_root="${acme_root:-/var/www/mop-acme}"
	http_port="${http_port:-80}"
	https_port="${https_port:-443}"
	ipv6="${ipv6:-yes}"
	api_up="${api_up:-127.0.0.1:8080}"
	ws_up="${ws_up:-127.0.0.1:8081}"
	[ "$user" != "__default__" ] || user="www-data"
	hsts_max_age="${hsts_max_age:-31536000}"
	temp_root=""
	;;
test)
	[ -n "$prefix" ] || die "--mode test needs --prefix"
	mkdir -p "$prefix"
	prefix="$(cd "$prefix" && pwd)"
	conf_dir="${conf_dir:-$prefix/conf}"
	log_dir="${log_dir:-$prefix/logs}"
	pid_file="${pid_file:-$prefix/nginx.pid}"
	acme_root="${acme_root:-$prefix/acme}"
	listen_addr="${listen_addr:-127.0.0.1}"
	ipv6="${ipv6:-no}"
	[ -n "$http_port" ] && [ -n "$https_port" ] || die "--mode test needs --http-port and --https-port"
	[ -n "$api_up" ] && [ -n "$ws_up" ] || die "--mode test needs --api-upstreams and --ws-upstreams"
	if [ "$user" = "__default__" ]; then
		if [ "$(id -u)" = 0 ]; then user="root"; else user=""; fi
	fi
	hsts_max_age="${hsts_max_age:-300}"
	temp_root="$prefix/tmp"
	;;
*) die "--mode must be prod or test" ;;
esac
certs_dir="${certs_dir:-$repo/certs}"
web_root="${web_root:-$repo/services/web/dist}"
www_root="${www_root:-$web_root}"
app_root="${app_root:-$web_root}"
[[ $http_port =~ ^[0-9]+$ && $https_port =~ ^[0-9]+$ ]] || die "ports must be numbers"
auth_rate="${auth_rate:-60r/m}" auth_burst="${auth_burst:-30}" ws_conn="${ws_conn:-100}"
[[ $auth_rate =~ ^[0-9]+r/[sm]$ ]] || die "--auth-rate must look like 60r/m or 2r/s"
[[ $auth_burst =~ ^[0-9]+$ && $ws_conn =~ ^[1-9][0-9]*$ ]] || die "--auth-burst and --ws-conn-per-addr must be numbers"
[[ $domain =~ ^[a-z0-9.-]+$ ]] || die "bad --domain: $domain"
[[ $ipv6 == yes || $ipv6 == no ]] || die "--ipv6 must be yes or no"

abspath() { mkdir -p "$1" && (cd "$1" && pwd); }
certs_dir="$(abspath "$certs_dir")"
mkdir -p "$(dirname "$conf_dir")"
conf_dir="$(cd "$(dirname "$conf_dir")" && pwd)/$(basename "$conf_dir")"
log_dir="$(abspath "$log_dir")"
acme_root="$(abspath "$acme_root")"

host_api="api.$domain" host_ws="ws-api.$domain" host_www="www.$domain" host_app="app.$domain"
hosts=()
has_site() { [[ ",$sites," == *",$1,"* ]]; }
for s in ${sites//,/ }; do
	case "$s" in api | ws-api | www | app) hosts+=("$s.$domain") ;; *) die "unknown site '$s' in --sites" ;; esac
done
((${#hosts[@]})) || die "--sites is empty"

# listen lines
listen_lines() { # port, extra flags
	local port="$1" flags="$2" out
	if [ -n "$listen_addr" ]; then out="    listen $listen_addr:$port$flags;"; else out="    listen $port$flags;"; fi
	if [ "$ipv6" = yes ]; then out+=$'\n'"    listen [::]:$port$flags;"; fi
	printf '%s' "$out"
}
server_lines() { # comma-separated host:port list
	local out="" s addr_re='^[][A-Za-z0-9.:-]+:[0-9]+$'
	IFS=',' read -r -a arr <<<"$1"
	for s in "${arr[@]}"; do
		[[ $s =~ $addr_re ]] || die "bad upstream address: '$s'"
		out+="    server $s max_fails=1 fail_timeout=5s;"$'\n'
	done
	printf '%s' "${out%$'\n'}"
}

if [ "$https_port" = 443 ]; then https_suffix=""; else https_suffix=":$https_port"; fi
hsts="max-age=$hsts_max_age; includeSubDomains"

# web roots: a placeholder page until the web client is built
stage="$conf_dir.tmp.$$"
rm -rf "$stage"
mkdir -p "$stage/snippets" "$stage/sites"
trap 'rm -rf "$stage"' EXIT
placeholder_root="$conf_dir/placeholder-web"
web_root_or_placeholder() {
	if [ -f "$1/index.html" ]; then (cd "$1" && pwd); else
		echo "render: warning: web root $1 has no index.html; serving a placeholder page" >&2
		echo "$placeholder_root"
	fi
}
www_root="$(web_root_or_placeholder "$www_root")"
app_root="$(web_root_or_placeholder "$app_root")"
mkdir -p "$stage/placeholder-web"
cat >"$stage/placeholder-web/index.html" <<EOF
<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>mop</title></head>
<body><h1>mop</h1><p>The web client is not deployed on this host yet.</p></body></html>
EOF

temp_paths=""
if [ -n "$temp_root" ]; then
	mkdir -p "$temp_root"
	for t in client_body proxy fastcgi uwsgi scgi; do
		mkdir -p "$temp_root/$t"
		temp_paths+="    ${t}_temp_path $temp_root/$t;"$'\n'
	done
fi
mime_types=/etc/nginx/mime.types
[ -f "$mime_types" ] || die "$mime_types not found (is nginx installed?)"

export MOP_MODE="$mode" MOP_CONF_DIR="$conf_dir" MOP_LOG_DIR="$log_dir" MOP_PID_FILE="$pid_file"
export MOP_ACME_ROOT="$acme_root" MOP_CERTS_DIR="$certs_dir" MOP_MIME_TYPES="$mime_types"
export MOP_MAIN_USER="" MOP_WORKER_PROCESSES="auto" MOP_ERROR_LOG_LEVEL="warn"
[ -z "$user" ] || MOP_MAIN_USER="user $user;"
[ "$mode" = prod ] || MOP_WORKER_PROCESSES=1
export MOP_TEMP_PATHS="$temp_paths"
export MOP_HOST_API="$host_api" MOP_HOST_WS="$host_ws" MOP_HOST_WWW="$host_www" MOP_HOST_APP="$host_app"
export MOP_HTTP_HOSTS="${hosts[*]}"
export MOP_HTTP_PORT="$http_port" MOP_HTTPS_SUFFIX="$https_suffix" MOP_HSTS="$hsts"
MOP_LISTEN_HTTP="$(listen_lines "$http_port" "")"
MOP_LISTEN_HTTP_DEFAULT="$(listen_lines "$http_port" " default_server")"
MOP_LISTEN_HTTPS="$(listen_lines "$https_port" " ssl http2")"
MOP_LISTEN_HTTPS_DEFAULT="$(listen_lines "$https_port" " ssl http2 default_server")"
MOP_API_SERVERS="$(server_lines "$api_up")"
MOP_WS_SERVERS="$(server_lines "$ws_up")"
export MOP_LISTEN_HTTP MOP_LISTEN_HTTP_DEFAULT MOP_LISTEN_HTTPS MOP_LISTEN_HTTPS_DEFAULT MOP_API_SERVERS MOP_WS_SERVERS
export MOP_API_BODY_LIMIT="1m" MOP_API_UPLOAD_LIMIT="11m" MOP_WS_BODY_LIMIT="1m" MOP_WS_READ_TIMEOUT="$ws_read_timeout"
export MOP_WEB_HOST="" MOP_WEB_ROOT="" MOP_WEB_CSP=""
export MOP_AUTH_RATE="$auth_rate" MOP_AUTH_BURST="$auth_burst" MOP_WS_CONN_PER_ADDR="$ws_conn"
export MOP_API_ORIGIN="https://$host_api$https_suffix" MOP_WS_ORIGIN="https://$host_ws$https_suffix"
vars='$MOP_MODE $MOP_CONF_DIR $MOP_LOG_DIR $MOP_PID_FILE $MOP_ACME_ROOT $MOP_CERTS_DIR $MOP_MIME_TYPES
$MOP_MAIN_USER $MOP_WORKER_PROCESSES $MOP_ERROR_LOG_LEVEL $MOP_TEMP_PATHS $MOP_HOST_API $MOP_HOST_WS
$MOP_HOST_WWW $MOP_HOST_APP $MOP_HTTP_PORT $MOP_HTTPS_SUFFIX $MOP_HSTS $MOP_LISTEN_HTTP
$MOP_LISTEN_HTTP_DEFAULT $MOP_LISTEN_HTTPS $MOP_LISTEN_HTTPS_DEFAULT $MOP_API_SERVERS $MOP_WS_SERVERS
$MOP_API_BODY_LIMIT $MOP_API_UPLOAD_LIMIT $MOP_WS_BODY_LIMIT $MOP_WS_READ_TIMEOUT $MOP_WEB_HOST $MOP_WEB_ROOT $MOP_WEB_CSP
$MOP_API_ORIGIN $MOP_WS_ORIGIN $MOP_HTTP_HOSTS $MOP_AUTH_RATE $MOP_AUTH_BURST $MOP_WS_CONN_PER_ADDR'
vars="${vars//$'\n'/ }"
render() { # template (relative to nginx/), output
	envsubst "$vars" <"$tmpl/$1" >"$2"
	if grep -n '\${MOP_[A-Z_]*}' "$2" >&2; then die "unrendered placeholder in $2"; fi
}

render nginx.conf.tmpl "$stage/nginx.conf"
render mop.conf.tmpl "$stage/mop.conf"
for f in "$tmpl"/snippets/*.conf.tmpl; do
	b="$(basename "$f" .tmpl)"
	render "snippets/$b.tmpl" "$stage/snippets/$b"
done
for f in 00-default 10-http; do render "sites/$f.conf.tmpl" "$stage/sites/$f.conf"; done
if has_site api; then render sites/20-api.conf.tmpl "$stage/sites/20-api.conf"; fi
if has_site ws-api; then render sites/30-ws-api.conf.tmpl "$stage/sites/30-ws-api.conf"; fi
api_origin="$MOP_API_ORIGIN"
ws_origin="$host_ws$https_suffix"
for pair in "41-www:$host_www:$www_root" "42-app:$host_app:$app_root"; do
	IFS=: read -r name MOP_WEB_HOST MOP_WEB_ROOT <<<"$pair"
	has_site "${MOP_WEB_HOST%%.*}" || continue
	MOP_WEB_CSP="default-src 'self'; connect-src 'self' $api_origin https://$ws_origin wss://$ws_origin; img-src 'self' data: blob: $api_origin; style-src 'self' 'unsafe-inline'; object-src 'none'; base-uri 'self'; frame-ancestors 'none'; form-action 'self'"
	export MOP_WEB_HOST MOP_WEB_ROOT MOP_WEB_CSP
	render sites/40-web.conf.tmpl "$stage/sites/$name.conf"
done

if ((placeholders)); then
	"$repo/scripts/certs/placeholder.sh" --certs-dir "$certs_dir" "${hosts[@]}"
fi

# swap in atomically-ish; keep the previous render for rollback
rm -rf "$conf_dir.prev"
if [ -e "$conf_dir" ]; then mv "$conf_dir" "$conf_dir.prev"; fi
mv "$stage" "$conf_dir"
trap - EXIT
echo "render: mode=$mode sites=$sites conf=$conf_dir/nginx.conf include=$conf_dir/mop.conf https=$https_port http=$http_port api=[$api_up] ws=[$ws_up]"

if ((check)); then
	if ! out="$(nginx -t -q -p "$conf_dir" -c "$conf_dir/nginx.conf" -e "$log_dir/error.log" 2>&1)"; then
		echo "$out" >&2
		echo "render: error: nginx -t failed; restoring the previous render" >&2
		rm -rf "$conf_dir.failed"
		mv "$conf_dir" "$conf_dir.failed"
		if [ -e "$conf_dir.prev" ]; then mv "$conf_dir.prev" "$conf_dir"; fi
		exit 1
	fi
	echo "render: nginx -t ok"
fi
