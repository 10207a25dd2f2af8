// Debian's Prometheus scraping a real stack: bin/nats-server, bin/api-rest and
// two bin/api-ws, with deploy/prometheus/rules/mop.yml loaded unchanged and a
// thresholds file of the test's own (the shipped one with a per-instance
// connection limit of 2), the way an operator tunes alerting. Real
// socket.io-client sockets connect and send; the test reads Prometheus's HTTP
// API only: targets up, the connection-count and message-rate series move
// with the load and back, and MopWsConnectionsHigh fires for the instance
// over the limit and for no other; every query of the Grafana dashboard runs.
// Debian's Alertmanager runs the shipped routing (its receivers pointed at a
// local webhook): the warning reaches the team channel and pages nobody.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { io } from 'socket.io-client';
import { Stack, Rest, ORIGIN, connected, freePort, root, waitFor } from './stack.mjs';

const rules = path.join(root, 'deploy/prometheus/rules');

/** The shipped thresholds with new values for some of them. */
function thresholds(overrides) {
  let text = readFileSync(path.join(rules, 'thresholds.yml'), 'utf8');
  for (const [name, value] of Object.entries(overrides)) {
    const re = new RegExp(`(record: mop:threshold:${name}\\n\\s+expr: )vector\\([^)]*\\)`);
    assert.match(text, re, `threshold ${name} in thresholds.yml`);
    text = text.replace(re, `$1vector(${value})`);
  }
  return text;
}

class Prometheus {
  constructor(url) { this.url = url; }

  async api(p) {
    const res = await fetch(`${this.url}/api/v1/${p}`);
    const body = await res.json();
    if (body.status !== 'success') throw new Error(`${p}: ${JSON.stringify(body)}`);
    return body.data;
  }

  /** Instant query: [{metric, value}] with numeric values. */
  async query(q) {
    const data = await this.api(`query?query=${encodeURIComponent(q)}`);
    return data.result.map((r) => ({ metric: r.metric, value: Number(r.value[1]) }));
  }

  async scalar(q) {
    const r = await this.query(q);
    return r.length === 1 ? r[0].value : null;
  }

  async alerts(name) {
    return (await this.api('alerts')).alerts.filter((a) => a.labels.alertname === name);
  }
}

/** A webhook receiver: records every Alertmanager notification by path. */
async function webhook() {
  const got = { '/pager': [], '/team': [] };
  const srv = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => { body += d; });
    req.on('end', () => { (got[req.url] ??= []).push(JSON.parse(body)); res.end(); });
  });
  const port = await freePort();
  await new Promise((r) => srv.listen(port, '127.0.0.1', r));
  return { port, got, close: () => srv.close() };
}

test('Prometheus scrapes the stack, series move with the load, a connection alert fires', { timeout: 240000 }, async (t) => {
  const stack = new Stack('prometheus');
  const sockets = [];
  let sending = true;
  const hook = await webhook();
  t.after(async () => {
    sending = false;
    for (const s of sockets) s.close();
    hook.close();
    await stack.stopAll();
  });
  await stack.nats();
  const restURL = await stack.rest('api-rest', path.join(stack.dir, 'mop.db'));
  const ws1 = await stack.ws('api-ws-1');
  const ws2 = await stack.ws('api-ws-2');
  const host = (u) => new URL(u).host;

  writeFileSync(path.join(stack.dir, 'thresholds.yml'), thresholds({ ws_connections_instance_high: 2 }));
  // The shipped routing and inhibitions; only the receivers point at the webhook.
  const am = readFileSync(path.join(root, 'deploy/prometheus/alertmanager.yml'), 'utf8');
  assert.match(am, /\nreceivers:\n/);
  writeFileSync(path.join(stack.dir, 'alertmanager.yml'), `${am.slice(0, am.indexOf('\nreceivers:\n'))}
receivers:
  - name: pager
    webhook_configs: [{url: "http://127.0.0.1:${hook.port}/pager"}]
  - name: team-channel
    webhook_configs: [{url: "http://127.0.0.1:${hook.port}/team"}]
`);
  const amPort = await freePort();
  stack.start('alertmanager', 'prometheus-alertmanager', [
    `--config.file=${path.join(stack.dir, 'alertmanager.yml')}`,
    `--storage.path=${path.join(stack.dir, 'alertmanager')}`,
    `--web.listen-address=127.0.0.1:${amPort}`,
    '--cluster.listen-address=',
    '--log.level=warn',
  ]);
  writeFileSync(path.join(stack.dir, 'prometheus.yml'), `
global: {scrape_interval: 1s, evaluation_interval: 1s}
alerting:
  alertmanagers: [{static_configs: [{targets: ["127.0.0.1:${amPort}"]}]}]
rule_files: [${JSON.stringify(path.join(rules, 'mop.yml'))}, ${JSON.stringify(path.join(stack.dir, 'thresholds.yml'))}]
scrape_configs:
  - job_name: mop-api-rest
    static_configs: [{targets: ["${host(restURL)}"]}]
  - job_name: mop-api-ws
    static_configs: [{targets: ["${host(ws1)}", "${host(ws2)}"]}]
`);
  const promPort = await freePort();
  stack.start('prometheus', 'prometheus', [
    `--config.file=${path.join(stack.dir, 'prometheus.yml')}`,
    `--storage.tsdb.path=${path.join(stack.dir, 'tsdb')}`,
    `--web.listen-address=127.0.0.1:${promPort}`,
    '--log.level=warn',
  ]);
  const prom = new Prometheus(`http://127.0.0.1:${promPort}`);

  await waitFor('three targets up', async () => {
    const { activeTargets } = await prom.api('targets');
    return activeTargets.length === 3 && activeTargets.every((a) => a.health === 'up');
  }, 60000);
  await waitFor('rules evaluated with the test thresholds', async () =>
    (await prom.scalar('mop:threshold:ws_connections_instance_high')) === 2, 30000);
  // No socket yet: the connection series exist at 0 on both instances.
  await waitFor('idle instances report 0 sockets', async () => {
    const r = await prom.query('mop:ws_connections:sum_instance');
    return r.length === 2 && r.every((x) => x.value === 0);
  }, 30000);
  assert.equal(await prom.scalar('mop:ws_connections:sum'), 0);
  assert.equal(await prom.scalar('mop_ready{job="mop-api-rest"}'), 1, 'api-rest ready');
  const limits = await prom.query('go_gc_gomemlimit_bytes{job="mop-api-ws"}');
  assert.equal(limits.length, 2, 'both api-ws export the memory limit the memory alert reads');
  assert.ok(limits.every((l) => l.value === 768 * 2 ** 20), `WS_MEMORY_LIMIT default applied: ${JSON.stringify(limits)}`);
  assert.deepEqual(await prom.alerts('MopAlertThresholdMissing'), []);

  // Load: 3 sockets on api-ws-1 (over the test limit of 2), 1 on api-ws-2.
  const rest = new Rest(restURL);
  const users = [];
  for (const name of ['ann', 'ben', 'cat', 'dan']) users.push(await rest.register(name));
  const group = await rest.conversation(users[0].access_token, 'group', users.slice(1).map((u) => u.user.id), 'load');
  for (const [i, u] of users.entries()) {
    const s = io(i < 3 ? ws1 : ws2, { auth: { token: u.access_token }, transports: ['websocket'], extraHeaders: { Origin: ORIGIN } });
    sockets.push(s);
    await connected(s);
  }
  let n = 0;
  const load = (async () => {
    while (sending) {
      const s = sockets[n % sockets.length];
      await s.timeout(5000).emitWithAck('message.send', { conversation_id: group.id, body: `m${n}`, client_msg_id: `c${n}` }).catch(() => {});
      if (n % 5 === 0) await rest.send(users[0].access_token, group.id, `rest ${n}`, `r${n}`).catch(() => {});
      n++;
      await new Promise((r) => setTimeout(r, 100));
    }
  })();

  await waitFor('4 connections in total', async () => (await prom.scalar('mop:ws_connections:sum')) === 4, 30000);
  const perInstance = Object.fromEntries((await prom.query('mop:ws_connections:sum_instance'))
    .map((r) => [r.metric.instance, r.value]));
  assert.deepEqual(perInstance, { [host(ws1)]: 3, [host(ws2)]: 1 });
  await waitFor('message rates above zero', async () =>
    (await prom.scalar('mop:messages_sent:rate5m')) > 0 && (await prom.scalar('mop:messages_delivered:rate5m')) > 0, 30000);
  const restSends = await prom.scalar('sum(mop_http_requests_total{job="mop-api-rest",method="POST",route="/api/v1/conversations/:id/messages",status="201"})');
  assert.ok(restSends > 0, `REST sends counted (${restSends})`);

  // The dashboard: every query is valid PromQL for this Prometheus, the core panels show data.
  const dash = JSON.parse(readFileSync(path.join(root, 'deploy/grafana/mop.json'), 'utf8'));
  const core = ['Sockets per instance', 'Messages per second', 'Fan-out time', 'Stream events behind, per instance',
    'Outbox rows waiting', 'Requests per second, by status', 'api-ws resident memory and soft limit'];
  const withData = new Set();
  for (const p of dash.panels.filter((x) => x.targets)) {
    for (const q of p.targets) {
      const expr = q.expr.replaceAll('$__rate_interval', '1m').replaceAll('$instance', '.*');
      if ((await prom.query(expr)).length > 0) withData.add(p.title);
    }
  }
  for (const title of core) assert.ok(withData.has(title), `dashboard panel "${title}" shows data`);

  // MopWsConnectionsHigh: pending at once, firing after its `for: 1m`, only for api-ws-1.
  await waitFor('MopWsConnectionsHigh pending or firing', async () => (await prom.alerts('MopWsConnectionsHigh')).length > 0, 30000);
  await waitFor('MopWsConnectionsHigh firing', async () =>
    (await prom.alerts('MopWsConnectionsHigh')).some((a) => a.state === 'firing'), 120000);
  const firing = await prom.alerts('MopWsConnectionsHigh');
  assert.deepEqual(firing.map((a) => [a.labels.instance, a.state, a.labels.severity]), [[host(ws1), 'firing', 'warning']]);
  assert.equal(Number(firing[0].value), 3);
  assert.deepEqual(await prom.alerts('MopTargetDown'), []);

  // Alertmanager: after the route's group_wait (30 s) the warning reaches the team channel only.
  const notified = (p) => hook.got[p].flatMap((n) => n.alerts).filter((a) => a.labels.alertname === 'MopWsConnectionsHigh');
  await waitFor('the team channel is notified', async () => notified('/team').length > 0, 90000);
  assert.deepEqual(notified('/team').map((a) => [a.status, a.labels.instance]), [['firing', host(ws1)]]);
  assert.deepEqual(notified('/pager'), [], 'a warning pages nobody');

  // Load gone: connections back to 0, the alert resolves.
  sending = false;
  await load;
  for (const s of sockets) s.close();
  await waitFor('connections back to 0', async () => (await prom.scalar('mop:ws_connections:sum')) === 0, 30000);
  await waitFor('MopWsConnectionsHigh resolved', async () => (await prom.alerts('MopWsConnectionsHigh')).length === 0, 30000);
  assert.ok(n > 10, `sent ${n} messages`);
});
