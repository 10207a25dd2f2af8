// NATS for operators: three bin/nats-server nodes started from the shipped
// deploy/nats/nats-server.conf (node.conf and auth.conf made from the
// examples), client TLS with a private CA, password authentication with the
// shipped permissions, mutual-TLS routes; api-rest and api-ws given every node
// in NATS_URL with credentials, the CA through SSL_CERT_FILE, NATS_REPLICAS=3.
// Checks: a wrong password is refused and the services' user may publish only
// under mop.>, the stream and bucket are replicated on three nodes, a message goes
// from REST to a socket.io-client, still does with one node stopped, and no
// log line of either service shows the password. Also systemd-analyze verify
// on deploy/nats/nats-server.service, whose ExecStart this test mirrors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync, copyFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import path from 'node:path';
import { io } from 'socket.io-client';
import { Stack, Rest, ORIGIN, bin, connected, freePort, record, root, run, until, waitFor } from './stack.mjs';

const deploy = path.join(root, 'deploy/nats');
const PASSWORD = 'ops-suite-nats-password-5Jq2';

function certificates(dir) {
  const ssl = (...args) => run('openssl', args, { cwd: dir });
  ssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=mop-nats-test-ca',
    '-days', '2', '-keyout', 'ca-key.pem', '-out', 'ca.pem');
  ssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=nats', '-keyout', 'node-key.pem', '-out', 'node.csr');
  writeFileSync(path.join(dir, 'ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n');
  ssl('x509', '-req', '-in', 'node.csr', '-CA', 'ca.pem', '-CAkey', 'ca-key.pem', '-CAcreateserial', '-days', '2',
    '-extfile', 'ext', '-out', 'node.pem');
}

/** node.conf from the shipped example: every variable it sets gets this node's value. */
function nodeConf(values) {
  let text = readFileSync(path.join(deploy, 'node.conf.example'), 'utf8');
  for (const [name, value] of Object.entries(values)) {
    const re = new RegExp(`^${name}: (\\[[^\\]]*\\]|.*)$`, 'm');
    assert.match(text, re, `node.conf.example sets ${name}`);
    text = text.replace(re, `${name}: ${value}`);
  }
  return text;
}

/**
 * Speaks the NATS protocol by hand: INFO in clear, TLS upgrade with the CA,
 * CONNECT with user and password, then the given lines and a PING. Resolves
 * with everything the server answered up to its PONG or its -ERR.
 */
function natsSession(port, ca, user, pass, lines = []) {
  return new Promise((resolve, reject) => {
    const raw = net.connect(port, '127.0.0.1');
    raw.setTimeout(10000, () => { raw.destroy(); reject(new Error('nats session timed out')); });
    raw.once('data', () => {
      const s = tls.connect({ socket: raw, ca, servername: 'localhost' }, () => {
        s.write(`CONNECT ${JSON.stringify({ user, pass, verbose: false, pedantic: false, tls_required: true })}\r\n`);
        for (const l of lines) s.write(`${l}\r\n`);
        s.write('PING\r\n');
      });
      let out = '';
      s.on('data', (d) => {
        out += d;
        if (/PONG|-ERR 'Authorization Violation'/.test(out)) { s.destroy(); resolve(out); }
      });
      s.on('error', reject);
      s.on('close', () => resolve(out));
    });
    raw.on('error', reject);
  });
}

test('systemd unit of the NATS node verifies and runs what this test runs', () => {
  const unit = readFileSync(path.join(deploy, 'nats-server.service'), 'utf8');
  assert.match(unit, /^ExecStart=\/opt\/mop\/bin\/nats-server -c \/etc\/nats\/nats-server\.conf$/m);
  let out = '';
  try {
    run('systemd-analyze', ['verify', '--man=no', path.join(deploy, 'nats-server.service')], { env: { ...process.env, SYSTEMD_LOG_LEVEL: 'warning' } });
  } catch (e) {
    out = e.message;
  }
  const problems = out.split('\n').filter((l) => l.trim() && !l.includes('/opt/mop/') && !l.includes('systemd-analyze') && !/exit \d+$/.test(l));
  assert.deepEqual(problems, []);
});

test('a three-node JetStream cluster with TLS and authentication carries mop', { timeout: 180000 }, async (t) => {
  const stack = new Stack('nats-cluster');
  let sock;
  t.after(async () => {
    sock?.close();
    await stack.stopAll();
  });
  certificates(stack.dir);
  const nodes = [];
  for (let i = 1; i <= 3; i++) nodes.push({ name: `nats-${i}`, port: await freePort(), cluster: await freePort(), monitor: await freePort() });
  const routes = `[${nodes.map((n) => `"nats-route://127.0.0.1:${n.cluster}"`).join(', ')}]`;
  for (const n of nodes) {
    const dir = path.join(stack.dir, n.name);
    mkdirSync(dir);
    copyFileSync(path.join(deploy, 'nats-server.conf'), path.join(dir, 'nats-server.conf'));
    writeFileSync(path.join(dir, 'auth.conf'),
      readFileSync(path.join(deploy, 'auth.conf.example'), 'utf8').replace(/^MOP_PASSWORD: .*$/m, `MOP_PASSWORD: "${PASSWORD}"`));
    writeFileSync(path.join(dir, 'node.conf'), nodeConf({
      MOP_NODE_NAME: n.name,
      MOP_CLIENT_LISTEN: `"127.0.0.1:${n.port}"`,
      MOP_CLUSTER_LISTEN: `"127.0.0.1:${n.cluster}"`,
      MOP_MONITOR_LISTEN: `"127.0.0.1:${n.monitor}"`,
      MOP_STORE_DIR: JSON.stringify(path.join(dir, 'jetstream')),
      MOP_TLS_CERT: JSON.stringify(path.join(stack.dir, 'node.pem')),
      MOP_TLS_KEY: JSON.stringify(path.join(stack.dir, 'node-key.pem')),
      MOP_TLS_CA: JSON.stringify(path.join(stack.dir, 'ca.pem')),
      MOP_ROUTES: routes,
    }));
    const conf = path.join(dir, 'nats-server.conf');
    run(bin('nats-server'), ['-t', '-c', conf]);
    stack.start(n.name, bin('nats-server'), ['-c', conf]);
  }
  for (const n of nodes) {
    await waitFor(`${n.name} JetStream healthy`, async () => (await fetch(`http://127.0.0.1:${n.monitor}/healthz`)).ok, 30000);
  }

  // The shipped authorization: a wrong password is refused; the services' user
  // may publish under mop.> but nowhere else.
  const ca = readFileSync(path.join(stack.dir, 'ca.pem'));
  assert.match(await natsSession(nodes[0].port, ca, 'mop', 'wrong'), /-ERR 'Authorization Violation'/);
  const allowed = await natsSession(nodes[0].port, ca, 'mop', PASSWORD, ['PUB mop.ops.test 2', 'hi']);
  assert.match(allowed, /PONG/);
  assert.doesNotMatch(allowed, /-ERR/);
  assert.match(await natsSession(nodes[0].port, ca, 'mop', PASSWORD, ['PUB other.subject 2', 'hi']),
    /-ERR 'Permissions Violation for Publish to "other\.subject"'/);

  // The services: every node, the credentials, TLS verified against the private CA.
  stack.natsURL = nodes.map((n) => `tls://mop:${PASSWORD}@${n.name === 'nats-2' ? 'localhost' : '127.0.0.1'}:${n.port}`).join(',');
  const env = { SSL_CERT_FILE: path.join(stack.dir, 'ca.pem'), NATS_REPLICAS: '3' };
  const restURL = await stack.rest('api-rest', path.join(stack.dir, 'mop.db'), env);
  const wsURL = await stack.ws('api-ws', env);

  const jsz = await (await fetch(`http://127.0.0.1:${nodes[0].monitor}/jsz?streams=true&config=true`)).json();
  const streams = Object.fromEntries(jsz.account_details.flatMap((a) => a.stream_detail)
    .map((s) => [s.name, { replicas: s.config.num_replicas, peers: 1 + (s.cluster.replicas?.length ?? 0) }]));
  assert.deepEqual(streams.MOP_EVENTS, { replicas: 3, peers: 3 }, 'events stream on three nodes');
  assert.deepEqual(streams.KV_mop_revoked_sessions, { replicas: 3, peers: 3 }, 'revoked-sessions bucket on three nodes');

  const rest = new Rest(restURL);
  const alice = await rest.register('alice');
  const bob = await rest.register('bob');
  const conv = await rest.conversation(alice.access_token, 'direct', [bob.user.id]);
  sock = io(wsURL, { auth: { token: bob.access_token }, transports: ['websocket'], extraHeaders: { Origin: ORIGIN } });
  const events = record(sock);
  await connected(sock);
  const got = (id) => events.some((e) => e.name === 'message.created' && e.data.id === id);
  const first = await rest.send(alice.access_token, conv.id, 'through the cluster', 'c1');
  await until('bob receives the first message', () => got(first.id), 15000);

  // One node down: quorum holds (2 of 3), clients fail over to the others.
  await stack.stop('nats-1');
  const second = await rest.send(alice.access_token, conv.id, 'one node down', 'c2');
  await until('bob receives a message with one node down', () => got(second.id), 30000);

  for (const name of ['api-rest', 'api-ws']) {
    const log = readFileSync(path.join(stack.dir, `${name}.log`), 'utf8');
    assert.ok(log.includes('NATS_URL'), `${name} logs its configuration`);
    assert.ok(!log.includes(PASSWORD), `${name}'s log shows the NATS password`);
  }
});
