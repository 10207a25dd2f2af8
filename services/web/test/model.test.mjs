// Unit tests of the chat model (src/js/chat.js) with a fake REST API and a fake socket:
// the seq window, deduplication, gap filling, unread counts and idempotent sending, in
// orderings that are hard to force through a browser.

import assert from 'node:assert/strict';
import { beforeEach, describe, it } from 'node:test';

// The model only needs these browser globals.
globalThis.document = { visibilityState: 'visible', addEventListener() {} };
const { Chat } = await import('../src/js/chat.js');

const ME = { id: 'me', username: 'me', display_name: 'Me' };
const PEER = { user_id: 'peer', username: 'peer', display_name: 'Peer' };
const CONV = 'c1';

function msg(seq, extra = {}) {
  return {
    id: `m${seq}`, conversation_id: CONV, seq, sender_id: 'peer', body: `body ${seq}`, client_msg_id: '',
    created_at: new Date(1_700_000_000_000 + seq * 1000).toISOString(), edited_at: null, deleted_at: null, ...extra,
  };
}

// FakeApi keeps a server-side history and records calls.
class FakeApi {
  stored = []; // server messages, ascending seq
  calls = [];
  readSeq = 0;
  peerReadSeq = 0; // the other member's marker, as REST reports it in members
  sendFailures = 0; // the next n sends fail with a network error *after* storing
  byClientId = new Map();

  async conversations() {
    this.calls.push(['conversations']);
    const last = this.stored.at(-1) ?? null;
    return [{
      id: CONV, type: 'direct', title: '', members: [{ ...ME, user_id: 'me' }, { ...PEER, read_seq: this.peerReadSeq }],
      last_seq: last?.seq ?? 0, read_seq: this.readSeq, last_message: last,
      unread_count: this.stored.filter((m) => m.seq > this.readSeq && m.sender_id !== 'me').length,
      created_at: '2026-01-01T00:00:00Z', updated_at: '2026-01-01T00:00:00Z',
    }];
  }

  async conversation() { return (await this.conversations())[0]; }

  async history(id, { after, before, limit = 50 }) {
    this.calls.push(['history', { after, before, limit }]);
    let list = this.stored;
    if (after !== undefined) {
      list = list.filter((m) => m.seq > after);
      return { messages: list.slice(0, limit), has_more: list.length > limit };
    }
    if (before !== undefined) list = list.filter((m) => m.seq < before);
    return { messages: list.slice(-limit), has_more: list.length > limit };
  }

  async send(id, body, clientMsgId) {
    this.calls.push(['send', clientMsgId]);
    let m = this.byClientId.get(clientMsgId);
    if (!m) {
      m = msg(this.stored.length + 1, { sender_id: 'me', body, client_msg_id: clientMsgId });
      this.stored.push(m);
      this.byClientId.set(clientMsgId, m);
    }
    if (this.sendFailures > 0) {
      this.sendFailures--;
      throw Object.assign(new Error('lost'), { code: 'network', status: 0 });
    }
    return m;
  }

  async markRead(id, seq) {
    this.calls.push(['read', seq]);
    this.readSeq = Math.max(this.readSeq, seq);
    return { conversation_id: id, user_id: 'me', seq: this.readSeq };
  }
}

// FakeRealtime is a disconnected socket that can deliver server events.
class FakeRealtime extends EventTarget {
  connected = false;
  notified = [];
  async request() { throw Object.assign(new Error('down'), { code: 'disconnected' }); }
  notify(event, payload) { this.notified.push([event, payload]); }
  deliver(name, data) { this.dispatchEvent(new CustomEvent(name, { detail: data })); }
}

// settle lets queued promise continuations (catch-ups, sends) run.
const settle = () => new Promise((r) => setTimeout(r, 0));
const seqs = (c) => [...c.messages.keys()].sort((a, b) => a - b);

describe('chat model', () => {
  let api, rt, chat;

  beforeEach(async () => {
    api = new FakeApi();
    rt = new FakeRealtime();
    chat = new Chat(api, rt, ME);
  });

  it('loads the latest page and scrolls back with before_seq to the first message', async () => {
    for (let i = 1; i <= 120; i++) api.stored.push(msg(i));
    await chat.sync();
    await chat.open(CONV);
    const c = chat.active;
    assert.deepEqual([c.floor, c.top, c.hasMoreBefore], [71, 120, true]);
    await chat.loadOlder(CONV);
    await chat.loadOlder(CONV);
    assert.deepEqual(seqs(c), Array.from({ length: 120 }, (_, i) => i + 1));
    assert.equal(c.hasMoreBefore, false);
    assert.deepEqual(api.calls.filter(([k]) => k === 'history').map(([, q]) => q.before), [undefined, 71, 21]);
    assert.equal(c.unread_count, 0); // read while open
    assert.equal(api.readSeq, 120);
  });

  it('stores a message once whether it comes live, twice, or through after_seq', async () => {
    for (let i = 1; i <= 3; i++) api.stored.push(msg(i));
    await chat.sync();
    await chat.open(CONV);
    api.stored.push(msg(4));
    rt.deliver('message.created', msg(4));
    rt.deliver('message.created', msg(4));
    await chat.sync(); // a reconnect: after_seq=4 finds nothing new
    assert.deepEqual(seqs(chat.active), [1, 2, 3, 4]);
    const afters = api.calls.filter(([k, q]) => k === 'history' && q.after !== undefined).map(([, q]) => q.after);
    assert.deepEqual(afters, [4]);
  });

  it('fills a gap with after_seq when a live event skips seqs', async () => {
    for (let i = 1; i <= 2; i++) api.stored.push(msg(i));
    await chat.sync();
    await chat.open(CONV);
    for (let i = 3; i <= 6; i++) api.stored.push(msg(i));
    rt.deliver('message.created', msg(6)); // 3..5 were missed
    await settle();
    await settle();
    const c = chat.active;
    assert.deepEqual(seqs(c), [1, 2, 3, 4, 5, 6]);
    assert.equal(c.top, 6);
    assert.ok(api.calls.some(([k, q]) => k === 'history' && q.after === 2));
  });

  it('catches up every loaded conversation on the server\'s resync, without a gap to see', async () => {
    for (let i = 1; i <= 2; i++) api.stored.push(msg(i));
    await chat.sync();
    await chat.open(CONV);
    for (let i = 3; i <= 4; i++) api.stored.push(msg(i)); // missed: no live event, no later seq
    rt.deliver('resync', { reason: 'stream_recreated' });
    for (let i = 0; i < 5; i++) await settle();
    assert.deepEqual(seqs(chat.active), [1, 2, 3, 4]);
    assert.ok(api.calls.some(([k, q]) => k === 'history' && q.after === 2));
  });

  it('counts unread messages once and not our own', async () => {
    api.stored.push(msg(1));
    await chat.sync();
    const c = chat.conversations.get(CONV);
    assert.equal(c.unread_count, 1);
    rt.deliver('message.created', msg(2));
    rt.deliver('message.created', msg(2));
    rt.deliver('message.created', msg(3, { sender_id: 'me' }));
    assert.equal(c.unread_count, 2);
    assert.equal(c.last_message.seq, 3);
    rt.deliver('read.updated', { conversation_id: CONV, user_id: 'me', seq: 3 }); // another tab read it
    assert.equal(c.unread_count, 0);
  });

  it('marks own messages seen when the other member reads past them', async () => {
    await chat.sync();
    rt.deliver('read.updated', { conversation_id: CONV, user_id: 'peer', seq: 5 });
    const c = chat.conversations.get(CONV);
    assert.deepEqual(chat.seenBy(c, 5), ['peer']);
    assert.deepEqual(chat.seenBy(c, 6), []);
    rt.deliver('read.updated', { conversation_id: CONV, user_id: 'peer', seq: 2 }); // never backwards
    assert.deepEqual(chat.seenBy(c, 5), ['peer']);
  });

  it('shows receipts from the members\' read_seq after a reload, before any read.updated', async () => {
    api.peerReadSeq = 4;
    await chat.sync();
    const c = chat.conversations.get(CONV);
    assert.deepEqual(chat.seenBy(c, 4), ['peer']);
    assert.deepEqual(chat.seenBy(c, 5), []);
  });

  it('retries a send whose answer was lost with the same client_msg_id: one message', async () => {
    await chat.sync();
    await chat.open(CONV);
    api.sendFailures = 1;
    await chat.send(CONV, 'hello');
    const c = chat.active;
    const [pending] = [...c.pending.values()];
    assert.equal(pending.state, 'failed');
    await chat.retry(CONV, pending.client_msg_id);
    assert.equal(c.pending.size, 0);
    assert.deepEqual([...c.messages.values()].map((m) => m.body), ['hello']);
    assert.equal(api.stored.length, 1);
    const ids = api.calls.filter(([k]) => k === 'send').map(([, id]) => id);
    assert.deepEqual(ids, [pending.client_msg_id, pending.client_msg_id]);
  });

  it('drops the pending entry when the echo arrives before the answer', async () => {
    await chat.sync();
    await chat.open(CONV);
    let release;
    api.send = (id, body, clientMsgId) => new Promise((ok) => { release = () => ok(msg(1, { sender_id: 'me', body, client_msg_id: clientMsgId })); });
    const sending = chat.send(CONV, 'hi');
    const c = chat.active;
    const [pending] = [...c.pending.values()];
    rt.deliver('message.created', msg(1, { sender_id: 'me', body: 'hi', client_msg_id: pending.client_msg_id }));
    assert.equal(c.pending.size, 0);
    release();
    await sending;
    assert.deepEqual(seqs(c), [1]);
    assert.equal(c.unread_count, 0);
  });

  it('applies edits and tombstones, never rolling a delete back', async () => {
    api.stored.push(msg(1));
    await chat.sync();
    await chat.open(CONV);
    const edited = msg(1, { body: 'edited', edited_at: '2026-01-01T00:01:00Z' });
    const deleted = msg(1, { body: '', edited_at: '2026-01-01T00:01:00Z', deleted_at: '2026-01-01T00:02:00Z' });
    rt.deliver('message.updated', edited);
    assert.equal(chat.active.messages.get(1).body, 'edited');
    rt.deliver('message.deleted', deleted);
    rt.deliver('message.updated', edited); // late
    assert.ok(chat.active.messages.get(1).deleted_at);
  });

  it('throttles typing notifications and stops on send', async () => {
    await chat.sync();
    await chat.open(CONV);
    chat.typed(CONV);
    chat.typed(CONV);
    chat.typed(CONV);
    assert.deepEqual(rt.notified.map(([, p]) => p.state), ['start']);
    await chat.send(CONV, 'x');
    assert.deepEqual(rt.notified.map(([, p]) => p.state), ['start', 'stop']);
    rt.deliver('typing', { conversation_id: CONV, user_id: 'peer', state: 'start' });
    assert.deepEqual(chat.typingNames(chat.active), ['Peer']);
    rt.deliver('message.created', msg(2));
    assert.deepEqual(chat.typingNames(chat.active), []);
  });
});
