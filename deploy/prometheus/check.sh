#!/usr/bin/env bash
# Checks the Prometheus files of deploy/prometheus: syntax (promtool check),
# the rules' unit tests (promtool test rules), that every alert has a unit test
# in which it fires and one in which it stays quiet, and the Alertmanager
# routing (amtool): every alert has a known severity, and each severity
# reaches its receiver.
set -euo pipefail
cd "$(dirname "$0")"
command -v promtool >/dev/null || { echo "promtool missing (Debian package prometheus)" >&2; exit 1; }
command -v amtool >/dev/null || { echo "amtool missing (Debian package prometheus-alertmanager)" >&2; exit 1; }
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

amtool check-config alertmanager.yml
declare -A receiver=([critical]=pager [warning]=team-channel)
for sev in $(grep -ohE 'severity: [a-z]+' rules/mop.yml | awk '{print $2}' | sort -u); do
	want=${receiver[$sev]:-}
	[ -n "$want" ] || { echo "severity $sev has no receiver in this check" >&2; missing=1; continue; }
	amtool config routes test --config.file=alertmanager.yml --verify.receivers="$want" severity="$sev" alertname=MopAny 2>/dev/null ||
		{ echo "severity=$sev does not reach $want" >&2; missing=1; }
done
[ "$(grep -c 'labels: {severity: ' rules/mop.yml)" = "$(grep -c -- '- alert:' rules/mop.yml)" ] ||
	{ echo "every alert needs labels: {severity: critical|warning}" >&2; missing=1; }
[ "$missing" -eq 0 ] && echo "alertmanager routes: critical -> pager, warning -> team-channel"
exit "$missing"
