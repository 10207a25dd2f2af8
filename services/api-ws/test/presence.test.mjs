// Presence by subscription and batched membership events, with
// socket.io-client 4.8 and 2.5 against the real api-rest, two api-ws
// instances and NATS: direct partners are subscribed by default, other
// users only when asked, subscriptions are re-sent after a reconnect (to the
// other instance, after a crash), and the privacy setting applies to all of it.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { io } from 'socket.io-client';
import ioV2 from 'socket.io-client-v2';

import { connected, next, record, until, useStack } from './stack.mjs';

const ctx = useStack(before, after);

function socketTo(i, token, opts = {}) {
  return ctx.track(io(ctx.stack.ws[i], { transports: ['websocket'], reconnection: false, forceNew: true, auth: { token }, ...opts }));
}

const online = (i, user, opts) => connected(socketTo(i, user.access_token, opts));

const ack = (s, name, payload) => s.timeout(5000).emitWithAck(name, payload);

const privacy = (user, presence) => ctx.rest.call('PUT', '/users/me/privacy', user.access_token, { presence });

/** The presence events about userID a recorded socket got. */
const about = (events, userID) => events.filter((e) => e.name === 'presence' && e.data.user_id === userID).map((e) => e.data);

/** Resolves when userID reads online (or not) for viewer's socket. */
async function reads(s, userID, isOnline) {
  await until(`${userID} online=${isOnline}`, async () => {
    const a = await ack(s, 'presence.query', { user_ids: [userID] });
    return a.ok && a.presence[0].online === isOnline;
  });
}

/**
 * alice and bob in a direct conversation (both wrote: each may see the
 * other), and a group of alice, bob, carol and dave in which carol wrote
 * (alice may see carol) and dave did not (dave is hidden from alice).
 */
async function world() {
  const [alice, bob, carol, dave] = await Promise.all(['alice', 'bob', 'carol', 'dave'].map((n) => ctx.rest.register(n)));
  const direct = await ctx.rest.conversation(alice.access_token, 'direct', [bob.user.id]);
  await ctx.rest.send(alice.access_token, direct.id, 'hi bob');
  await ctx.rest.send(bob.access_token, direct.id, 'hi alice');
  const group = await ctx.rest.conversation(alice.access_token, 'group', [bob.user.id, carol.user.id, dave.user.id], 'team');
  await ctx.rest.send(carol.access_token, group.id, 'hi team');
  return { alice, bob, carol, dave, direct, group };
}

describe('subscriptions', () => {
  test('the direct partner is subscribed by default, group members are not', async () => {
    const { alice, bob, carol } = await world();
    const a = await online(0, alice);
    const seen = record(a);
    const c = await online(1, carol);
    await reads(a, carol.user.id, true);
    const b = await online(1, bob);
    await until('bob online pushed', () => about(seen, bob.user.id).some((p) => p.online));
    c.close();
    await reads(a, carol.user.id, false);
    b.close();
    await until('bob offline pushed', () => about(seen, bob.user.id).some((p) => !p.online && p.last_seen));
    assert.deepEqual(about(seen, carol.user.id), [], 'a group member was pushed without a subscription');
  });

  test('presence.subscribe answers the state and pushes changes; presence.unsubscribe stops them', async () => {
    const { alice, bob, carol } = await world();
    const a = await online(0, alice);
    const seen = record(a);
    const sub = await ack(a, 'presence.subscribe', { user_ids: [carol.user.id] });
    assert.deepEqual(sub, { ok: true, presence: [{ user_id: carol.user.id, online: false, last_seen: null }] });
    const c = await online(1, carol);
    await until('carol online pushed', () => about(seen, carol.user.id).some((p) => p.online));
    const again = await ack(a, 'presence.subscribe', { user_ids: [carol.user.id] });
    assert.equal(again.presence[0].online, true, 'the answer is the current state');

    assert.deepEqual(await ack(a, 'presence.unsubscribe', { user_ids: [carol.user.id, bob.user.id] }), { ok: true });
    const before = about(seen, carol.user.id).length;
    c.close();
    await reads(a, carol.user.id, false);
    // bob was a default subscription, gone too: his coming online is not
    // pushed either. A subscription made after it proves the instance had
    // delivered everything before: the sentinel is carol again.
    const b = await online(1, bob);
    await reads(a, bob.user.id, true);
    await ack(a, 'presence.subscribe', { user_ids: [carol.user.id] });
    await online(1, carol);
    await until('sentinel: carol online again', () => about(seen, carol.user.id).filter((p) => p.online).length === 2);
    assert.equal(about(seen, carol.user.id).filter((p) => !p.online).length, 0, `carol offline pushed after unsubscribe (${before})`);
    assert.deepEqual(about(seen, bob.user.id), [], 'bob pushed after unsubscribe');
    b.close();
  });

});

test('a direct conversation opened while connected subscribes the partner; their first message reveals them', async () => {
  const [alice, erin] = await Promise.all(['alice', 'erin'].map((n) => ctx.rest.register(n)));
  const a = await online(0, alice);
  const seen = record(a);
  const e = await online(1, erin);
  await reads(a, erin.user.id, false); // erin has not written to alice: hidden
  const conv = await ctx.rest.conversation(erin.access_token, 'direct', [alice.user.id]);
  await until('alice has the conversation', () => seen.some((x) => x.name === 'conversation.created' && x.data.id === conv.id));
  await ctx.rest.send(erin.access_token, conv.id, 'hi alice');
  // The hidden subscription turns visible: alice gets erin's current state.
  await until('erin online pushed', () => about(seen, erin.user.id).some((p) => p.online));
  e.close();
  await until('erin offline pushed', () => about(seen, erin.user.id).some((p) => !p.online && p.last_seen));
});

describe('privacy', () => {
  test('a hidden user reads as never seen and is not pushed; a changed setting applies to subscribers', async () => {
    const { alice, bob, dave } = await world();
    const a = await online(1, alice);
    const seen = record(a);
    // dave never wrote to alice: hidden by the default setting.
    const sub = await ack(a, 'presence.subscribe', { user_ids: [dave.user.id] });
    assert.deepEqual(sub.presence, [{ user_id: dave.user.id, online: false, last_seen: null }]);
    const d = await online(1, dave);
    const b = await online(1, bob);
    await until('bob online pushed', () => about(seen, bob.user.id).some((p) => p.online));

    // bob hides from everybody: alice is told once, then hears nothing.
    await privacy(bob, 'nobody');
    await until('bob reads as never seen', () => about(seen, bob.user.id).some((p) => !p.online && p.last_seen === null));
    const q = await ack(a, 'presence.query', { user_ids: [bob.user.id] });
    assert.deepEqual(q.presence, [{ user_id: bob.user.id, online: false, last_seen: null }]);
    // dave shows himself to everybody: alice's subscription turns visible
    // and gets his current state.
    await privacy(dave, 'everybody');
    await until('dave online pushed', () => about(seen, dave.user.id).some((p) => p.online));
    b.close();
    d.close();
    await until('dave offline pushed', () => about(seen, dave.user.id).some((p) => !p.online && p.last_seen));
    assert.equal(about(seen, bob.user.id).filter((p) => p.last_seen !== null).length, 0, 'bob pushed while hidden');
  });

  test('a member removed from the group stops seeing those who wrote only there', async () => {
    const { alice, carol, group } = await world();
    await ctx.rest.send(alice.access_token, group.id, 'hello team'); // alice wrote only in the group for carol
    const a = await online(0, alice);
    const c = await online(1, carol);
    const seen = record(c);
    const sub = await ack(c, 'presence.subscribe', { user_ids: [alice.user.id] });
    assert.equal(sub.presence[0].online, true, 'carol sees alice while both are in the group');
    await ctx.rest.call('DELETE', `/conversations/${group.id}/members/${carol.user.id}`, alice.access_token);
    await until('alice reads as never seen', () => about(seen, alice.user.id).some((p) => !p.online && p.last_seen === null));
    const q = await ack(c, 'presence.query', { user_ids: [alice.user.id] });
    assert.deepEqual(q.presence, [{ user_id: alice.user.id, online: false, last_seen: null }]);
    a.close();
    await ack(c, 'presence.subscribe', { user_ids: [alice.user.id] }); // answered after the removal: still hidden
    assert.equal(about(seen, alice.user.id).filter((p) => p.last_seen).length, 0, 'alice pushed after the removal');
  });

  test('presence.count counts the members online whom the caller may see', async () => {
    const { alice, bob, carol, dave, group } = await world();
    const a = await online(0, alice);
    await online(1, carol);
    await online(1, dave);
    await reads(a, carol.user.id, true);
    const want = { ok: true, conversation_id: group.id, online: 2, members: 4 }; // alice and carol; dave is hidden
    let got;
    await until('count', async () => (got = await ack(a, 'presence.count', { conversation_id: group.id })).online === 2);
    assert.deepEqual(got, want);
    const b = await online(0, bob);
    await reads(a, bob.user.id, true);
    assert.deepEqual(await ack(a, 'presence.count', { conversation_id: group.id }), { ...want, online: 3 });
    b.close();
    const stranger = await ctx.rest.register('stranger');
    const s = await online(0, stranger);
    const nf = await ack(s, 'presence.count', { conversation_id: group.id });
    assert.deepEqual([nf.ok, nf.error.code], [false, 'not_found']);
  });
});

test('adding members in one request is one member.added listing them, once per member socket', async () => {
  const [alice, bob, carol, dave, erin] = await Promise.all(['alice', 'bob', 'carol', 'dave', 'erin'].map((n) => ctx.rest.register(n)));
  const group = await ctx.rest.conversation(alice.access_token, 'group', [bob.user.id], 'team');
  const b = await online(1, bob);
  const c = await online(0, carol);
  const seenB = record(b);
  const seenC = record(c);
  await ctx.rest.call('POST', `/conversations/${group.id}/members`, alice.access_token, { user_ids: [carol.user.id, dave.user.id, erin.user.id] });
  const last = await ctx.rest.send(alice.access_token, group.id, 'sentinel');
  for (const [name, seen] of [['bob', seenB], ['carol', seenC]]) {
    await until(`${name} has the sentinel`, () => seen.some((e) => e.name === 'message.created' && e.data.id === last.id));
    const added = seen.filter((e) => e.name === 'member.added');
    assert.equal(added.length, 1, `${name} got ${added.length} member.added`);
    const mc = added[0].data;
    assert.deepEqual(mc.members.map((m) => m.user_id).sort(), [carol.user.id, dave.user.id, erin.user.id].sort());
    assert.equal(mc.member.user_id, mc.members[0].user_id);
    assert.equal(mc.actor_id, alice.user.id);
  }
});

test('2.x client: presence.subscribe, pushes, presence.unsubscribe', async () => {
  const { alice, carol } = await world();
  const a = ctx.track(ioV2(ctx.stack.ws[1], { transports: ['websocket'], reconnection: false, forceNew: true, query: { token: alice.access_token } }));
  await new Promise((resolve) => a.once('connect', resolve));
  const call = (name, payload) => new Promise((resolve) => a.emit(name, payload, resolve));
  const sub = await call('presence.subscribe', { user_ids: [carol.user.id] });
  assert.deepEqual(sub, { ok: true, presence: [{ user_id: carol.user.id, online: false, last_seen: null }] });
  const pushed = next(a, 'presence');
  const c = await online(1, carol);
  assert.deepEqual(await pushed, { user_id: carol.user.id, online: true, last_seen: null });
  assert.deepEqual(await call('presence.unsubscribe', { user_ids: [carol.user.id] }), { ok: true });
  c.close();
});

// Last: it kills one of the two api-ws instances.
test('subscriptions are re-sent on reconnect and work on the other instance after a crash', async () => {
  const { alice, carol } = await world();
  const acks = [];
  const a = socketTo(0, alice.access_token, { reconnection: true, reconnectionDelay: 100, reconnectionDelayMax: 200 });
  a.on('connect', async () => acks.push(await ack(a, 'presence.subscribe', { user_ids: [carol.user.id] })));
  // Behind the load balancer the next attempt lands on a live instance.
  a.io.on('reconnect_attempt', () => { a.io.uri = ctx.stack.ws[1]; });
  const seen = record(a);
  await until('first subscribe answered', () => acks.length === 1);
  const wsA = ctx.stack.procs.find((p) => p.name === 'ws-a');
  wsA.child.kill('SIGKILL');
  await until('reconnected to the other instance and subscribed again', () => acks.length === 2, 10000);
  assert.deepEqual(acks.map((x) => x.ok), [true, true]);
  await online(1, carol);
  await until('carol online pushed on the new instance', () => about(seen, carol.user.id).some((p) => p.online));
  a.close();
});
