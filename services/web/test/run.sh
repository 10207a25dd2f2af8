#!/usr/bin/env bash
# Browser tests of the web client (called by `make test-web`, after `make build`).
#
# Installs the locked npm packages (socket.io-client, playwright-core: no browser download),
# builds dist/, starts the real stack from bin/ on free loopback ports — NATS with JetStream,
# api-rest (SQLite in a temp dir), api-ws — waits for both /readyz, then runs the tests with
# Debian's Chromium. The tests serve dist/ themselves on the one origin both services allow.
# Everything started here is stopped on exit. Screenshots: services/web/test/artifacts/.
#
# Env: CHROMIUM (default /usr/bin/chromium), MOP_WEB_TEST_BIN (default <repo>/bin),
# MOP_WEB_TEST_KEEP=1 keeps the temp dir (service logs, database).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
web=$(dirname "$here")
root=$(cd "$web/../.." && pwd)
bin=${MOP_WEB_TEST_BIN:-$root/bin}

for b in nats-server api-rest api-ws; do
	[ -x "$bin/$b" ] || { echo "web test: $bin/$b missing: run \`make build\` first" >&2; exit 1; }
done
chromium=${CHROMIUM:-/usr/bin/chromium}
[ -x "$chromium" ] || { echo "web test: $chromium missing (apt-get install chromium; see scripts/ci/install.d/web.apt)" >&2; exit 1; }

echo "== web: npm ci"
(cd "$web" && npm ci --no-audit --no-fund --loglevel=error)
echo "== web: build"
"$web/build.sh"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/mop-web-test.XXXXXX")
pids=()
cleanup() {
	local rc=$?
	# Services first, NATS last, so that they shut down cleanly.
	local i
	for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
		kill "${pids[i]}" 2>/dev/null || true
		wait "${pids[i]}" 2>/dev/null || true
	done
	if [ "$rc" -ne 0 ]; then
		for log in "$tmp"/*.log; do
			[ -s "$log" ] || continue
			echo "---- $(basename "$log") (last 40 lines)"
			tail -n 40 "$log"
		done
	fi
	if [ "${MOP_WEB_TEST_KEEP:-}" = 1 ]; then echo "web test: kept $tmp"; else rm -rf "$tmp"; fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Four free loopback ports (the kernel picks them; they are released just before use).
read -r nats_port rest_port ws_port web_port < <(node -e '
	const net = require("node:net");
	Promise.all([0, 1, 2, 3].map(() => new Promise((ok) => {
		const s = net.createServer().listen(0, "127.0.0.1", () => { const p = s.address().port; s.close(() => ok(p)); });
	}))).then((ports) => console.log(ports.join(" ")));')

origin="http://127.0.0.1:$web_port"
key=$(node -e 'console.log(require("node:crypto").randomBytes(32).toString("base64url"))')
common=(
	"NATS_URL=nats://127.0.0.1:$nats_port"
	"JWT_SIGNING_KEY=$key"
	"ALLOWED_ORIGINS=$origin"
	"MOP_ENV=development"
	# The shortest lifetime the services accept: the suite runs long enough for the
	# client to refresh on REST and on the socket (auth.refresh) at least once.
	"ACCESS_TOKEN_TTL=1m"
	"LOG_LEVEL=${LOG_LEVEL:-warn}"
)

echo "== web: stack (nats :$nats_port, api-rest :$rest_port, api-ws :$ws_port, web :$web_port)"
"$bin/nats-server" -a 127.0.0.1 -p "$nats_port" -js -sd "$tmp/jetstream" >"$tmp/nats.log" 2>&1 &
pids+=($!)
node -e '
	const net = require("node:net"); const deadline = Date.now() + 20000;
	(function attempt() {
		const s = net.connect(+process.argv[1], "127.0.0.1", () => { s.end(); process.exit(0); });
		s.on("error", () => { if (Date.now() > deadline) { console.error("nats did not start"); process.exit(1); } setTimeout(attempt, 100); });
	})();' "$nats_port"

env "${common[@]}" HTTP_ADDR="127.0.0.1:$rest_port" DATABASE_URL="$tmp/mop.db" ATTACHMENT_DIR="$tmp/attachments" \
	"$bin/api-rest" >"$tmp/api-rest.log" 2>&1 &
pids+=($!)
env "${common[@]}" HTTP_ADDR="127.0.0.1:$ws_port" \
	"$bin/api-ws" >"$tmp/api-ws.log" 2>&1 &
pids+=($!)

# Both ready (store, NATS, streams) within a deadline; a service that exits fails at once.
node -e '
	const [pids, ...urls] = process.argv.slice(1); const deadline = Date.now() + 60000;
	const alive = () => pids.split(",").every((pid) => { try { process.kill(+pid, 0); return true; } catch { return false; } });
	(async () => {
		for (const url of urls) {
			for (;;) {
				try { const r = await fetch(url); if (r.ok) break; } catch {}
				if (!alive()) { console.error("a service exited during start-up"); process.exit(1); }
				if (Date.now() > deadline) { console.error(`not ready: ${url}`); process.exit(1); }
				await new Promise((r) => setTimeout(r, 200));
			}
		}
	})();' "$(IFS=,; echo "${pids[*]}")" "http://127.0.0.1:$rest_port/readyz" "http://127.0.0.1:$ws_port/readyz"

echo "== web: browser tests"
cd "$web"
MOP_WEB_TEST_API="http://127.0.0.1:$rest_port" \
MOP_WEB_TEST_WS="http://127.0.0.1:$ws_port" \
MOP_WEB_TEST_PORT="$web_port" \
CHROMIUM="$chromium" \
	node --test --test-concurrency=1 --test-reporter=spec test/format.test.mjs test/model.test.mjs test/chat.test.mjs test/account.test.mjs test/attachments.test.mjs
