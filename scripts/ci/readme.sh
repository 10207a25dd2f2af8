#!/usr/bin/env bash
# The README's walk-through, as written, twice in a row (called by `make test-readme`, after
# the binaries are built): bin/devstack — what `make run` starts — on free loopback ports with
# its state in a temp dir, the curl block and then the realtime example, twice, with a restart
# of the stack in between on the same state (a second `make run`). Only the ports differ from
# the README. Also checks that the README shows services/web/examples/realtime.mjs verbatim.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
for b in api-rest api-ws devstack; do
	[ -x "bin/$b" ] || { echo "readme test: bin/$b missing: run \`make build\` first" >&2; exit 1; }
done
example=services/web/examples/realtime.mjs

# The fenced block that follows a heading: block README.md '## Try the API' sh
block() {
	awk -v head="$2" -v lang="$3" '
		index($0, head) == 1 { inside = 1; next }
		inside && $0 == "```" lang { code = 1; next }
		code && $0 == "```" { exit }
		code { print }' "$1"
}
walk=$(block README.md '## Try the API with curl' sh)
[ -n "$walk" ] || { echo "readme test: no sh block under '## Try the API with curl'" >&2; exit 1; }
if ! diff -u <(block README.md '## Realtime' js) "$example"; then
	echo "readme test: the README's realtime snippet differs from $example" >&2
	exit 1
fi

echo "== readme: npm ci (services/web, for socket.io-client)"
(cd services/web && npm ci --no-audit --no-fund --loglevel=error)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/mop-readme-test.XXXXXX")
pid=
stop() {
	[ -n "$pid" ] || return 0
	kill -TERM "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	pid=
}
cleanup() {
	local rc=$?
	stop
	if [ "$rc" -ne 0 ]; then
		for log in "$tmp"/devstack-*.log; do
			[ -s "$log" ] || continue
			echo "---- $(basename "$log") (last 40 lines)"
			tail -n 40 "$log"
		done
	fi
	rm -rf "$tmp"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

read -r rest_port ws_port web_port < <(node -e '
	const net = require("node:net");
	Promise.all([0, 1, 2].map(() => new Promise((ok) => {
		const s = net.createServer().listen(0, "127.0.0.1", () => { const p = s.address().port; s.close(() => ok(p)); });
	}))).then((ports) => console.log(ports.join(" ")));')

start() {
	local log=$tmp/devstack-$1.log
	bin/devstack -var "$tmp/var" -rest-addr "127.0.0.1:$rest_port" -ws-addr "127.0.0.1:$ws_port" \
		-web-addr "127.0.0.1:$web_port" >"$log" 2>&1 &
	pid=$!
	# devstack prints this line once both services answer /readyz.
	local deadline=$((SECONDS + 60))
	until grep -q 'mop is up' "$log"; do
		kill -0 "$pid" 2>/dev/null || { echo "readme test: devstack exited during start-up" >&2; exit 1; }
		((SECONDS < deadline)) || { echo "readme test: devstack not up after 60s" >&2; exit 1; }
		sleep 0.2
	done
}

run_once() {
	local n=$1 out
	echo "== readme: walk-through, run $n"
	# As written, but on this stack's ports; then what the example reads from the environment.
	out=$(bash -c "set -o pipefail; ${walk//127.0.0.1:8080/127.0.0.1:$rest_port}
		echo; echo \"CONV=\$CONV\"
		API=http://127.0.0.1:$rest_port/api/v1 WS=http://127.0.0.1:$ws_port timeout 30 node $example" 2>&1) || {
		echo "$out"; echo "readme test: run $n failed" >&2; exit 1; }
	echo "$out"
	# Each step's answer, in order: register ×2 (consumed), login, message, history, the example.
	grep -q '"token_type":"Bearer"' <<<"$out" || { echo "readme test: run $n: the login did not answer tokens" >&2; exit 1; }
	grep -Eq '^CONV=[0-9a-zA-Z-]{8,}$' <<<"$out" || { echo "readme test: run $n: no conversation id" >&2; exit 1; }
	grep -q '"messages":\[{.*"body":"hi bob"' <<<"$out" || { echo "readme test: run $n: history lacks the message" >&2; exit 1; }
	grep -Eq '^ack [0-9]+$' <<<"$out" || { echo "readme test: run $n: message.send was not acknowledged" >&2; exit 1; }
	grep -q '^message.created .* hi from the socket' <<<"$out" || { echo "readme test: run $n: no message.created" >&2; exit 1; }
}

start 1
run_once 1
stop
start 2
run_once 2
echo "== readme: the walk-through ran twice"
