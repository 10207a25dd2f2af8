// Processes for the operations suites: bin/nats-server, bin/api-rest and
// bin/api-ws (built by `make build`) on free loopback ports, each started and
// stopped on its own (the suites restart NATS and move api-rest to a restored
// store). Every process still running is killed when the suite exits.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export { freePort, Rest, connected, record, until } from '../../services/api-ws/test/stack.mjs';
import { freePort, until } from '../../services/api-ws/test/stack.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
export const root = path.resolve(here, '../..');
export const bin = (name) => path.join(root, 'bin', name);

export const SIGNING_KEY = 'mop-ops-suite-signing-key-0123456789abcdef';
export const ORIGIN = 'https://www.example.test';

const running = new Set();
process.on('exit', () => {
  for (const c of running) {
    try { c.kill('SIGKILL'); } catch { /* gone */ }
  }
});

/** Resolves when fn() holds (polled), rejects with the last error after timeoutMs. */
export const waitFor = (what, fn, timeoutMs = 20000) => until(what, fn, timeoutMs);

async function ready(url) {
  return (await fetch(`${url}/readyz`)).status === 200;
}

/** A set of named processes sharing a temporary directory for logs and state. */
export class Stack {
  constructor(prefix) {
    this.dir = mkdtempSync(path.join(tmpdir(), `mop-${prefix}-`));
    this.procs = new Map();
  }

  start(name, file, args, env = {}) {
    const log = path.join(this.dir, `${name}.log`);
    const fd = openSync(log, 'a');
    const child = spawn(file, args, { env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', fd, fd] });
    running.add(child);
    child.on('exit', () => running.delete(child));
    this.procs.set(name, { child, log });
    return child;
  }

  /** Stops one process (SIGTERM, SIGKILL after 10 s) and waits for its exit. */
  async stop(name) {
    const p = this.procs.get(name);
    if (!p) return;
    this.procs.delete(name);
    const { child } = p;
    if (child.exitCode !== null || child.signalCode !== null) return;
    await new Promise((resolve) => {
      const t = setTimeout(() => child.kill('SIGKILL'), 10000);
      child.once('exit', () => { clearTimeout(t); resolve(); });
      child.kill('SIGTERM');
    });
  }

  async stopAll(keep = false) {
    await Promise.all([...this.procs.keys()].map((n) => this.stop(n)));
    if (!keep) rmSync(this.dir, { recursive: true, force: true });
  }

  logs(lines = 30) {
    return [...this.procs.entries()].map(([n, p]) =>
      `--- ${n}\n${readFileSync(p.log, 'utf8').split('\n').slice(-lines).join('\n')}`).join('\n');
  }

  /** NATS with JetStream (store in the stack's directory) and its monitoring port. */
  async nats({ port, monitorPort, name = 'nats' } = {}) {
    port ??= await freePort();
    monitorPort ??= await freePort();
    this.start(name, bin('nats-server'), ['-a', '127.0.0.1', '-p', String(port), '-m', String(monitorPort),
      '-js', '-sd', path.join(this.dir, 'jetstream')]);
    await waitFor('nats', async () => (await fetch(`http://127.0.0.1:${monitorPort}/healthz`)).ok);
    this.natsURL = `nats://127.0.0.1:${port}`;
    return { port, monitorPort, url: this.natsURL };
  }

  shared() {
    return { NATS_URL: this.natsURL, JWT_SIGNING_KEY: SIGNING_KEY, ALLOWED_ORIGINS: ORIGIN, LOG_LEVEL: 'info' };
  }

  /** api-rest on databaseURL, with cheap hashing and wide rate limits for tests. */
  async rest(name, databaseURL, env = {}) {
    const port = await freePort();
    this.start(name, bin('api-rest'), [], {
      ...this.shared(),
      HTTP_ADDR: `127.0.0.1:${port}`,
      DATABASE_URL: databaseURL,
      PASSWORD_HASH_MEMORY_KIB: '1024',
      PASSWORD_HASH_TIME: '1',
      REGISTER_RATE_PER_MINUTE: '6000',
      REGISTER_RATE_BURST: '1000',
      LOGIN_RATE_PER_MINUTE: '6000',
      LOGIN_RATE_BURST: '1000',
      ...env,
    });
    const url = `http://127.0.0.1:${port}`;
    await this.ready(name, url);
    return url;
  }

  async ws(name, env = {}) {
    const port = await freePort();
    this.start(name, bin('api-ws'), [], {
      ...this.shared(),
      HTTP_ADDR: `127.0.0.1:${port}`,
      INSTANCE_ID: name,
      DRAIN_TIMEOUT: '1s',
      SHUTDOWN_TIMEOUT: '5s',
      ...env,
    });
    const url = `http://127.0.0.1:${port}`;
    await this.ready(name, url);
    return url;
  }

  async ready(name, url) {
    try {
      await waitFor(`${name} ready`, () => ready(url), 30000);
    } catch (e) {
      throw new Error(`${e.message}\n${this.logs()}`);
    }
  }
}

/** The value of one series in a Prometheus text exposition (sum over matching label sets). */
export async function metric(url, name, labels = '') {
  const text = await (await fetch(`${url}/metrics`)).text();
  let sum = null;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== ' ' && rest[0] !== '{') continue;
    if (labels && !rest.includes(labels)) continue;
    sum = (sum ?? 0) + Number(rest.slice(rest.lastIndexOf(' ') + 1));
  }
  return sum;
}

/** Runs a command, returning stdout; throws with stderr on failure. */
export function run(file, args, opts = {}) {
  try {
    return execFileSync(file, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  } catch (e) {
    const err = new Error(`${path.basename(file)} ${args.join(' ')}: exit ${e.status}\n${e.stderr}`);
    err.status = e.status;
    throw err;
  }
}
