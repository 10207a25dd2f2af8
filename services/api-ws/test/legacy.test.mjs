// socket.io-client 2.5.0 (Engine.IO v3) against the real stack: connect,
// receive, act with acks, refusals (an `error` event carrying {code}) and kicks.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import ioV2 from 'socket.io-client-v2';

import { claims, mintToken, next, until, useStack } from './stack.mjs';

const ctx = useStack(before, after);

function v2(i, opts) {
  return ctx.track(ioV2(ctx.stack.ws[i], { transports: ['websocket'], reconnection: false, forceNew: true, ...opts }));
}

/** Resolves on connect, rejects with the error event's data on a refusal. */
function v2Connected(s, timeoutMs = 5000) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('connect timed out')), timeoutMs);
    s.once('connect', () => { clearTimeout(t); resolve(s); });
    s.once('error', (data) => { clearTimeout(t); reject(Object.assign(new Error('refused'), { data })); });
  });
}

function ack(s, name, payload) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no ack for ${name}`)), 5000);
    s.emit(name, payload, (answer) => { clearTimeout(t); resolve(answer); });
  });
}

test('2.x client: connect with the query token or a header, receive, send with ack', async () => {
  const alice = await ctx.rest.register('alice');
  const bob = await ctx.rest.register('bob');
  const conv = await ctx.rest.conversation(alice.access_token, 'direct', [bob.user.id]);
  const b = await v2Connected(v2(1, { query: { token: bob.access_token } }));
  const viaHeader = await v2Connected(v2(0, { transportOptions: { websocket: { extraHeaders: { Authorization: `Bearer ${bob.access_token}` } } } }));
  const polling = await v2Connected(v2(0, { query: { token: bob.access_token }, transports: ['polling'] }));
  const got = [b, viaHeader, polling].map((s) => next(s, 'message.created'));
  const msg = await ctx.rest.send(alice.access_token, conv.id, 'hello from REST', 'v2-1');
  for (const data of await Promise.all(got)) assert.deepEqual(data, msg);

  const a = await v2Connected(v2(0, { query: { token: alice.access_token } }));
  const seen = [];
  b.on('message.created', (m) => seen.push(m)); // 2.x has no onAny
  const sent = await ack(a, 'message.send', { conversation_id: conv.id, body: 'from 2.x', client_msg_id: 'v2-2' });
  assert.equal(sent.ok, true, JSON.stringify(sent));
  await until('bob got it', () => seen.some((m) => m.id === sent.message.id));
  const typing = next(b, 'typing');
  assert.deepEqual(await ack(a, 'typing', { conversation_id: conv.id, state: 'start' }), { ok: true });
  assert.equal((await typing).user_id, alice.user.id);
  const bad = await ack(a, 'read', { conversation_id: conv.id, seq: 'seven' });
  assert.deepEqual([bad.ok, bad.error.code], [false, 'invalid_input']);
});

test('2.x client: refusals arrive as an error event with {code}, and the server closes the connection', async () => {
  const carol = await ctx.rest.register('carol');
  const { sub, sid } = claims(carol.access_token);
  const expired = mintToken({ sub, sid, issuedAtSec: Math.floor(Date.now() / 1000) - 3600, expiresInSec: 60 });
  const cases = [
    ['token_missing', {}],
    ['token_invalid', { query: { token: 'garbage' } }],
    ['token_expired', { query: { token: expired } }],
  ];
  for (const [code, opts] of cases) {
    const s = v2(0, opts);
    const closed = new Promise((resolve) => s.io.once('open', () => s.io.engine.once('close', resolve)));
    const err = await v2Connected(s).then(() => assert.fail(`${code}: connected`), (e) => e);
    assert.deepEqual(err.data, { code });
    // A client that does not call close() is not kept waiting for the
    // 45 s connect timeout: the server closes refused v2 connections.
    await Promise.race([closed, new Promise((_, reject) => setTimeout(() => reject(new Error(`${code}: still open`)), 5000))]);
  }
  // A socket of the session sees the revocation: from then on every
  // instance refuses the session (a connect racing the logout itself may be
  // admitted for the few milliseconds until the revocation lands, then kicked).
  const live = await v2Connected(v2(0, { query: { token: carol.access_token } }));
  const revoked = next(live, 'session.revoked');
  await ctx.rest.logout(carol.access_token);
  await revoked;
  const s = v2(1, { query: { token: carol.access_token } });
  const err = await v2Connected(s).then(() => assert.fail('connected after logout'), (e) => e);
  assert.deepEqual(err.data, { code: 'session_revoked' });
  s.close(); // what the documentation asks 2.x clients to do
});

test('2.x client: logout kicks with session.revoked and it does not reconnect', async () => {
  const dave = await ctx.rest.register('dave');
  const s = await v2Connected(v2(0, { query: { token: dave.access_token }, reconnection: true }));
  const revoked = next(s, 'session.revoked', 3000);
  const disc = new Promise((resolve) => s.once('disconnect', resolve));
  const reconnecting = new Promise((resolve) => s.once('reconnect_attempt', () => resolve('reconnecting')));
  await ctx.rest.logout(dave.access_token);
  assert.equal((await revoked).session_id, claims(dave.access_token).sid);
  assert.equal(await disc, 'io server disconnect');
  const verdict = await Promise.race([reconnecting, new Promise((resolve) => setTimeout(() => resolve('stayed down'), 1500))]);
  assert.equal(verdict, 'stayed down');
});
