#!/usr/bin/env bash
# End-to-end edge test (make test-edge). Everything on loopback, free high ports, one temp dir.
#
#   1. render: the production render and the test render both pass `nginx -t`;
#   2. nginx (test render, fake upstreams): port-80 behaviour, TLS versions and tickets,
#      security and proxy headers, X-Request-ID, body limit, sticky routing for api-ws;
#   3. ACME: Pebble + pebble-challtestsrv, scripts/certs/renew.sh issues the four certificates
#      through nginx's webroot, a second run changes nothing, --dry-run changes nothing, a forced
#      renewal of one host changes only that host (served serials checked with s_client),
#      the deploy hook rolls back on a failed check, a broken issuance exits 1;
#   4. stack (when bin/ has the binaries): NATS, api-rest, two api-ws behind nginx, driven by
#      socket.io-client over TLS (scripts/edge/e2e): REST, wss, CORS, polling through the
#      sticky upstream, replacing one api-ws instance without losing a message.
#
# Environment: MOP_EDGE_BIN_DIR (default bin/) holds the binaries. Phase 4 fails when they are
# missing or do not become ready; MOP_EDGE_REQUIRE_STACK=0 turns that into a SKIP line, and
# MOP_EDGE_SKIP_STACK=1 skips phase 4 altogether. KEEP=1 keeps the temp dir.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
export PATH="$PATH:/usr/local/go/bin"
gobin="$(go env GOBIN 2>/dev/null || true)"
[ -n "$gobin" ] || gobin="$(go env GOPATH 2>/dev/null || echo "$HOME/go")/bin"
export PATH="$PATH:$gobin"
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3

T="$(mktemp -d "${TMPDIR:-/tmp}/mop-edge.XXXXXX")"
mkdir -p "$T/pids" "$T/logs"
domain="chat5202ol.xyz"
H_API="api.$domain" H_WS="ws-api.$domain" H_WWW="www.$domain" H_APP="app.$domain"
HOSTS=("$H_API" "$H_WS" "$H_WWW" "$H_APP")
started=$(date +%s)

pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   - $*"; }
bad() { fail=$((fail + 1)); echo "FAIL - $*"; }
check() { local what="$1"; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }
fatal() { bad "$*"; exit 1; }
section() { echo "== edge: $* ($(($(date +%s) - started))s)"; }

stop_all() { # newest first, so services stop before the NATS server they drain into
	local name pid
	[ -f "$T/pids/order" ] || return 0
	for name in $(tac "$T/pids/order"); do
		pid="$(cat "$T/pids/$name.pid" 2>/dev/null || true)"
		[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || continue
		kill -TERM "$pid" 2>/dev/null || true
		for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		if kill -0 "$pid" 2>/dev/null; then
			echo "== edge: $name (pid $pid) ignored SIGTERM for 10 s; killing it"
			kill -KILL "$pid" 2>/dev/null || true
		fi
		wait "$pid" 2>/dev/null || true
	done
}
finish() {
	local rc=$?
	stop_all
	((fail == 0)) || rc=1
	echo "== edge: done in $(($(date +%s) - started))s"
	if ((rc != 0)); then
		echo "== edge: FAILED; artifacts and logs in $T"
		for f in "$T"/logs/*.log "$T"/nginx/logs/error.log; do
			[ -s "$f" ] || continue
			echo "---- tail $f"
			tail -n 12 "$f" | cut -c1-400
		done
	elif [ -z "${KEEP:-}" ]; then
		rm -rf "$T"
	else
		echo "== edge: kept $T"
	fi
	echo "edge: $pass passed, $fail failed"
	exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT TERM

# start NAME CMD...: background process, its own log, pid file for the trap
start() {
	local name="$1"
	shift
	"$@" >"$T/logs/$name.log" 2>&1 &
	echo $! >"$T/pids/$name.pid"
	echo "$name" >>"$T/pids/order"
}
wait_for() { # timeout-seconds description command...: poll until the command succeeds
	local timeout="$1" what="$2"
	shift 2
	local end=$(($(date +%s%N) / 1000000 + timeout * 1000))
	until "$@" >/dev/null 2>&1; do
		if (($(date +%s%N) / 1000000 > end)); then echo "timeout ($timeout s) waiting for $what" >&2; return 1; fi
		sleep 0.1
	done
}
free_ports() { # N: N distinct free loopback ports
	"$PY" - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks: s.close()
EOF
}

for tool in nginx certbot openssl curl envsubst pebble pebble-challtestsrv; do
	command -v "$tool" >/dev/null || fatal "missing tool: $tool (run scripts/ci/install.d/edge.sh and install scripts/ci/install.d/edge.apt)"
done

read -r P_HTTP P_HTTPS P_FAKE_API P_FAKE_WS1 P_FAKE_WS2 P_PEB P_PEB_MGMT P_DNS P_CTS_MGMT \
	P_NATS P_REST P_WS1 P_WS2 <<<"$(free_ports 13)"
NGX="$T/nginx"
NGX_CONF="$NGX/conf/nginx.conf"
CERTS="$T/certs"
ngx() { nginx -p "$NGX/conf" -c "$NGX_CONF" -e "$NGX/logs/error.log" "$@"; }
render_test() { # api-upstreams ws-upstreams [render.sh options...]
	"$here/render.sh" --mode test --prefix "$NGX" --certs-dir "$CERTS" --http-port "$P_HTTP" \
		--https-port "$P_HTTPS" --api-upstreams "$1" --ws-upstreams "$2" --check "${@:3}"
}
https_url() { echo "https://$1:$P_HTTPS$2"; }
kurl() { # curl to 127.0.0.1 with SNI/Host of the given name; trusts $CA when set
	local host="$1"
	shift
	local tls=(-k)
	[ -z "${CA:-}" ] || tls=(--cacert "$CA")
	curl -sS --max-time 10 --resolve "$host:$P_HTTPS:127.0.0.1" --resolve "$host:$P_HTTP:127.0.0.1" "${tls[@]}" "$@"
}
served() { # host: "serial" of the certificate nginx presents for that SNI
	echo | timeout 10 openssl s_client -connect "127.0.0.1:$P_HTTPS" -servername "$1" 2>/dev/null |
		openssl x509 -noout -serial 2>/dev/null | cut -d= -f2
}
file_serial() { openssl x509 -in "$CERTS/$1/fullchain.pem" -noout -serial | cut -d= -f2; }
snapshot() { # every file under the certs dir: path, sha256, mtime, mode
	(cd "$CERTS" && find . -type f ! -path '*/.rollback/*' -printf '%p %T@ %m ' -exec sha256sum {} \; | sort)
}

# ---------------------------------------------------------------- 1. render
section "render"
prod="$T/prod"
if out="$("$here/render.sh" --mode prod --conf-dir "$prod/conf" --log-dir "$prod/logs" --acme-root "$prod/acme" \
	--certs-dir "$CERTS" --api-upstreams 10.0.0.1:8080,10.0.0.2:8080 --ws-upstreams 10.0.0.1:8081,10.0.0.2:8081 --check 2>&1)"; then
	ok "production render passes nginx -t"
else
	echo "$out"
	bad "production render passes nginx -t"
fi
pc="$(cat "$prod"/conf/mop.conf "$prod"/conf/sites/*.conf "$prod"/conf/snippets/*.conf "$prod"/conf/nginx.conf 2>/dev/null)"
for want in "listen 443 ssl http2;" "listen [::]:443 ssl http2;" "listen 80;" "ssl_protocols TLSv1.2 TLSv1.3;" \
	"ssl_session_tickets off;" "ssl_stapling off;" "hash \$mop_ws_route_key consistent;" "server 10.0.0.2:8081" \
	"user www-data;" "ssl_certificate     $CERTS/$H_API/fullchain.pem;" "return 301 https://\$host\$request_uri;" \
	"max-age=31536000; includeSubDomains"; do
	check "production render contains '$want'" grep -qF -- "$want" <<<"$pc"
done
if out="$("$here/render.sh" --mode prod --sites www --conf-dir "$prod/conf-www" --log-dir "$prod/logs" \
	--acme-root "$prod/acme" --certs-dir "$CERTS" --check 2>&1)" &&
	[ "$(ls "$prod/conf-www/sites")" = "$(printf '00-default.conf\n10-http.conf\n41-www.conf')" ] &&
	grep -q "server_name $H_WWW;" "$prod/conf-www/sites/10-http.conf"; then
	ok "single-host render (--sites www, for moving a host) passes nginx -t"
else
	echo "$out"
	bad "single-host render (--sites www, for moving a host) passes nginx -t"
fi
# the http-context include must also load inside Debian's own nginx.conf (production layout)
if [ -f /etc/nginx/nginx.conf ]; then
	sed -e "s#include /etc/nginx/conf.d/\*.conf;#include $prod/conf/mop.conf;#" -e '/sites-enabled/d' \
		-e "s#^pid .*#pid $T/debian.pid;#" /etc/nginx/nginx.conf >"$T/debian-nginx.conf"
	if out="$(nginx -t -q -c "$T/debian-nginx.conf" -e "$T/logs/debian-error.log" 2>&1)"; then
		ok "production include loads inside Debian's nginx.conf (nginx -t)"
	else
		echo "$out"
		bad "production include loads inside Debian's nginx.conf (nginx -t)"
	fi
fi
for h in "${HOSTS[@]}"; do
	check "placeholder certificate for $h (key 0600)" test "$(stat -c %a "$CERTS/$h/privkey.pem")" = 600
done

# small edge limits so that phase 2 can reach them quickly (production values: docs/deploy.md)
if out="$(render_test "127.0.0.1:$P_FAKE_API" "127.0.0.1:$P_FAKE_WS1,127.0.0.1:$P_FAKE_WS2" \
	--auth-rate 60r/m --auth-burst 10 --ws-conn-per-addr 5 2>&1)"; then
	ok "test render passes nginx -t"
else
	echo "$out"
	fatal "test render passes nginx -t"
fi

# ---------------------------------------------------------------- 2. nginx behaviour
section "nginx (fake upstreams)"
start fake-api "$PY" "$here/fake-upstream.py" api "$P_FAKE_API"
start fake-ws1 "$PY" "$here/fake-upstream.py" ws1 "$P_FAKE_WS1"
start fake-ws2 "$PY" "$here/fake-upstream.py" ws2 "$P_FAKE_WS2"
start nginx nginx -p "$NGX/conf" -c "$NGX_CONF" -e "$NGX/logs/error.log" -g 'daemon off;'
wait_for 10 "nginx" bash -c "echo | openssl s_client -connect 127.0.0.1:$P_HTTPS -servername $H_API" || fatal "nginx did not start"
for p in "$P_FAKE_API" "$P_FAKE_WS1" "$P_FAKE_WS2"; do wait_for 10 "fake upstream $p" curl -sf "http://127.0.0.1:$p/"; done
for h in "${HOSTS[@]}"; do
	check "nginx serves the placeholder certificate for $h before issuance" \
		bash -c "echo | openssl s_client -connect 127.0.0.1:$P_HTTPS -servername $h 2>/dev/null | openssl x509 -noout -subject | grep -q placeholder"
done

# port 80: ACME challenge files served, everything else redirected
mkdir -p "$NGX/acme/.well-known/acme-challenge"
echo "token-content-$$" >"$NGX/acme/.well-known/acme-challenge/probe"
for h in "${HOSTS[@]}"; do
	loc="$(kurl "$h" -o /dev/null -w '%{http_code} %{redirect_url}' "http://$h:$P_HTTP/some/path?x=1")"
	check "http://$h redirects to https (301)" test "$loc" = "301 https://$h:$P_HTTPS/some/path?x=1"
	check "http://$h serves /.well-known/acme-challenge/" \
		test "$(kurl "$h" "http://$h:$P_HTTP/.well-known/acme-challenge/probe")" = "token-content-$$"
done
code="$(curl -s -o /dev/null -w '%{http_code}' -H 'Host: other.example' "http://127.0.0.1:$P_HTTP/" || true)"
check "unknown host on port 80 gets no answer (444)" test "$code" = "000"
check "unknown SNI on 443 is refused" bash -c "! echo | openssl s_client -connect 127.0.0.1:$P_HTTPS -servername other.example 2>/dev/null | grep -q 'BEGIN CERT'"

# TLS versions and session tickets
tls_ok() { echo | openssl s_client -connect "127.0.0.1:$P_HTTPS" -servername "$H_API" "$@" 2>/dev/null | grep -qE '^New, TLSv1\.[23]'; }
check "TLS 1.3 accepted" tls_ok -tls1_3
check "TLS 1.2 accepted" tls_ok -tls1_2
check "TLS 1.1 refused" bash -c "! echo | openssl s_client -connect 127.0.0.1:$P_HTTPS -servername $H_API -tls1_1 -cipher 'DEFAULT:@SECLEVEL=0' 2>/dev/null | grep -q 'BEGIN CERT'"
check "no TLS session tickets" bash -c "! echo | openssl s_client -connect 127.0.0.1:$P_HTTPS -servername $H_API -tls1_2 2>/dev/null | grep -q 'TLS session ticket:'"

# api host: headers, request id, forwarded headers, body limit
hdr="$T/api-headers"
body="$(kurl "$H_API" -D "$hdr" -H 'X-Request-ID: edge-test-123' -H 'X-Forwarded-For: 6.6.6.6' "$(https_url "$H_API" /api/v1/ping)")"
check "api host proxies /api/ to the api upstream" grep -q '"backend": "api"' <<<"$body"
check "X-Request-ID passed through to the upstream" grep -q '"x-request-id": "edge-test-123"' <<<"$body"
check "X-Request-ID returned to the client exactly once" \
	test "$(grep -i '^x-request-id:' "$hdr" | tr -d '\r')" = "x-request-id: edge-test-123"
check "client X-Forwarded-For replaced by the real address" grep -q '"x-forwarded-for": "127.0.0.1"' <<<"$body"
check "X-Forwarded-Proto https" grep -q '"x-forwarded-proto": "https"' <<<"$body"
check "Host preserved" grep -q "\"host\": \"$H_API\"" <<<"$body"
for want in 'strict-transport-security: max-age=' 'x-content-type-options: nosniff' 'x-frame-options: DENY' 'referrer-policy: '; do
	check "api response header $want" grep -qi "^$want" "$hdr"
done
body="$(kurl "$H_API" -H 'X-Request-ID: bad id with spaces' "$(https_url "$H_API" /api/v1/ping)")"
check "malformed X-Request-ID replaced by a generated one" grep -qE '"x-request-id": "[0-9a-f]{32}"' <<<"$body"
code="$(head -c 2000000 /dev/zero | kurl "$H_API" -o "$T/413.json" -w '%{http_code}' -X POST --data-binary @- "$(https_url "$H_API" /api/v1/upload)")"
check "body over the limit gets 413 in the API error shape" bash -c "[ '$code' = 413 ] && grep -q payload_too_large '$T/413.json'"
check "/metrics is not exposed on the api host" test "$(kurl "$H_API" -o /dev/null -w '%{http_code}' "$(https_url "$H_API" /metrics)")" = 404
web_body="$(kurl "$H_WWW" -D "$hdr" "$(https_url "$H_WWW" /)")"
check "web host serves the web client's index.html (or the placeholder until built)" grep -q '<title>mop</title>' <<<"$web_body"
check "web host sends a CSP naming the api and ws-api origins" grep -qi "^content-security-policy:.*wss://$H_WS:$P_HTTPS" "$hdr"
check "web host SPA fallback to index.html" grep -q '<title>mop</title>' <<<"$(kurl "$H_APP" "$(https_url "$H_APP" /chat/123)")"
check "web host answers /config.js with this edge's API origins" grep -qF \
	"apiBase: \"https://$H_API:$P_HTTPS\", wsBase: \"https://$H_WS:$P_HTTPS\"" <<<"$(kurl "$H_APP" "$(https_url "$H_APP" /config.js)")"

# ws-api host: upgrade headers, route cookie, stickiness per key
body="$(kurl "$H_WS" --http1.1 -D "$hdr" -H 'Upgrade: websocket' -H 'Connection: Upgrade' "$(https_url "$H_WS" '/socket.io/?EIO=4&transport=polling')")"
check "ws-api forwards Upgrade and Connection: upgrade" bash -c "grep -q '\"upgrade\": \"websocket\"' <<<'$body' && grep -q '\"connection\": \"upgrade\"' <<<'$body'"
check "ws-api sets the route cookie to the client address when absent" grep -qi '^set-cookie: mop_ws_route=127.0.0.1; Path=/socket.io/; Secure; HttpOnly; SameSite=Lax' "$hdr"
kurl "$H_WS" -D "$hdr" -o /dev/null -H 'Cookie: mop_ws_route=10.1.2.3' "$(https_url "$H_WS" '/socket.io/?EIO=4&transport=polling')"
check "no Set-Cookie when the client already has a route cookie" bash -c "! grep -qi '^set-cookie:' '$hdr'"
sticky_ok=1 seen=""
for k in $(seq 1 24); do
	first=""
	for _ in 1 2 3; do
		b="$(kurl "$H_WS" -H "Cookie: mop_ws_route=10.9.0.$k" "$(https_url "$H_WS" "/socket.io/?EIO=4&transport=polling&sid=s$k")" | sed -n 's/.*"backend": "\([a-z0-9]*\)".*/\1/p')"
		[ -n "$first" ] || first="$b"
		[ "$b" = "$first" ] && [ -n "$b" ] || sticky_ok=0
	done
	seen+=" $first"
done
check "same route key, same api-ws instance (24 keys x 3 requests)" test "$sticky_ok" = 1
check "route keys spread over both api-ws instances" bash -c "grep -q ws1 <<<'$seen' && grep -q ws2 <<<'$seen'"
b1="$(kurl "$H_WS" "$(https_url "$H_WS" '/socket.io/?EIO=4&transport=polling&sid=abcdefgh12')" | sed -n 's/.*"backend": "\([a-z0-9]*\)".*/\1/p')"
b2="$(kurl "$H_WS" "$(https_url "$H_WS" '/socket.io/?EIO=4&transport=polling&sid=abcdefgh12')" | sed -n 's/.*"backend": "\([a-z0-9]*\)".*/\1/p')"
check "without a cookie the client address keeps a session on one instance" bash -c "[ -n '$b1' ] && [ '$b1' = '$b2' ]"
check "access log records the sid's prefix and the upstream, neither the sid nor the query string" \
	bash -c "grep -q 'sidp=abcdef transport=polling' '$NGX/logs/mop-access.log' && ! grep -q -e 'EIO=4' -e abcdefgh12 '$NGX/logs/mop-access.log'"

# edge limits (rendered above with burst 10 on /api/v1/auth/ and 5 connections per address on ws-api)
codes=""
for _ in $(seq 1 20); do
	codes+=" $(kurl "$H_API" -o "$T/limited.json" -w '%{http_code}' -X POST -H 'Content-Type: application/json' --data '{}' \
		"$(https_url "$H_API" /api/v1/auth/login)")"
done
n200="$(grep -o 200 <<<"$codes" | wc -l)" n429="$(grep -o 429 <<<"$codes" | wc -l)"
check "limit_req: 20 quick requests to /api/v1/auth/ from one address, at most burst+2 pass ($codes)" \
	bash -c "[ $n200 -ge 10 ] && [ $n200 -le 13 ] && [ $((n200 + n429)) = 20 ]"
check "limit_req: the refusal is 429 in the API error shape" grep -q '"code":"rate_limited"' "$T/limited.json"
check "limit_req: other API paths are not limited" \
	test "$(kurl "$H_API" -o /dev/null -w '%{http_code}' "$(https_url "$H_API" /api/v1/ping)")" = 200
held=()
for i in $(seq 1 8); do
	kurl "$H_WS" -o /dev/null -w '%{http_code}\n' "$(https_url "$H_WS" "/socket.io/?EIO=4&transport=polling&delay=2&n=$i")" >"$T/conn-$i.code" &
	held+=($!)
done
wait "${held[@]}"
conn_codes="$(cat "$T"/conn-*.code | sort | uniq -c | tr -s ' \n' ' ')"
check "limit_conn: of 8 concurrent requests from one address on ws-api, 5 are served and 3 refused ($conn_codes)" \
	test "$(grep -c 200 "$T"/conn-*.code | awk -F: '{s+=$2} END {print s}'):$(grep -c 429 "$T"/conn-*.code | awk -F: '{s+=$2} END {print s}')" = "5:3"
check "limit_conn: a new connection is served once those ended" \
	test "$(kurl "$H_WS" -o /dev/null -w '%{http_code}' "$(https_url "$H_WS" '/socket.io/?EIO=4&transport=polling')")" = 200

# Credentials in request lines (?token= of 2.x clients, ?sid=) reach neither log, also when the
# upstream fails (nginx writes the request line into its error messages). Last in this phase:
# the failure marks both fake ws upstreams down for a few seconds.
secret_tok="tok$(openssl rand -hex 16)" secret_sid="sid$(openssl rand -hex 10)"
kurl "$H_WS" -o /dev/null "$(https_url "$H_WS" "/socket.io/?EIO=3&transport=polling&sid=$secret_sid&token=$secret_tok")"
code="$(kurl "$H_WS" -o "$T/failed.json" -w '%{http_code}' "$(https_url "$H_WS" "/socket.io/?EIO=3&transport=polling&sid=$secret_sid&token=$secret_tok&close=1")")"
check "a failed ws upstream is answered 503 in the API error shape" bash -c "[ '$code' = 503 ] && grep -q service_unavailable '$T/failed.json'"
check "the failed request is in the access log (by sid prefix, with the upstream status)" \
	grep -qE "ustatus=502.* sidp=${secret_sid:0:6} " "$NGX/logs/mop-access.log"
check "no token or sid in nginx's access or error log" bash -c "! grep -rqF -e '$secret_tok' -e '$secret_sid' '$NGX/logs'"

# ---------------------------------------------------------------- 3. ACME with Pebble
section "ACME (Pebble, certbot, renew.sh)"
mkdir -p "$T/pebble"
(
	cd "$T/pebble"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.pem \
		-days 2 -subj "/CN=mop edge test CA for Pebble's listener" 2>/dev/null
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout key.pem -out csr.pem \
		-subj "/CN=127.0.0.1" 2>/dev/null
	printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >ext.cnf
	openssl x509 -req -in csr.pem -CA ca.pem -CAkey ca.key -CAcreateserial -out cert.pem -days 2 -extfile ext.cnf 2>/dev/null
	cat >pebble.json <<EOF
{
  "pebble": {
    "listenAddress": "127.0.0.1:$P_PEB",
    "managementListenAddress": "127.0.0.1:$P_PEB_MGMT",
    "certificate": "$T/pebble/cert.pem",
    "privateKey": "$T/pebble/key.pem",
    "httpPort": $P_HTTP,
    "tlsPort": $P_HTTPS,
    "ocspResponderURL": "",
    "externalAccountBindingRequired": false,
    "retryAfter": { "authz": 1, "order": 1 },
    "keyAlgorithm": "ecdsa",
    "profiles": { "default": { "description": "90 days", "validityPeriod": 7776000 } }
  }
}
EOF
)
start challtestsrv pebble-challtestsrv -defaultIPv4 127.0.0.1 -defaultIPv6 "" \
	-dnsserver "127.0.0.1:$P_DNS" -management "127.0.0.1:$P_CTS_MGMT" -http01 "" -https01 "" -tlsalpn01 "" -doh ""
wait_for 10 "challtestsrv" curl -sf -X POST -d '{"host":"probe.test","addresses":["127.0.0.1"]}' "http://127.0.0.1:$P_CTS_MGMT/add-a" ||
	fatal "pebble-challtestsrv did not start"
for h in "${HOSTS[@]}"; do
	curl -sf -X POST -d "{\"host\":\"$h\",\"addresses\":[\"127.0.0.1\"]}" "http://127.0.0.1:$P_CTS_MGMT/add-a"
done
PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=0 PEBBLE_AUTHZREUSE=0 \
	start pebble pebble -config "$T/pebble/pebble.json" -dnsserver "127.0.0.1:$P_DNS"
wait_for 15 "pebble" curl -sf --cacert "$T/pebble/ca.pem" "https://127.0.0.1:$P_PEB_MGMT/roots/0" || fatal "pebble did not start"
curl -sf --cacert "$T/pebble/ca.pem" "https://127.0.0.1:$P_PEB_MGMT/roots/0" >"$T/pebble-root.pem"
check "Pebble root fetched from the management port" grep -q 'BEGIN CERTIFICATE' "$T/pebble-root.pem"

LE="$T/le"
renew() { # extra args...: run renew.sh against Pebble, output to $T/logs/renew-N.log
	renew_n=$((${renew_n:-0} + 1))
	renew_log="$T/logs/renew-$renew_n.log"
	set +e
	"$repo/scripts/certs/renew.sh" --server "https://127.0.0.1:$P_PEB/dir" --ca-bundle "$T/pebble/ca.pem" \
		--email ops@example.org --domain "$domain" --certs-dir "$CERTS" --webroot "$NGX/acme" \
		--config-dir "$LE/config" --work-dir "$LE/work" --logs-dir "$LE/logs" \
		--nginx-test-cmd "nginx -t -q -p '$NGX/conf' -c '$NGX_CONF' -e '$NGX/logs/error.log'" \
		--nginx-reload-cmd "nginx -s reload -p '$NGX/conf' -c '$NGX_CONF' -e '$NGX/logs/error.log'" \
		--no-random-sleep-on-renew "$@" >"$renew_log" 2>&1
	renew_rc=$?
	set -e
	grep '^mop-certs:' "$renew_log" | sed "s/^/  [renew-$renew_n] /" || true
}
count() { grep -c -- "^mop-certs: .*$1" "$renew_log" || true; }
serve_matches() { # host: nginx presents the certificate now installed for the host
	[ "$(served "$1")" = "$(file_serial "$1")" ]
}

renew
check "renew.sh issues the four certificates (exit 0)" test "$renew_rc" = 0
check "four issuances logged" test "$(count 'event=issued ')" = 4
check "four installs logged" test "$(count 'event=installed ')" = 4
CA="$T/pebble-root.pem"
for h in "${HOSTS[@]}"; do
	check "$h: certificate chains to the Pebble root" \
		bash -c "openssl verify -CAfile '$CA' -untrusted '$CERTS/$h/fullchain.pem' '$CERTS/$h/fullchain.pem' >/dev/null"
	check "$h: certificate names the host" bash -c "openssl x509 -in '$CERTS/$h/fullchain.pem' -noout -ext subjectAltName | grep -q 'DNS:$h'"
	check "$h: key is 0600" test "$(stat -c %a "$CERTS/$h/privkey.pem")" = 600
	check "$h: nginx serves the issued certificate" wait_for 10 "$h serial" serve_matches "$h"
done
check "HTTPS verifies with the Pebble root (SNI $H_API)" \
	bash -c "curl -sS --max-time 10 --cacert '$CA' --resolve '$H_API:$P_HTTPS:127.0.0.1' -o /dev/null '$(https_url "$H_API" /api/v1/ping)'"

snap1="$(snapshot)"
renew
check "second run succeeds (exit 0)" test "$renew_rc" = 0
check "second run: nothing due for any host" test "$(count 'event=not_due ')" = 4
check "second run: nothing installed" test "$(count 'event=installed ')" = 0
check "second run changes no file (hash, mtime, mode)" test "$snap1" = "$(snapshot)"

renew --dry-run
check "--dry-run succeeds (exit 0)" test "$renew_rc" = 0
check "--dry-run changes no file" test "$snap1" = "$(snapshot)"

declare -A before
for h in "${HOSTS[@]}"; do before[$h]="$(served "$h")"; done
renew --force-renew "$H_WWW"
check "forced renewal of $H_WWW succeeds (exit 0)" test "$renew_rc" = 0
check "exactly one host renewed and installed" bash -c "[ $(count 'event=renewed ') = 1 ] && [ $(count 'event=installed ') = 1 ] && grep -q 'event=installed host=$H_WWW ' '$renew_log'"
new_www="$(file_serial "$H_WWW")"
check "$H_WWW has a new serial on disk" test "$new_www" != "${before[$H_WWW]}"
check "nginx serves the new serial for $H_WWW (s_client -servername)" wait_for 10 "new serial" serve_matches "$H_WWW"
for h in "$H_API" "$H_WS" "$H_APP"; do
	check "nginx still serves the unchanged serial for $h" test "$(served "$h")" = "${before[$h]}"
	check "$h files untouched by the forced renewal" test "$(grep " ./$h/" <<<"$snap1")" = "$(snapshot | grep " ./$h/")"
done
snap2="$(snapshot)"
renew
check "run after the forced renewal changes nothing" bash -c "[ $renew_rc = 0 ] && [ '$snap2' = '$(snapshot)' ] && [ $(count 'event=installed ') = 0 ]"

# deploy hook: a failing nginx check restores the previous files; a mismatched pair is refused
fake="$T/fake-lineage/config/live/$H_APP"
mkdir -p "$fake"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$fake/privkey.pem" \
	-out "$fake/fullchain.pem" -days 1 -subj "/CN=$H_APP" 2>/dev/null
app_serial="$(served "$H_APP")"
set +e
hook_out="$(RENEWED_LINEAGE="$fake" RENEWED_DOMAINS="$H_APP" MOP_CERTS_DIR="$CERTS" MOP_NGINX_TEST_CMD=false \
	MOP_NGINX_RELOAD_CMD=false "$repo/scripts/certs/deploy-hook.sh" 2>&1)"
hook_rc=$?
set -e
check "deploy hook: failed nginx check exits 2 and logs a rollback" bash -c "[ $hook_rc = 2 ] && grep -q 'event=rollback host=$H_APP' <<<'$hook_out'"
check "deploy hook: previous files restored after the failed check" test "$snap2" = "$(snapshot)"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$T/other.key" \
	-out /dev/null -days 1 -subj "/CN=x" 2>/dev/null
cp "$T/other.key" "$fake/privkey.pem"
set +e
hook_out="$(RENEWED_LINEAGE="$fake" MOP_CERTS_DIR="$CERTS" MOP_NGINX_TEST_CMD=true MOP_NGINX_RELOAD_CMD=true \
	"$repo/scripts/certs/deploy-hook.sh" 2>&1)"
hook_rc=$?
set -e
check "deploy hook: certificate/key mismatch refused (exit 2), nothing touched" \
	bash -c "[ $hook_rc = 2 ] && grep -q 'reason=key_mismatch' <<<'$hook_out' && [ '$snap2' = '$(snapshot)' ]"
check "nginx still serves $H_APP's certificate" test "$(served "$H_APP")" = "$app_serial"

# out of sync (a host's files lost): the next run reinstalls from the lineage, nothing else moves
rm -f "$CERTS/$H_APP/fullchain.pem" "$CERTS/$H_APP/privkey.pem"
renew --hosts "$H_APP"
check "lost files: reinstalled from the lineage (exit 0)" bash -c "[ $renew_rc = 0 ] && grep -q 'event=out_of_sync host=$H_APP' '$renew_log' && [ $(count 'event=installed ') = 1 ]"
check "lost files: same certificate back on disk and served" bash -c "[ '$(file_serial "$H_APP")' = '$app_serial' ]" 
check "lost files: served again" wait_for 10 "app serial" serve_matches "$H_APP"

# a host whose challenge cannot be answered: exit 1, greppable error, others untouched
snap3="$(snapshot | grep -v "/nope.$domain/")"
renew --hosts "nope.$domain"
check "failed issuance exits 1 with event=issue_failed" bash -c "[ $renew_rc = 1 ] && grep -q 'level=error event=issue_failed host=nope.$domain' '$renew_log' && grep -q 'event=done result=error' '$renew_log'"
check "failed issuance touches no other host" test "$snap3" = "$(snapshot | grep -v "/nope.$domain/")"

# systemd units and timer are valid (a missing /opt/mop binary is expected here)
if command -v systemd-analyze >/dev/null; then
	mkdir -p "$T/units"
	cp "$repo/scripts/systemd/mop-certs-renew.service" "$repo/scripts/systemd/mop-certs-renew.timer" "$T/units/"
	cp "$repo/scripts/systemd/mop-api-rest@.service" "$T/units/mop-api-rest@8080.service"
	cp "$repo/scripts/systemd/mop-api-ws@.service" "$T/units/mop-api-ws@8081.service"
	(cd "$T/units" && SYSTEMD_LOG_LEVEL=warning systemd-analyze verify --man=no ./*.service ./*.timer) >"$T/logs/systemd-verify.log" 2>&1 || true
	check "systemd units verify (systemd-analyze verify)" \
		bash -c "! grep -v -e '/opt/mop/' -e 'not executable' -e 'No such file or directory' '$T/logs/systemd-verify.log' | grep -q ."
fi

# ---------------------------------------------------------------- 4. the real stack
section "stack (api-rest, 2x api-ws, NATS) through nginx"
stack_skip() {
	if [ "${MOP_EDGE_REQUIRE_STACK:-1}" != 0 ]; then bad "stack: $*"; else echo "SKIP - stack phase: $*"; fi
}
bins_ok=1
bindir="${MOP_EDGE_BIN_DIR:-$repo/bin}"
for b in api-rest api-ws nats-server; do [ -x "$bindir/$b" ] || bins_ok=0; done
if [ -n "${MOP_EDGE_SKIP_STACK:-}" ]; then
	echo "SKIP - stack phase: MOP_EDGE_SKIP_STACK set"
elif ((!bins_ok)); then
	stack_skip "bin/api-rest, bin/api-ws or bin/nats-server missing (make build)"
else
	. "$here/stack.sh"
fi
