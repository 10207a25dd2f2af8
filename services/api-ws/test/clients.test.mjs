// socket.io-client 4.8 against the real api-rest, two api-ws instances and NATS.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { io } from 'socket.io-client';

import {
  ALLOWED_ORIGIN, claims, connected, mintToken, next, record, until, useStack,
} from './stack.mjs';

const ctx = useStack(before, after);

/** A 4.x socket to instance i (0 or 1); reconnection off unless asked. */
function socketTo(i, opts = {}) {
  return ctx.track(io(ctx.stack.ws[i], { transports: ['websocket'], reconnection: false, forceNew: true, ...opts }));
}

async function online(i, token, opts = {}) {
  return connected(socketTo(i, { auth: { token }, ...opts }));
}

/** Two fresh users in a direct conversation, alice on instance 0 and bob on 1. */
async function directPair() {
  const alice = await ctx.rest.register('alice');
  const bob = await ctx.rest.register('bob');
  const conv = await ctx.rest.conversation(alice.access_token, 'direct', [bob.user.id]);
  return { alice, bob, conv, a: await online(0, alice.access_token), b: await online(1, bob.access_token) };
}

function refusal(err) {
  return { message: err.message, code: err.data && err.data.code };
}

describe('connect', () => {
  test('each way of presenting the token, on both instances', async () => {
    const alice = await ctx.rest.register('alice');
    const t = alice.access_token;
    for (const i of [0, 1]) {
      for (const [name, opts] of Object.entries({
        auth: { auth: { token: t } },
        query: { query: { token: t } },
        header: { extraHeaders: { Authorization: `Bearer ${t}` } },
        'header over polling': { extraHeaders: { Authorization: `Bearer ${t}` }, transports: ['polling'] },
      })) {
        const s = await connected(socketTo(i, opts)).catch((e) => assert.fail(`${name} on ${i}: ${e.message}`));
        assert.ok(s.id, name);
        s.close();
      }
    }
  });

  test('each refusal code, and no automatic retry after a refusal', async () => {
    const bob = await ctx.rest.register('bob');
    const { sub, sid } = claims(bob.access_token);
    const expired = mintToken({ sub, sid, issuedAtSec: Math.floor(Date.now() / 1000) - 3600, expiresInSec: 60 });
    const forged = mintToken({ sub, sid, secret: 'someone-elses-key-that-is-long-enough-0123' });
    const cases = {
      token_missing: {},
      token_invalid: { auth: { token: 'not.a.jwt' } },
      'token_invalid (forged)': { auth: { token: forged } },
      token_expired: { auth: { token: expired } },
    };
    for (const [want, opts] of Object.entries(cases)) {
      const s = socketTo(0, { ...opts, reconnection: true });
      const err = await connected(s).then(() => assert.fail(`${want}: connected`), (e) => e);
      assert.deepEqual(refusal(err), { message: 'unauthorized', code: want.split(' ')[0] });
      assert.equal(s.active, false, `${want}: client would retry`);
      s.close();
    }
    // session_revoked after logout, on both instances, once the revocation
    // has landed (a live socket of the session is told).
    const live = await online(0, bob.access_token);
    const revoked = next(live, 'session.revoked');
    await ctx.rest.logout(bob.access_token);
    await revoked;
    for (const i of [0, 1]) {
      const err = await online(i, bob.access_token).then(() => assert.fail('connected'), (e) => e);
      assert.deepEqual(refusal(err), { message: 'unauthorized', code: 'session_revoked' });
    }
  });
});

describe('delivery', () => {
  test('a REST message reaches every member socket on both instances exactly once, and no non-member', async () => {
    const alice = await ctx.rest.register('alice');
    const bob = await ctx.rest.register('bob');
    const carol = await ctx.rest.register('carol');
    const conv = await ctx.rest.conversation(alice.access_token, 'group', [bob.user.id], 'team');
    const aside = await ctx.rest.conversation(alice.access_token, 'direct', [carol.user.id]);

    const members = {
      aliceA: await online(0, alice.access_token),
      aliceB: await online(1, alice.access_token),
      bobB: await online(1, bob.access_token),
    };
    const carolA = await online(0, carol.access_token);
    const carolB = await online(1, carol.access_token);
    const seen = Object.fromEntries(Object.entries(members).map(([k, s]) => [k, record(s)]));
    const carolSeen = [record(carolA), record(carolB)];

    const msg = await ctx.rest.send(bob.access_token, conv.id, 'hello team', 'c-1');
    // Per instance, events leave in stream order: the aside message, sent
    // after, arriving at carol proves the first one would have, had it been hers.
    const aMsg = await ctx.rest.send(alice.access_token, aside.id, 'psst', 'c-2');
    const last = await ctx.rest.send(bob.access_token, conv.id, 'sentinel', 'c-3');

    for (const [name, events] of Object.entries(seen)) {
      await until(`${name} has the sentinel`, () => events.some((e) => e.name === 'message.created' && e.data.id === last.id));
      const copies = events.filter((e) => e.name === 'message.created' && e.data.id === msg.id);
      assert.equal(copies.length, 1, `${name} got the message ${copies.length} times`);
      assert.deepEqual(copies[0].data, msg, `${name} payload`);
    }
    for (const events of carolSeen) {
      await until('carol has the aside', () => events.some((e) => e.name === 'message.created' && e.data.id === aMsg.id));
      assert.equal(events.filter((e) => e.data && e.data.conversation_id === conv.id).length, 0, 'non-member got an event of the group');
    }
  });

  test('message.send with ack; the same client_msg_id twice gives one message', async () => {
    const { alice, conv, a, b } = await directPair();
    const bobSeen = record(b);

    const first = await a.timeout(5000).emitWithAck('message.send', { conversation_id: conv.id, body: 'over the socket', client_msg_id: 'dup-1' });
    assert.equal(first.ok, true, JSON.stringify(first));
    assert.equal(first.message.body, 'over the socket');
    assert.equal(first.message.sender_id, alice.user.id);
    const second = await a.timeout(5000).emitWithAck('message.send', { conversation_id: conv.id, body: 'over the socket', client_msg_id: 'dup-1' });
    assert.equal(second.ok, true);
    assert.equal(second.message.id, first.message.id);
    assert.equal(second.message.seq, first.message.seq);

    const hist = await ctx.rest.history(alice.access_token, conv.id, 0);
    assert.equal(hist.messages.filter((m) => m.client_msg_id === 'dup-1').length, 1);
    const sentinel = await ctx.rest.send(alice.access_token, conv.id, 'after', 'dup-2');
    await until('bob has the sentinel', () => bobSeen.some((e) => e.name === 'message.created' && e.data.id === sentinel.id));
    assert.equal(bobSeen.filter((e) => e.name === 'message.created' && e.data.id === first.message.id).length, 1);

    // Bad input and other people's conversations get a clear error ack.
    const carol = await ctx.rest.register('carol');
    const c = await online(0, carol.access_token);
    for (const [payload, code] of [
      [{ conversation_id: conv.id, body: 'intruder' }, 'not_found'],
      [{ conversation_id: 42, body: 'x' }, 'invalid_input'],
      ['just a string', 'invalid_json'], // as REST answers a body that is not an object
      [{ conversation_id: conv.id, body: 'x'.repeat(16385) }, 'payload_too_large'],
    ]) {
      const ack = await c.timeout(5000).emitWithAck('message.send', payload);
      assert.equal(ack.ok, false);
      assert.equal(ack.error.code, code, JSON.stringify(ack));
    }
    const blank = await a.timeout(5000).emitWithAck('message.send', { conversation_id: conv.id, body: '   ' });
    assert.deepEqual([blank.ok, blank.error.code], [false, 'invalid_input'], JSON.stringify(blank));
    const unknown = await c.timeout(5000).emitWithAck('no.such.event', {});
    assert.deepEqual([unknown.ok, unknown.error.code], [false, 'unknown_event']);
  });

  test('typing and read.updated reach the other member', async () => {
    const { alice, bob, conv, a, b } = await directPair();

    const typing = next(b, 'typing');
    const ack = await a.timeout(5000).emitWithAck('typing', { conversation_id: conv.id, state: 'start' });
    assert.deepEqual(ack, { ok: true });
    assert.deepEqual(await typing, { conversation_id: conv.id, user_id: alice.user.id, state: 'start' });

    const msg = await ctx.rest.send(alice.access_token, conv.id, 'read me', 'r-1');
    const readUpdated = next(a, 'read.updated');
    const readAck = await b.timeout(5000).emitWithAck('read', { conversation_id: conv.id, seq: msg.seq });
    assert.equal(readAck.ok, true, JSON.stringify(readAck));
    assert.equal(readAck.read.seq, msg.seq);
    const marker = await readUpdated;
    assert.deepEqual([marker.conversation_id, marker.user_id, marker.seq], [conv.id, bob.user.id, msg.seq]);
  });
});

describe('sessions', () => {
  test('logout kicks the session within a second on every instance and its reconnect is refused', async () => {
    const alice = await ctx.rest.register('alice');
    const other = await ctx.rest.login(alice.user.username); // a second session of the same user
    const s1 = await online(0, alice.access_token, { reconnection: true });
    const s2 = await online(1, alice.access_token, { reconnection: true });
    const keep = await online(0, other.access_token);
    const kicked = [s1, s2].map((s) => Promise.all([
      next(s, 'session.revoked', 3000),
      new Promise((resolve) => s.once('disconnect', (reason) => resolve({ reason, at: Date.now() }))),
    ]));
    const start = Date.now();
    await ctx.rest.logout(alice.access_token);
    for (const [revoked, disc] of await Promise.all(kicked)) {
      assert.equal(revoked.session_id, claims(alice.access_token).sid);
      assert.equal(disc.reason, 'io server disconnect', 'a transport close would make the client reconnect');
      assert.ok(disc.at - start < 1000, `kicked after ${disc.at - start} ms`);
    }
    assert.equal(s1.active, false);
    assert.equal(s2.active, false);
    assert.equal(keep.connected, true, 'the other session was kicked too');
    const err = await online(1, alice.access_token).then(() => assert.fail('reconnected'), (e) => e);
    assert.deepEqual(refusal(err), { message: 'unauthorized', code: 'session_revoked' });
  });

  test('account lifecycle over REST kicks the right sockets on every instance', async () => {
    const alice = await ctx.rest.register('alice');
    const laptop = await ctx.rest.login(alice.user.username);
    const tablet = await ctx.rest.login(alice.user.username);
    // Sockets of a session on both instances, and what each sees when it is kicked.
    const kickedBy = async (token) => (await Promise.all([0, 1].map((i) => online(i, token)))).map(async (s) => {
      const [revoked, reason] = await Promise.all([
        next(s, 'session.revoked', 5000),
        new Promise((resolve) => s.once('disconnect', resolve)),
      ]);
      return { revoked, reason };
    });
    const mine = await online(0, alice.access_token);

    // Revoking one's own other session from this device.
    const laptopKicked = await kickedBy(laptop.access_token);
    const { sessions } = await ctx.rest.call('GET', '/users/me/sessions', alice.access_token);
    assert.equal(sessions.length, 3);
    assert.deepEqual(sessions.filter((x) => x.current).map((x) => x.id), [claims(alice.access_token).sid]);
    const laptopSid = claims(laptop.access_token).sid;
    await ctx.rest.call('DELETE', `/users/me/sessions/${laptopSid}`, alice.access_token);
    for (const { revoked, reason } of await Promise.all(laptopKicked)) {
      assert.deepEqual([revoked.session_id, revoked.reason, reason], [laptopSid, 'revoked', 'io server disconnect']);
    }

    // Changing the password kicks every other session, not this one.
    const tabletKicked = await kickedBy(tablet.access_token);
    await ctx.rest.call('POST', '/users/me/password', alice.access_token,
      { current_password: 'password-123', new_password: 'password-456' });
    for (const { revoked } of await Promise.all(tabletKicked)) {
      assert.deepEqual([revoked.session_id, revoked.reason], [claims(tablet.access_token).sid, 'password_changed']);
    }
    assert.equal(mine.connected, true, 'the caller was kicked by its own password change');

    // Deleting the account kicks the last one.
    const gone = Promise.all([next(mine, 'session.revoked', 5000), new Promise((resolve) => mine.once('disconnect', resolve))]);
    await ctx.rest.call('DELETE', '/users/me', alice.access_token, { password: 'password-456' });
    const [revoked, reason] = await gone;
    assert.deepEqual([revoked.reason, reason], ['account_deleted', 'io server disconnect']);
    const err = await online(1, alice.access_token).then(() => assert.fail('reconnected'), (e) => e);
    assert.deepEqual(refusal(err), { message: 'unauthorized', code: 'session_revoked' });
  });

  test('an expiring token gets session.expired unless auth.refresh came first', async () => {
    const alice = await ctx.rest.register('alice');
    const other = await ctx.rest.register('mallory');
    const { sub, sid } = claims(alice.access_token);
    // Everything up to the refresh must fit in the token's life; on a loaded machine two
    // connects can take seconds, so the window is generous and nothing slow runs inside it.
    const short = mintToken({ sub, sid, expiresInSec: 6 });
    const expiring = await online(0, short);
    const refreshed = await online(1, short);
    const ack = await refreshed.timeout(5000).emitWithAck('auth.refresh', { token: alice.access_token });
    assert.equal(ack.ok, true, JSON.stringify(ack));
    assert.equal(ack.expires_at, claims(alice.access_token).exp);
    const wrong = await refreshed.timeout(5000).emitWithAck('auth.refresh', { token: other.access_token });
    assert.deepEqual([wrong.ok, wrong.error.code], [false, 'forbidden']);

    const expiredEvent = next(expiring, 'session.expired', 15000);
    const disc = new Promise((resolve) => expiring.once('disconnect', resolve));
    assert.deepEqual(await expiredEvent, {});
    assert.equal(await disc, 'io server disconnect');
    // The refreshed socket had the same expiry: it is still served.
    const still = await refreshed.timeout(5000).emitWithAck('presence.query', { user_ids: [] });
    assert.equal(still.ok, true);
    assert.equal(refreshed.connected, true);
  });
});

describe('transports and origin', () => {
  test('long-polling works, and the default client upgrades to websocket', async () => {
    const alice = await ctx.rest.register('alice');
    const bob = await ctx.rest.register('bob');
    const conv = await ctx.rest.conversation(alice.access_token, 'direct', [bob.user.id]);
    const polling = await online(0, bob.access_token, { transports: ['polling'] });
    assert.equal(polling.io.engine.transport.name, 'polling');
    const upgrading = socketTo(1, { auth: { token: bob.access_token }, transports: ['polling', 'websocket'] });
    const upgraded = new Promise((resolve) => upgrading.io.engine.once('upgrade', (t) => resolve(t.name)));
    await connected(upgrading);
    assert.equal(await upgraded, 'websocket');

    const got = [next(polling, 'message.created'), next(upgrading, 'message.created')];
    const msg = await ctx.rest.send(alice.access_token, conv.id, 'to both transports', 'p-1');
    for (const data of await Promise.all(got)) assert.equal(data.id, msg.id);
    const ack = await polling.timeout(5000).emitWithAck('typing', { conversation_id: conv.id, state: 'stop' });
    assert.deepEqual(ack, { ok: true });
  });

  test('a foreign Origin is refused on both transports; the allowed one works', async () => {
    const alice = await ctx.rest.register('alice');
    for (const transports of [['polling'], ['websocket']]) {
      const err = await online(0, alice.access_token, { transports, extraHeaders: { Origin: 'https://evil.example' } })
        .then(() => assert.fail(`${transports}: connected`), (e) => e);
      assert.notEqual(err.message, 'unauthorized', 'refused later than the HTTP layer');
      const ok = await online(1, alice.access_token, { transports, extraHeaders: { Origin: ALLOWED_ORIGIN } });
      ok.close();
    }
    const res = await fetch(`${ctx.stack.ws[0]}/socket.io/?EIO=4&transport=polling`, { headers: { Origin: 'https://evil.example' } });
    assert.equal(res.status, 403);
  });
});

test('a client that was disconnected recovers every missed message with after_seq', async () => {
  const alice = await ctx.rest.register('alice');
  const bob = await ctx.rest.register('bob');
  const conv = await ctx.rest.conversation(alice.access_token, 'group', [bob.user.id], 'recovery');
  const b = await online(1, bob.access_token);
  let lastSeq = 0;
  b.on('message.created', (m) => { if (m.conversation_id === conv.id) lastSeq = Math.max(lastSeq, m.seq); });
  const first = await ctx.rest.send(alice.access_token, conv.id, 'one', 'm-1');
  await until('bob saw the first message', () => lastSeq === first.seq);
  b.disconnect();
  const cursor = lastSeq; // what the client persisted before going offline
  const missed = [];
  for (let i = 2; i <= 5; i++) missed.push(await ctx.rest.send(alice.access_token, conv.id, `missed ${i}`, `m-${i}`));
  b.connect();
  await connected(b);
  // Some missed messages may still arrive live (their events were on the
  // way); the client dedupes by seq. The page below has them all anyway.
  const liveIds = [];
  b.on('message.created', (m) => liveIds.push(m.id));
  const after = await ctx.rest.send(alice.access_token, conv.id, 'after reconnect', 'm-6');
  await until('the reconnected client gets new messages live', () => liveIds.includes(after.id));
  const page = await ctx.rest.history(bob.access_token, conv.id, cursor);
  assert.deepEqual(page.messages.map((m) => m.id), [...missed, after].map((m) => m.id));
  assert.deepEqual(page.messages.map((m) => m.body), ['missed 2', 'missed 3', 'missed 4', 'missed 5', 'after reconnect']);
  const seqs = page.messages.map((m) => m.seq);
  assert.deepEqual(seqs, seqs.map((_, i) => cursor + 1 + i), 'seq is gap-free');
});
