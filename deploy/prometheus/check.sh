#!/usr/bin/env bash
# Checks the Prometheus files of deploy/prometheus: syntax (promtool check),
# the rules' unit tests (promtool test rules), and that every alert has at
# least one unit test in which it fires.
set -euo pipefail
cd "$(dirname "$0")"
command -v promtool >/dev/null || { echo "promtool missing (Debian package prometheus)" >&2; exit 1; }
promtool check rules rules/*.yml
# check config resolves rule_files from the production paths; check a copy
# that points at this directory instead.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed "s#/etc/prometheus/mop/#$PWD/rules/#" prometheus.yml >"$tmp/prometheus.yml"
promtool check config "$tmp/prometheus.yml"
promtool test rules tests/*.test.yml
# Each alert needs a case where it fires and one where it stays quiet: a test
# block (from `- eval_time:` to the next) with or without exp_alerts.
cases=$(awk '
	function flush() { if (name != "") print name, (hasexp ? "fires" : "quiet"); name = ""; hasexp = 0 }
	/- eval_time:/ { flush() }
	/alertname:/ { name = $NF }
	/exp_alerts:/ { hasexp = 1 }
	/^  - name:/ || FNR == 1 { flush() }
	END { flush() }' tests/*.test.yml | sort -u)
missing=0
for a in $(grep -hE '^\s*- alert:' rules/*.yml | awk '{print $NF}'); do
	for kind in fires quiet; do
		grep -qx "$a $kind" <<<"$cases" || { echo "alert $a: no unit test where it $kind" >&2; missing=1; }
	done
done
[ "$missing" -eq 0 ] && echo "every alert has a firing and a quiet unit test"
exit "$missing"
