// The validator of asyncapi.mjs itself: it accepts what the server sends and
// refuses what the document does not allow, so a green real-client suite means
// something. No stack needed.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { acks, checkAccepted, checkAck, checkConnectError, checkEvent, sent, violations } from './asyncapi.mjs';

const message = {
  id: '01J00000000000000000000001', conversation_id: '01J00000000000000000000002', seq: 1,
  sender_id: '01J00000000000000000000003', body: 'hi', client_msg_id: '', created_at: '2026-01-02T03:04:05Z',
  edited_at: null, deleted_at: null,
};

test('asyncapi validator: documented shapes pass, others are violations', () => {
  assert.ok(sent.has('message.created') && sent.has('resync') && sent.has('connect_error'));
  assert.deepEqual([...acks.keys()].sort(), ['auth.refresh', 'message.send', 'presence.count', 'presence.query',
    'presence.subscribe', 'presence.unsubscribe', 'read', 'typing']);
  const cases = [
    ['event', 'message.created', message, true],
    ['event', 'message.created', { ...message, seq: 'one' }, false],
    ['event', 'message.created', { ...message, extra: 1 }, false],
    ['event', 'message.created', { ...message, created_at: 'yesterday' }, false],
    ['event', 'no.such.event', {}, false],
    ['event', 'resync', { reason: 'gap' }, true],
    ['event', 'resync', { reason: 'because' }, false],
    ['event', 'session.expired', {}, true],
    ['event', 'presence', { user_id: 'u', online: false, last_seen: null }, true],
    ['ack', 'message.send', { ok: true, message }, true],
    ['ack', 'message.send', { ok: true }, false],
    ['ack', 'message.send', { ok: false, error: { code: 'not_found', message: 'no' } }, true],
    ['ack', 'message.send', { ok: false, error: { code: 'conflict', message: 'no' } }, false],
    ['ack', 'typing', { ok: true }, true],
    ['ack', 'no.such.event', { ok: false, error: { code: 'unknown_event', message: 'unknown event' } }, true],
    ['ack', 'no.such.event', { ok: true }, false],
  ];
  for (const [kind, name, data, valid] of cases) {
    const before = violations.length;
    const problems = kind === 'event' ? checkEvent(name, data) : checkAck(name, data);
    assert.equal(problems.length === 0, valid, `${kind} ${name} ${JSON.stringify(data)}: ${problems}`);
    violations.length = before; // these violations are on purpose
  }
  for (const [name, payload, valid] of [
    ['message.send', { conversation_id: 'c', body: 'hi', client_msg_id: 'x' }, true],
    ['message.send', { conversation_id: 'c', body: 'hi', clientMsgId: 'x' }, false],
    ['typing', { conversation_id: 'c', state: 'maybe' }, false],
    ['presence.subscribe', { user_ids: ['a', 'b'] }, true],
  ]) {
    const before = violations.length;
    assert.equal(checkAccepted(name, payload).length === 0, valid, `${name} ${JSON.stringify(payload)}`);
    violations.length = before;
  }
  const refusals = [
    [{ message: 'unauthorized', data: { code: 'token_expired' } }, true],
    [{ message: 'rate_limited', data: { code: 'sockets_per_user' } }, true],
    [{ message: 'Invalid namespace' }, true],
    [{ message: 'unauthorized', data: { code: 'sockets_per_user' } }, false],
    [{ message: 'unauthorized' }, false],
    [{ message: 'nope', data: { code: 'token_expired' } }, false],
  ];
  for (const [err, valid] of refusals) {
    const before = violations.length;
    assert.equal(checkConnectError(err).length === 0, valid, JSON.stringify(err));
    violations.length = before;
  }
});

test('asyncapi: the data of every golden event of pkg/event is what the document sends', async () => {
  const { readdirSync, readFileSync } = await import('node:fs');
  const dir = new URL('../../../pkg/event/testdata/', import.meta.url);
  const files = readdirSync(dir).filter((f) => f.endsWith('.golden.json'));
  assert.ok(files.length >= 10, `only ${files.length} golden files`);
  for (const f of files) {
    const env = JSON.parse(readFileSync(new URL(f, dir), 'utf8'));
    if (env.type === 'privacy.updated') continue; // between the services only, never on a socket
    const before = violations.length;
    const problems = checkEvent(env.type, env.data);
    violations.length = before;
    assert.deepEqual(problems, [], `${f}`);
  }
});
