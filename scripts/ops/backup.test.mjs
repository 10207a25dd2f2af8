// Backup and restore end to end, for SQLite and PostgreSQL: a running stack
// is backed up online (scripts/backup/backup.sh) while its outbox holds
// unpublished events, the events go out, api-rest is stopped and its store
// restored into an empty one (scripts/backup/restore.sh), api-rest starts on
// it and must show the same history, and its relay's re-publication of the
// events pending at backup time must reach neither the stream nor clients a
// second time (JetStream deduplicates by event id).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { io } from 'socket.io-client';
import { Stack, Rest, ORIGIN, connected, record, until, run, root, waitFor } from './stack.mjs';

const backup = path.join(root, 'scripts/backup/backup.sh');
const restore = path.join(root, 'scripts/backup/restore.sh');

const stores = {
  sqlite: {
    async create(dir, name) {
      mkdirSync(path.join(dir, name));
      return path.join(dir, name, 'mop.db');
    },
    sql: (url, q) => run('sqlite3', [url, q]).trim(),
    async drop() {},
  },
  postgres: {
    admin() {
      const u = new URL(process.env.MOP_TEST_POSTGRES_URL || 'postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable');
      u.pathname = '/postgres';
      return u;
    },
    async create(dir, name) {
      const db = `mop_ops_${randomBytes(4).toString('hex')}_${name}`;
      run('psql', ['-X', '-q', '-d', this.admin().href, '-c', `CREATE DATABASE ${db}`]);
      const u = this.admin();
      u.pathname = `/${db}`;
      return u.href;
    },
    sql: (url, q) => run('psql', ['-X', '-Atq', '-d', url, '-c', q]).trim(),
    async drop(url) {
      const db = new URL(url).pathname.slice(1);
      run('psql', ['-X', '-q', '-d', this.admin().href, '-c', `DROP DATABASE IF EXISTS ${db} WITH (FORCE)`]);
    },
  },
};

async function streamMessages(monitorPort) {
  const jsz = await (await fetch(`http://127.0.0.1:${monitorPort}/jsz`)).json();
  return jsz.messages;
}

/** Message count and last seq of every conversation of a user, through REST. */
async function history(rest, token) {
  const out = {};
  const { conversations } = await rest.call('GET', '/conversations', token);
  for (const c of conversations) {
    let after = 0;
    let count = 0;
    for (;;) {
      const page = await rest.history(token, c.id, after);
      count += page.messages.length;
      if (page.messages.length) after = page.messages.at(-1).seq;
      if (!page.has_more) break;
    }
    out[c.id] = { count, lastSeq: c.last_seq, lastFetched: after };
  }
  return out;
}

for (const [kind, store] of Object.entries(stores)) {
  test(`backup and restore: ${kind}`, { timeout: 120000 }, async (t) => {
    const stack = new Stack(`backup-${kind}`);
    const made = [];
    let sock;
    t.after(async () => {
      sock?.close();
      await stack.stopAll();
      for (const url of made) await store.drop(url);
    });
    const dbA = await store.create(stack.dir, 'a');
    made.push(dbA);
    const nats = await stack.nats();
    let restURL = await stack.rest('api-rest', dbA);
    const wsURL = await stack.ws('api-ws');
    let rest = new Rest(restURL);

    const alice = await rest.register('alice');
    const bob = await rest.register('bob');
    const carol = await rest.register('carol');
    const direct = await rest.conversation(alice.access_token, 'direct', [bob.user.id]);
    const group = await rest.conversation(alice.access_token, 'group', [bob.user.id, carol.user.id], 'ops');

    sock = io(wsURL, { auth: { token: bob.access_token }, transports: ['websocket'], extraHeaders: { Origin: ORIGIN } });
    const events = record(sock);
    await connected(sock);
    const created = () => events.filter((e) => e.name === 'message.created').map((e) => e.data.id);

    let sent = 0;
    const send = async (conv) => {
      sent++;
      return rest.send(alice.access_token, conv.id, `message ${sent}`, `m-${sent}`);
    };
    for (let i = 0; i < 10; i++) await send(i % 2 ? direct : group);
    await until('bob receives the first 10 messages', () => created().length === 10, 15000);

    // NATS down: the next messages commit to the store, their events stay in the outbox.
    await stack.stop('nats');
    for (let i = 0; i < 5; i++) await send(i % 2 ? direct : group);
    const pendingSQL = 'SELECT count(*) FROM outbox WHERE published_at IS NULL';
    assert.ok(Number(store.sql(dbA, pendingSQL)) >= 5, 'outbox holds the unpublished events');

    // Online backup: api-rest keeps running.
    const textfile = path.join(stack.dir, 'mop-backup.prom');
    const started = Math.floor(Date.now() / 1000);
    const file = run(backup, ['--database-url', dbA, '--out', path.join(stack.dir, 'backups'), '--textfile', textfile]).trim();
    const ext = kind === 'sqlite' ? 'sqlite3' : 'pgdump';
    assert.match(path.basename(file), new RegExp(`^mop-\\d{8}T\\d{6}Z\\.${ext}$`));
    const last = Number(readFileSync(textfile, 'utf8').match(new RegExp(`^mop_backup_last_success_timestamp_seconds\\{kind="${ext}"\\} (\\d+)$`, 'm'))?.[1]);
    assert.ok(last >= started, `textfile records the success (${last} >= ${started})`);
    run('promtool', ['check', 'metrics'], { input: readFileSync(textfile), stdio: ['pipe', 'pipe', 'pipe'] });

    // NATS back: the relay publishes the pending events, bob gets all 15.
    await stack.nats({ port: nats.port, monitorPort: nats.monitorPort });
    await until('bob receives all 15 messages', () => created().length === 15, 30000);
    await waitFor('outbox drained', () => store.sql(dbA, pendingSQL) === '0');
    const before = await history(rest, alice.access_token);
    const streamBefore = await streamMessages(nats.monitorPort);
    assert.equal(Object.keys(before).length, 2);
    assert.equal(before[direct.id].count + before[group.id].count, 15);

    // Restoring over a store that exists is refused and changes nothing.
    assert.throws(() => run(restore, ['--from', file, '--database-url', dbA]), (e) => e.status === 2);

    // Lose api-rest's store; restore into an empty one; start api-rest on it.
    await stack.stop('api-rest');
    const dbB = await store.create(stack.dir, 'b');
    made.push(dbB);
    run(restore, ['--from', file, '--database-url', dbB]);
    assert.ok(Number(store.sql(dbB, pendingSQL)) >= 5, 'the backup carries the events pending at backup time');
    restURL = await stack.rest('api-rest', dbB);
    rest = new Rest(restURL);

    // Same history, message for message count and last seq per conversation.
    const after = await history(rest, alice.access_token);
    assert.deepEqual(after, before);

    // The relay re-publishes the rows pending in the backup; JetStream drops
    // them as duplicates. A sentinel sent afterwards arrives after anything
    // the re-publication could have delivered (one ordered stream).
    await waitFor('restored outbox drained', () => store.sql(dbB, pendingSQL) === '0', 30000);
    const sentinel = await send(direct);
    assert.equal(sentinel.seq, before[direct.id].lastSeq + 1, 'seq continues after the restored history');
    await until('bob receives the sentinel', () => created().includes(sentinel.id), 15000);
    assert.equal(await streamMessages(nats.monitorPort), streamBefore + 1, 'the stream took only the sentinel');
    const ids = created();
    assert.equal(ids.length, 16, `bob received ${ids.length} message.created, want 15 + sentinel`);
    assert.equal(new Set(ids).size, ids.length, 'no message delivered twice');
  });
}

test('backup.sh and restore.sh refuse bad arguments', () => {
  assert.throws(() => run(backup, ['--out', '/nonexistent']), (e) => e.status === 64);
  assert.throws(() => run(restore, ['--from', '/nonexistent/mop.sqlite3', '--database-url', '/tmp/x.db']), (e) => e.status === 1);
});
