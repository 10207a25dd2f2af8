// Fault injection against the real binaries (bin/nats-server, bin/api-rest,
// bin/api-ws): processes on free loopback ports that a scenario kills with
// SIGKILL, restarts, or restarts with a wiped store; clients that follow the
// client contract of docs/api.md (realtime events, `resync`, reconnects and
// per-conversation gap detection, each followed by a history fetch after the
// last seq held); and a ledger that counts, per client, what was accepted,
// stored, delivered in realtime, duplicated, silently missed (missed with no
// disconnect and no resync after it was posted) and lost after recovery.
// Every process is killed when the suite ends.
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { io } from 'socket.io-client';
import ioV2 from 'socket.io-client-v2';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const bin = (name) => path.join(root, 'bin', name);

export const SIGNING_KEY = 'mop-chaos-suite-signing-key-0123456789abcdef';
export const ORIGIN = 'https://chaos.example.test';
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const procs = new Set();
function killAll() {
  for (const p of procs) p.signal('SIGKILL');
}
process.on('exit', killAll);
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => { killAll(); process.exit(130); });

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

export async function waitFor(what, fn, timeoutMs = 30000, everyMs = 50) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    try {
      if (await fn()) return;
    } catch (e) {
      last = e;
    }
    await sleep(everyMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${last.message}` : ''}`);
}

function portOpen(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.on('connect', () => { s.destroy(); resolve(true); });
    s.on('error', () => resolve(false));
  });
}

/** A process that can be killed and started again with the same command. */
class Proc {
  constructor(name, file, args, env, dir) {
    Object.assign(this, { name, file, args, env, log: path.join(dir, `${name}.log`), child: null });
  }

  start() {
    const fd = openSync(this.log, 'a');
    this.child = spawn(this.file, this.args, { env: { PATH: process.env.PATH, ...this.env }, stdio: ['ignore', fd, fd] });
    const child = this.child;
    procs.add(this);
    child.exited = new Promise((resolve) => child.once('exit', (code, sig) => resolve({ code, sig })));
    child.exited.then(() => { if (this.child === child) procs.delete(this); });
    return this;
  }

  get running() { return this.child && this.child.exitCode === null && this.child.signalCode === null; }

  signal(sig) {
    if (this.running) this.child.kill(sig);
  }

  /** kill -9, resolved once the process is gone. */
  async kill9() {
    if (!this.running) return;
    const { exited } = this.child;
    this.child.kill('SIGKILL');
    await exited;
  }

  /** SIGTERM; resolves with the milliseconds until it exited (SIGKILL after killAfterMs). */
  async term(killAfterMs = 30000) {
    if (!this.running) return 0;
    const start = Date.now();
    const { exited } = this.child;
    const t = setTimeout(() => this.signal('SIGKILL'), killAfterMs);
    this.child.kill('SIGTERM');
    await exited;
    clearTimeout(t);
    return Date.now() - start;
  }

  tail(n = 30) {
    try {
      return readFileSync(this.log, 'utf8').split('\n').slice(-n).join('\n');
    } catch {
      return '';
    }
  }
}

/** A NATS server (one node of a cluster when cluster is given). */
class Nats extends Proc {
  constructor(name, dir, port, cluster) {
    const store = path.join(dir, `${name}-js`);
    const args = ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', store];
    if (cluster) {
      args.push('-n', name, '--cluster_name', 'mop-chaos', '--cluster', `nats://127.0.0.1:${cluster.port}`,
        '--routes', cluster.routes.join(','), '-m', String(cluster.monitor));
    }
    super(name, bin('nats-server'), args, {}, dir);
    Object.assign(this, { port, store, monitor: cluster?.monitor });
  }

  async start() {
    super.start();
    await waitFor(`${this.name} listening`, () => portOpen(this.port));
    return this;
  }

  /** The store is lost: the server is killed, its directory wiped, and started empty. */
  async loseStore() {
    await this.kill9();
    rmSync(this.store, { recursive: true, force: true });
    mkdirSync(this.store, { recursive: true });
    await this.start();
  }
}

async function ready(url) {
  const res = await fetch(`${url}/readyz`);
  return res.status === 200;
}

/** A service that is ready once /readyz answers 200. */
class Service extends Proc {
  constructor(name, file, env, dir, url) {
    super(name, file, [], env, dir);
    this.url = url;
  }

  async start() {
    super.start();
    await this.ready();
    return this;
  }

  ready(timeoutMs = 30000) {
    return waitFor(`${this.name} ready`, () => ready(this.url), timeoutMs);
  }

  async metric(name) {
    const text = await (await fetch(`${this.url}/metrics`)).text();
    let sum = 0;
    for (const line of text.split('\n')) {
      if (line.startsWith(name + ' ') || line.startsWith(name + '{')) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
    }
    return sum;
  }
}

/**
 * Starts NATS (one node, or a 3-node JetStream cluster), api-rest (SQLite, or
 * a fresh schema of the PostgreSQL at pgURL) and two api-ws instances.
 */
export async function startStack({ cluster = false, pgURL = '', wsEnv = {}, restEnv = {} } = {}) {
  const dir = mkdtempSync(path.join(tmpdir(), 'mop-chaos-'));
  const stack = { dir, nats: [], ws: [], all: [], pgSchema: '' };
  try {
    if (cluster) {
      const ports = await Promise.all([0, 1, 2].map(async () => ({ client: await freePort(), route: await freePort(), monitor: await freePort() })));
      for (let i = 0; i < 3; i++) {
        const routes = ports.filter((_, j) => j !== i).map((p) => `nats://127.0.0.1:${p.route}`);
        stack.nats.push(new Nats(`n${i + 1}`, dir, ports[i].client, { port: ports[i].route, routes, monitor: ports[i].monitor }));
      }
    } else {
      stack.nats.push(new Nats('nats', dir, await freePort()));
    }
    await Promise.all(stack.nats.map((n) => n.start()));
    stack.all.push(...stack.nats);
    const shared = {
      NATS_URL: stack.nats.map((n) => `nats://127.0.0.1:${n.port}`).join(','),
      NATS_REPLICAS: cluster ? '3' : '1',
      JWT_SIGNING_KEY: SIGNING_KEY,
      ALLOWED_ORIGINS: ORIGIN,
      LOG_LEVEL: 'info',
    };
    let database = path.join(dir, 'mop.db');
    if (pgURL) {
      stack.pgSchema = `chaos_${randomBytes(6).toString('hex')}`;
      execFileSync('psql', [pgURL, '-qc', `CREATE SCHEMA ${stack.pgSchema}`], { stdio: 'pipe' });
      const u = new URL(pgURL);
      u.searchParams.set('search_path', stack.pgSchema);
      database = u.toString();
      stack.pgURL = pgURL;
    }
    const restPort = await freePort();
    stack.rest = new Service('api-rest', bin('api-rest'), {
      ...shared,
      HTTP_ADDR: `127.0.0.1:${restPort}`,
      DATABASE_URL: database,
      PASSWORD_HASH_MEMORY_KIB: '1024',
      PASSWORD_HASH_TIME: '1',
      REGISTER_RATE_PER_MINUTE: '60000',
      REGISTER_RATE_BURST: '1000',
      LOGIN_RATE_PER_MINUTE: '60000',
      LOGIN_RATE_BURST: '1000',
      ...restEnv,
    }, dir, `http://127.0.0.1:${restPort}`);
    for (const id of ['ws-a', 'ws-b']) {
      const port = await freePort();
      stack.ws.push(new Service(id, bin('api-ws'), {
        ...shared,
        HTTP_ADDR: `127.0.0.1:${port}`,
        INSTANCE_ID: id,
        PRESENCE_OFFLINE_GRACE: '0s',
        DRAIN_TIMEOUT: '2s',
        SHUTDOWN_TIMEOUT: '10s',
        ...wsEnv,
      }, dir, `http://127.0.0.1:${port}`));
    }
    stack.all.push(stack.rest, ...stack.ws);
    await Promise.all([stack.rest, ...stack.ws].map((s) => s.start()));
  } catch (e) {
    const logs = stack.all.map((p) => `--- ${p.name}\n${p.tail()}`).join('\n');
    await stopStack(stack);
    throw new Error(`${e.message}\n${logs}`);
  }
  return stack;
}

export async function stopStack(stack) {
  await Promise.all(stack.all.map((p) => p.kill9()));
  if (stack.pgSchema) {
    try {
      execFileSync('psql', [stack.pgURL, '-qc', `DROP SCHEMA ${stack.pgSchema} CASCADE`], { stdio: 'pipe' });
    } catch { /* reported by nobody: the schema name is random */ }
  }
  if (!process.env.MOP_CHAOS_KEEP) rmSync(stack.dir, { recursive: true, force: true });
}

/**
 * Restarts every api-ws instance (kill -9, start) and waits until every
 * client is connected again: their event consumers then have delivered
 * nothing yet, the state in which a consumer reset must not skip events.
 */
export async function restartWs(stack, clients) {
  await Promise.all(stack.ws.map((w) => w.kill9()));
  await Promise.all(stack.ws.map((w) => w.start()));
  await waitFor('every client reconnected', () => clients.every((c) => c.connected), 30000, 100);
}

export function logs(stack, n = 40) {
  return stack.all.map((p) => `--- ${p.name}\n${p.tail(n)}`).join('\n');
}

/** The node of a NATS cluster that leads the stream, from its monitoring endpoint. */
export async function streamLeader(stack, stream = 'MOP_EVENTS') {
  for (const n of stack.nats) {
    if (!n.running) continue;
    try {
      const jsz = await (await fetch(`http://127.0.0.1:${n.monitor}/jsz?streams=true`)).json();
      for (const acc of jsz.account_details || []) {
        for (const s of acc.stream_detail || []) {
          if (s.name === stream && s.cluster?.leader) return stack.nats.find((x) => x.name === s.cluster.leader);
        }
      }
    } catch { /* try the next node */ }
  }
  return null;
}

// ---- REST ----

export class Rest {
  constructor(stack) { this.stack = stack; }

  async call(method, p, token, body) {
    const headers = {};
    if (token) headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const res = await fetch(`${this.stack.rest.url}/api/v1${p}`, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(10000),
    });
    const text = await res.text();
    if (!res.ok) {
      const err = new Error(`${method} ${p}: ${res.status} ${text}`);
      err.status = res.status;
      throw err;
    }
    return text ? JSON.parse(text) : null;
  }

  register(prefix) {
    return this.call('POST', '/auth/register', null, { username: `${prefix}_${randomUUID().slice(0, 8)}`, password: 'password-123' });
  }

  /** Every message of conv after seq, following has_more. */
  async history(token, conv, afterSeq = 0) {
    const out = [];
    for (;;) {
      const page = await this.call('GET', `/conversations/${conv}/messages?after_seq=${afterSeq}&limit=200`, token);
      out.push(...page.messages);
      if (!page.has_more || page.messages.length === 0) return out;
      afterSeq = page.messages[page.messages.length - 1].seq;
    }
  }
}

/** Registers n members and one group conversation of all of them. */
export async function group(rest, n, prefix = 'chaos') {
  const users = [];
  for (let i = 0; i < n; i += 10) {
    users.push(...await Promise.all(Array.from({ length: Math.min(10, n - i) }, () => rest.register(prefix))));
  }
  const conv = await rest.call('POST', '/conversations', users[0].access_token,
    { type: 'group', member_ids: users.slice(1).map((u) => u.user.id), title: prefix });
  return { users, conv };
}

// ---- clients ----

/**
 * A member with one socket that follows the client contract: it keeps the
 * last seq of the conversation, fetches history after it on a resync, on
 * every reconnect and when an event's seq skips (gap), and reconnects to the
 * next api-ws instance when its socket is lost (what the edge's balancer does).
 */
export class Client {
  constructor(stack, rest, user, conv, index, { v2 = false } = {}) {
    Object.assign(this, { stack, rest, user, conv, index, v2 });
    this.token = user.access_token;
    this.at = index % stack.ws.length;
    this.last = 0; // every seq up to this one is held (the contiguous top)
    this.seqs = new Set(); // seqs held
    this.held = new Map(); // message id → message (realtime or fetched)
    this.realtime = new Map(); // message id → realtime receipts
    this.notices = []; // {t, kind: 'disconnect'|'resync'|'gap'}
    this.resyncs = 0;
    this.gaps = 0;
    this.connects = 0;
    this.fetching = Promise.resolve();
    this.closed = false;
  }

  async start() {
    const msgs = await this.rest.history(this.token, this.conv);
    for (const m of msgs) this.hold(m);
    // Seqs below the first message (if any) are not messages: start at the top.
    const c = await this.rest.call('GET', `/conversations/${this.conv}`, this.token);
    this.last = Math.max(this.last, c.last_seq);
    this.connect();
    await waitFor(`client ${this.index} connected`, () => this.connected, 20000);
  }

  get connected() { return !!this.socket?.connected; }

  connect() {
    if (this.closed) return;
    const url = this.stack.ws[this.at].url;
    const opts = { transports: ['websocket'], reconnection: false, forceNew: true, extraHeaders: { Origin: ORIGIN } };
    const s = this.v2 ? ioV2(url, { ...opts, query: { token: this.token } }) : io(url, { ...opts, auth: { token: this.token } });
    this.socket = s;
    let up = false;
    const retry = () => {
      if (this.socket !== s || this.closed) return;
      s.removeAllListeners?.();
      s.off?.();
      s.close();
      this.at = (this.at + 1) % this.stack.ws.length; // the next instance
      setTimeout(() => this.connect(), 200);
    };
    s.on('connect', () => {
      up = true;
      this.connects++;
      if (this.connects > 1) {
        // Whatever was posted while disconnected is fetched now.
        this.notices.push({ t: Date.now(), kind: 'reconnect' });
        this.catchUp('reconnect');
      }
    });
    s.on('connect_error', retry);
    s.on('error', retry); // 2.x refusal
    s.on('disconnect', () => {
      if (up) this.notices.push({ t: Date.now(), kind: 'disconnect' });
      retry();
    });
    s.on('resync', () => {
      this.resyncs++;
      this.notices.push({ t: Date.now(), kind: 'resync' });
      this.catchUp('resync');
    });
    s.on('message.created', (m) => {
      if (m.conversation_id !== this.conv) return;
      this.realtime.set(m.id, (this.realtime.get(m.id) || 0) + 1);
      this.rtLast = Date.now();
      this.firstRealtime ??= new Map();
      if (!this.firstRealtime.has(m.id)) this.firstRealtime.set(m.id, Date.now());
      const gap = m.seq > this.last + 1; // the fetch below starts after the hole's bottom
      this.hold(m);
      if (gap) {
        this.gaps++;
        this.notices.push({ t: Date.now(), kind: 'gap' });
        this.catchUp('gap');
      }
    });
  }

  hold(m) {
    this.held.set(m.id, m);
    this.seqs.add(m.seq);
    while (this.seqs.has(this.last + 1)) this.last++;
  }

  /** Fetches history after the last seq held; fetches run one at a time. */
  catchUp() {
    this.fetching = this.fetching.then(async () => {
      for (let i = 0; i < 20 && !this.closed; i++) {
        try {
          for (const m of await this.rest.history(this.token, this.conv, this.last)) this.hold(m);
          return;
        } catch {
          await sleep(500); // api-rest restarting
        }
      }
    });
    return this.fetching;
  }

  close() {
    this.closed = true;
    this.socket?.close();
  }

  /** Pauses reading the socket's TCP connection (a reader that stopped). */
  pauseReading() {
    const ws = this.socket.io.engine.transport.ws;
    (ws._socket || ws.socket || ws).pause();
  }
}

// ---- posting ----

/**
 * Posts `count` messages at `perSecond` from user into conv, each with its
 * own client_msg_id, retried with the same id until api-rest accepts it (a
 * crash between commit and answer must not create a second message).
 */
export async function post(rest, user, conv, { count, perSecond, tag, ledger, retryForMs = 60000 }) {
  const sends = [];
  for (let i = 0; i < count; i++) {
    const cid = `${tag}-${user.user.id.slice(-6)}-${i}`;
    ledger.posted.set(cid, Date.now());
    sends.push((async () => {
      const deadline = Date.now() + retryForMs;
      for (;;) {
        try {
          const m = await rest.call('POST', `/conversations/${conv}/messages`, user.access_token, { body: `${tag} ${i}`, client_msg_id: cid });
          ledger.accepted.set(cid, m.id);
          return;
        } catch (e) {
          ledger.retries++;
          if (Date.now() > deadline) {
            ledger.failed.push(`${cid}: ${e.message}`);
            return;
          }
          await sleep(250);
        }
      }
    })());
    await sleep(1000 / perSecond);
  }
  await Promise.all(sends);
}

export function newLedger() {
  return { start: Date.now(), posted: new Map(), accepted: new Map(), failed: [], retries: 0 };
}

/**
 * Waits until every client holds every stored message of the ledger (or
 * timeoutMs), then counts. Only messages posted by this ledger count.
 */
export async function settle(rest, reader, clients, ledger, timeoutMs = 20000) {
  const stored = async () => (await rest.history(reader.access_token, clients[0].conv)).filter((m) => ledger.posted.has(m.client_msg_id));
  let msgs = [];
  try {
    await waitFor('every client holding every stored message', async () => {
      msgs = await stored();
      if (msgs.length < ledger.accepted.size) return false;
      return clients.every((c) => msgs.every((m) => c.held.has(m.id)));
    }, timeoutMs, 250);
  } catch { /* counted below */ }
  await Promise.all(clients.map((c) => c.fetching));
  msgs = await stored();
  return count(clients, ledger, msgs);
}

/** Per-client and total counts over the stored messages of the ledger. */
export function count(clients, ledger, stored) {
  const cids = new Map();
  for (const m of stored) cids.set(m.client_msg_id, (cids.get(m.client_msg_id) || 0) + 1);
  const total = {
    accepted: ledger.accepted.size,
    stored: stored.length,
    storedDuplicates: [...cids.values()].reduce((a, n) => a + n - 1, 0),
    acceptedNotStored: [...ledger.accepted.keys()].filter((cid) => !cids.has(cid)).length,
    failedPosts: ledger.failed.length,
    retries: ledger.retries,
    clients: clients.length,
    realtime: 0, duplicated: 0, toldMissed: 0, silentlyMissed: 0, lostAfterRecovery: 0, resyncs: 0, gaps: 0, reconnects: 0,
  };
  const perClient = [];
  for (const c of clients) {
    const r = { client: c.index, realtime: 0, duplicated: 0, toldMissed: 0, silentlyMissed: 0, lostAfterRecovery: 0 };
    for (const m of stored) {
      const n = c.realtime.get(m.id) || 0;
      if (n > 0) {
        r.realtime++;
        r.duplicated += n - 1;
      } else {
        const postedAt = ledger.posted.get(m.client_msg_id);
        const told = c.notices.some((x) => x.kind !== 'gap' && x.t >= postedAt);
        if (told) r.toldMissed++;
        else r.silentlyMissed++;
      }
      if (!c.held.has(m.id)) r.lostAfterRecovery++;
    }
    for (const k of ['realtime', 'duplicated', 'toldMissed', 'silentlyMissed', 'lostAfterRecovery']) total[k] += r[k];
    const since = (kind) => c.notices.filter((x) => x.kind === kind && x.t >= ledger.start).length;
    total.resyncs += since('resync');
    total.gaps += since('gap');
    total.reconnects += since('disconnect');
    perClient.push(r);
  }
  return { total, perClient };
}

/** One line per scenario for the suite's report (and the closing note). */
export function report(name, { total }, extra = {}) {
  const t = total;
  const line = `CHAOS ${name}: clients=${t.clients} accepted=${t.accepted} stored=${t.stored} ` +
    `realtime=${t.realtime}/${t.stored * t.clients} duplicated=${t.duplicated} told_missed=${t.toldMissed} ` +
    `silently_missed=${t.silentlyMissed} lost_after_recovery=${t.lostAfterRecovery + t.acceptedNotStored} ` +
    `stored_duplicates=${t.storedDuplicates} failed_posts=${t.failedPosts} retries=${t.retries} ` +
    `resyncs=${t.resyncs} gaps=${t.gaps} reconnects=${t.reconnects}` +
    Object.entries(extra).map(([k, v]) => ` ${k}=${v}`).join('');
  console.log(line);
  return line;
}

/** The pass condition of every scenario. */
export function assertClean(assert, name, result) {
  const t = result.total;
  const bad = result.perClient.filter((r) => r.silentlyMissed || r.duplicated || r.lostAfterRecovery);
  assert.equal(t.failedPosts, 0, `${name}: posts never accepted`);
  assert.equal(t.acceptedNotStored, 0, `${name}: accepted messages not stored`);
  assert.equal(t.storedDuplicates, 0, `${name}: a client_msg_id stored twice`);
  assert.ok(t.stored > 0, `${name}: nothing stored`);
  assert.deepEqual(bad, [], `${name}: clients with silent misses, duplicates or losses`);
}
