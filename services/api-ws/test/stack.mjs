// The real stack for the client suites: bin/nats-server, bin/api-rest and two
// bin/api-ws instances on free loopback ports, plus REST and socket helpers.
// Every process is killed when the suite ends (after() hook and process exit).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, createHmac, randomUUID } from 'node:crypto';
import { mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach } from 'node:test';
import { fileURLToPath } from 'node:url';

import { stats, violations, watch } from './asyncapi.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../../..');
const bin = (name) => path.join(root, 'bin', name);

export const SIGNING_KEY = 'api-ws-client-suite-signing-key-0123456789';
export const ALLOWED_ORIGIN = 'https://www.example.test';

const children = new Set();
function killAll() {
  for (const c of children) {
    try { c.kill('SIGKILL'); } catch { /* already gone */ }
  }
}
process.on('exit', killAll);
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => { killAll(); process.exit(130); });
}

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

function startProcess(name, file, args, env, dir) {
  const log = path.join(dir, `${name}.log`);
  const fd = openSync(log, 'a');
  const child = spawn(file, args, { env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', fd, fd] });
  children.add(child);
  child.on('exit', () => children.delete(child));
  return { name, child, log };
}

async function waitFor(what, fn, timeoutMs = 20000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    try {
      if (await fn()) return;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ''}`);
}

async function ready(url) {
  const res = await fetch(`${url}/readyz`);
  return res.status === 200;
}

function portOpen(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.on('connect', () => { s.destroy(); resolve(true); });
    s.on('error', () => resolve(false));
  });
}

/**
 * Starts NATS, api-rest and two api-ws instances.
 * @param {{wsEnv?: object, restEnv?: object}} opts
 */
export async function startStack(opts = {}) {
  const dir = mkdtempSync(path.join(tmpdir(), 'mop-ws-clients-'));
  const procs = [];
  const natsPort = await freePort();
  procs.push(startProcess('nats', bin('nats-server'), ['-a', '127.0.0.1', '-p', String(natsPort), '-js', '-sd', path.join(dir, 'js')], {}, dir));
  await waitFor('nats', () => portOpen(natsPort));
  const shared = {
    NATS_URL: `nats://127.0.0.1:${natsPort}`,
    JWT_SIGNING_KEY: SIGNING_KEY,
    ALLOWED_ORIGINS: ALLOWED_ORIGIN,
    LOG_LEVEL: 'debug',
  };
  const restPort = await freePort();
  procs.push(startProcess('api-rest', bin('api-rest'), [], {
    ...shared,
    HTTP_ADDR: `127.0.0.1:${restPort}`,
    DATABASE_URL: path.join(dir, 'mop.db'),
    PASSWORD_HASH_MEMORY_KIB: '1024',
    PASSWORD_HASH_TIME: '1',
    REGISTER_RATE_PER_MINUTE: '6000',
    REGISTER_RATE_BURST: '1000',
    LOGIN_RATE_PER_MINUTE: '6000',
    LOGIN_RATE_BURST: '1000',
    ...(opts.restEnv || {}),
  }, dir));
  const ws = [];
  for (const id of ['ws-a', 'ws-b']) {
    const port = await freePort();
    procs.push(startProcess(id, bin('api-ws'), [], {
      ...shared,
      HTTP_ADDR: `127.0.0.1:${port}`,
      INSTANCE_ID: id,
      WS_KICK_GRACE: '500ms',
      PRESENCE_OFFLINE_GRACE: '0s',
      DRAIN_TIMEOUT: '1s',
      SHUTDOWN_TIMEOUT: '5s',
      ...(opts.wsEnv || {}),
    }, dir));
    ws.push(`http://127.0.0.1:${port}`);
  }
  const rest = `http://127.0.0.1:${restPort}`;
  const stack = {
    dir, rest, ws, procs,
    logs() {
      return procs.map((p) => `--- ${p.name}\n${tail(readFileSync(p.log, 'utf8'), 40)}`).join('\n');
    },
    async stop() {
      await Promise.all(procs.map((p) => new Promise((resolve) => {
        if (p.child.exitCode !== null || p.child.signalCode !== null) return resolve();
        const t = setTimeout(() => { p.child.kill('SIGKILL'); }, 8000);
        p.child.once('exit', () => { clearTimeout(t); resolve(); });
        p.child.kill('SIGTERM');
      })));
      rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    await waitFor('api-rest ready', () => ready(rest));
    for (const url of ws) await waitFor(`api-ws ${url} ready`, () => ready(url));
  } catch (e) {
    const logs = stack.logs();
    await stack.stop();
    throw new Error(`${e.message}\n${logs}`);
  }
  return stack;
}

/**
 * Starts a stack before the file's tests and stops it (and closes the
 * sockets given to track) after them. Read `.stack` and `.rest` inside tests.
 */
export function useStack(before, after) {
  const ctx = { stack: null, rest: null, sockets: [] };
  // Every tracked socket is held to asyncapi.yaml (asyncapi.mjs).
  ctx.track = (s) => { ctx.sockets.push(watch(s)); return s; };
  before(async () => {
    ctx.stack = await startStack();
    ctx.rest = new Rest(ctx.stack.rest);
  });
  // A violation fails the test during which it arrived.
  afterEach(() => {
    const seen = violations.splice(0);
    assert.deepEqual(seen, [], `not as pkg/apidoc/asyncapi.yaml says:\n${seen.join('\n')}`);
  });
  after(async () => {
    for (const s of ctx.sockets) s.close();
    if (ctx.stack) await ctx.stack.stop();
    assert.deepEqual(violations, [], `not as pkg/apidoc/asyncapi.yaml says:\n${violations.join('\n')}`);
    assert.ok(stats.events > 0 && stats.acks > 0, `the asyncapi hooks saw nothing: ${JSON.stringify(stats)}`);
  });
  return ctx;
}

function tail(s, n) {
  return s.split('\n').slice(-n).join('\n');
}

// ---- REST ----

export class Rest {
  constructor(base) { this.base = `${base}/api/v1`; }

  async call(method, p, token, body) {
    const headers = {};
    if (token) headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const res = await fetch(this.base + p, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    const json = text ? JSON.parse(text) : null;
    if (!res.ok) {
      const err = new Error(`${method} ${p}: ${res.status} ${text}`);
      err.status = res.status;
      err.body = json;
      throw err;
    }
    return json;
  }

  /** Registers a fresh user; returns the AuthResult. */
  register(prefix) {
    const username = `${prefix}_${randomUUID().slice(0, 8)}`;
    return this.call('POST', '/auth/register', null, { username, password: 'password-123', display_name: prefix });
  }

  login(username) {
    return this.call('POST', '/auth/login', null, { username, password: 'password-123' });
  }

  logout(token) { return this.call('POST', '/auth/logout', token); }

  conversation(token, type, memberIds, title) {
    return this.call('POST', '/conversations', token, { type, member_ids: memberIds, title });
  }

  send(token, conv, body, clientMsgId) {
    return this.call('POST', `/conversations/${conv}/messages`, token, { body, client_msg_id: clientMsgId });
  }

  history(token, conv, afterSeq) {
    return this.call('GET', `/conversations/${conv}/messages?after_seq=${afterSeq}&limit=200`, token);
  }
}

// ---- tokens ----

const b64url = (b) => Buffer.from(b).toString('base64url');

/** The key id pkg/auth derives from a secret. */
export function kid(secret = SIGNING_KEY) {
  return createHash('sha256').update(secret).digest('base64url').slice(0, 12);
}

/** Mints an HS256 access token with the shared key, as api-rest would. */
export function mintToken({ sub, sid, expiresInSec = 900, issuedAtSec, secret = SIGNING_KEY }) {
  const now = Math.floor(Date.now() / 1000);
  const iat = issuedAtSec ?? now;
  const header = b64url(JSON.stringify({ alg: 'HS256', kid: kid(secret), typ: 'JWT' }));
  const payload = b64url(JSON.stringify({
    iss: 'mop', sub, aud: ['mop'], exp: iat + expiresInSec, iat, jti: randomUUID(), sid,
  }));
  const sig = createHmac('sha256', secret).update(`${header}.${payload}`).digest('base64url');
  return `${header}.${payload}.${sig}`;
}

/** The claims of a token (not verified; for tests). */
export function claims(token) {
  return JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString());
}

// ---- sockets ----

/** Resolves with the connected socket, rejects with the connect_error. */
export function connected(socket, timeoutMs = 5000) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => { cleanup(); reject(new Error('connect timed out')); }, timeoutMs);
    const onConnect = () => { cleanup(); resolve(socket); };
    const onError = (err) => { cleanup(); reject(err); };
    const cleanup = () => { clearTimeout(t); socket.off('connect', onConnect); socket.off('connect_error', onError); };
    socket.on('connect', onConnect);
    socket.on('connect_error', onError);
  });
}

/** Resolves with the next payload of event name. */
export function next(socket, name, timeoutMs = 5000) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => { socket.off(name, on); reject(new Error(`no ${name} within ${timeoutMs} ms`)); }, timeoutMs);
    const on = (data) => { clearTimeout(t); socket.off(name, on); resolve(data); };
    socket.on(name, on);
  });
}

/** Records every event a socket receives, in order. */
export function record(socket) {
  const events = [];
  socket.onAny((name, data) => events.push({ name, data }));
  return events;
}

/** Resolves when pred holds over the recorded events. */
export async function until(what, pred, timeoutMs = 5000) {
  await waitFor(what, async () => pred(), timeoutMs);
}
