# Phase 4 of scripts/edge/test.sh (sourced, not run): the real stack behind the test nginx.
# Uses test.sh's helpers and variables (start, wait_for, check, ok, bad, stack_skip, render_test,
# ngx, kurl, https_url, T, repo, here, ports, CA = Pebble root).

JWT="$(openssl rand -hex 32)"
ORIGINS="https://www.$domain,https://app.$domain"
mkdir -p "$T/nats" "$T/db"
svc_env() { # port
	echo "HTTP_ADDR=127.0.0.1:$1" "NATS_URL=nats://127.0.0.1:$P_NATS" "JWT_SIGNING_KEY=$JWT" \
		"ALLOWED_ORIGINS=$ORIGINS" "MOP_ENV=development" "LOG_LEVEL=info" "DRAIN_TIMEOUT=2s"
}
start nats "$bindir/nats-server" -a 127.0.0.1 -p "$P_NATS" -js -sd "$T/nats"
wait_for 20 "nats" bash -c "exec 3<>/dev/tcp/127.0.0.1/$P_NATS" || true
# shellcheck disable=SC2046
start api-rest env $(svc_env "$P_REST") "DATABASE_URL=$T/db/mop.db" "ATTACHMENT_DIR=$T/attachments" "$bindir/api-rest"
# shellcheck disable=SC2046
start api-ws-1 env $(svc_env "$P_WS1") "$bindir/api-ws"
# shellcheck disable=SC2046
start api-ws-2 env $(svc_env "$P_WS2") "$bindir/api-ws"
ready=1
for p in "$P_REST" "$P_WS1" "$P_WS2"; do
	wait_for 40 "127.0.0.1:$p/readyz" curl -sf "http://127.0.0.1:$p/readyz" || ready=0
done

if ((!ready)); then
	stack_skip "the binaries did not answer /readyz (see $T/logs/api-*.log)"
else
	ok "stack up: NATS, api-rest, two api-ws instances"
	# the replacement of one api-ws instance, run by the e2e driver while clients are connected
	cat >"$T/restart-ws2.sh" <<EOF
#!/usr/bin/env bash
set -u
pid="\$(cat '$T/pids/api-ws-2.pid')"
echo "restart-ws2: stopping api-ws pid \$pid (SIGTERM)"
kill -TERM "\$pid" 2>/dev/null
for _ in \$(seq 300); do kill -0 "\$pid" 2>/dev/null || break; sleep 0.1; done
kill -KILL "\$pid" 2>/dev/null
env $(svc_env "$P_WS2") '$bindir/api-ws' >>'$T/logs/api-ws-2.new.log' 2>&1 </dev/null &
echo \$! >'$T/pids/api-ws-2.pid'
echo "restart-ws2: new api-ws pid \$! on 127.0.0.1:$P_WS2"
for _ in \$(seq 200); do curl -sf http://127.0.0.1:$P_WS2/readyz >/dev/null && exit 0; sleep 0.1; done
echo "restart-ws2: new instance not ready" >&2
exit 1
EOF
	chmod +x "$T/restart-ws2.sh"

	if out="$(render_test "127.0.0.1:$P_REST" "127.0.0.1:$P_WS1,127.0.0.1:$P_WS2" 2>&1)" && ngx -s reload; then
		ok "re-rendered with the real upstreams, nginx -t, reload"
	else
		echo "$out"
		bad "re-rendered with the real upstreams, nginx -t, reload"
	fi
	api_health() { kurl "$H_API" "$(https_url "$H_API" /healthz)" | grep -q '"version"'; }
	check "api-rest /healthz through nginx over TLS (Pebble root trusted)" wait_for 15 "api via nginx" api_health

	# Why stickiness is needed: an Engine.IO session exists on one instance only.
	hs="$(curl -sS --max-time 5 "http://127.0.0.1:$P_WS1/socket.io/?EIO=4&transport=polling")"
	sid="$(sed -n 's/.*"sid":"\([^"]*\)".*/\1/p' <<<"$hs")"
	c1="$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -X POST -H 'Content-Type: text/plain;charset=UTF-8' \
		--data '40' "http://127.0.0.1:$P_WS1/socket.io/?EIO=4&transport=polling&sid=$sid")"
	c2="$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -X POST -H 'Content-Type: text/plain;charset=UTF-8' \
		--data '40' "http://127.0.0.1:$P_WS2/socket.io/?EIO=4&transport=polling&sid=$sid")"
	check "a polling session is known only to its own api-ws instance (control: $c1 vs $c2)" \
		bash -c "[ -n '$sid' ] && [ '$c1' = 200 ] && [ '$c2' = 400 ]"

	section "e2e (socket.io-client through nginx)"
	e2e="$here/e2e"
	if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
		bad "node and npm are needed for the e2e driver"
	else
		if ! cmp -s "$e2e/package-lock.json" "$e2e/node_modules/.mop-installed-lock" 2>/dev/null; then
			(cd "$e2e" && npm ci --no-audit --no-fund --loglevel=error >"$T/logs/npm-ci.log" 2>&1) &&
				cp "$e2e/package-lock.json" "$e2e/node_modules/.mop-installed-lock" ||
				bad "npm ci in scripts/edge/e2e (see $T/logs/npm-ci.log)"
		fi
		set +e
		NODE_EXTRA_CA_CERTS="$CA" MOP_E2E_DOMAIN="$domain" MOP_E2E_HTTPS_PORT="$P_HTTPS" \
			MOP_E2E_ACCESS_LOG="$NGX/logs/mop-access.log" MOP_E2E_WS_UPSTREAMS="127.0.0.1:$P_WS1,127.0.0.1:$P_WS2" \
			MOP_E2E_RESTART_CMD="$T/restart-ws2.sh" MOP_E2E_SECRETS_FILE="$T/e2e-secrets" \
			timeout 240 node "$e2e/e2e.mjs" 2>&1 | tee "$T/logs/e2e.log"
		e2e_rc="${PIPESTATUS[0]}"
		set -e
		pass=$((pass + $(grep -c '^ok ' "$T/logs/e2e.log" || true)))
		fail=$((fail + $(grep -c '^FAIL ' "$T/logs/e2e.log" || true)))
		if [ "$e2e_rc" != 0 ] && ! grep -q '^FAIL ' "$T/logs/e2e.log"; then bad "e2e driver exited $e2e_rc"; fi
		# Every log of this run (nginx, api-rest, both api-ws, NATS) at the default levels: none
		# may hold a token, refresh token or Engine.IO sid the clients used.
		n_secrets="$(grep -c . "$T/e2e-secrets" 2>/dev/null || echo 0)"
		leaks="$(grep -rlF -f "$T/e2e-secrets" "$T/logs" "$NGX/logs" --exclude=e2e.log 2>/dev/null || true)"
		check "no token, refresh token or sid used by the e2e clients ($n_secrets values) in any log" \
			bash -c "[ '$n_secrets' -ge 10 ] && [ -z '$leaks' ]"
		[ -z "$leaks" ] || echo "credentials found in: $leaks"
	fi
fi
