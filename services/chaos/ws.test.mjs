// api-ws faults: one instance killed with SIGKILL while messages are posted
// (its clients move to the other instance, fetch what they missed, and
// nothing is duplicated), then a SIGTERM stop that must finish within
// DRAIN_TIMEOUT even while NATS is unreachable (the offline announcements of
// its users cannot complete).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import {
  Client, Rest, assertClean, group, newLedger, post, report, settle, sleep, startStack, stopStack, waitFor,
} from './lib.mjs';

const MEMBERS = 12;
const DRAIN_MS = 2000;
let stack;
let rest;
let users;
let conv;
let clients;

before(async () => {
  stack = await startStack({ wsEnv: { DRAIN_TIMEOUT: `${DRAIN_MS}ms`, SHUTDOWN_TIMEOUT: '20s' } });
  rest = new Rest(stack);
  ({ users, conv } = await group(rest, MEMBERS, 'ws'));
  clients = users.map((u, i) => new Client(stack, rest, u, conv.id, i, { v2: i % 4 === 3 }));
  await Promise.all(clients.map((c) => c.start()));
});

after(async () => {
  for (const c of clients || []) c.close();
  if (stack) await stopStack(stack);
});

test('api-ws killed with SIGKILL: clients move to the other instance', async () => {
  const [wsA, wsB] = stack.ws;
  const onA = clients.filter((c) => c.at === 0);
  assert.ok(onA.length > 0, 'no client on the instance to kill');
  const ledger = newLedger();
  const posting = post(rest, users[1], conv.id, { count: 40, perSecond: 5, tag: 'ws-kill', ledger });
  await sleep(2500);
  await wsA.kill9();
  await waitFor('the killed instance\'s clients on the other one', () => onA.every((c) => c.connected && c.at === 1), 20000);
  await posting;
  const result = await settle(rest, users[0], clients, ledger);
  report('api-ws-kill9', result, { moved: onA.length });
  assertClean(assert, 'api-ws kill -9', result);
  assert.ok(result.total.reconnects >= onA.length, 'the killed instance\'s clients did not reconnect');
  await wsA.start();
  void wsB;
});

test('api-ws SIGTERM finishes within DRAIN_TIMEOUT while NATS is down', async () => {
  const wsB = stack.ws[1];
  const onB = clients.filter((c) => c.connected && c.at === 1).length;
  assert.ok(onB > 0, 'no client on the instance to stop');
  await stack.nats[0].kill9();
  const ms = await wsB.term();
  report('api-ws-sigterm-nats-down', { total: { clients: onB, accepted: 0, stored: 0, realtime: 0, duplicated: 0, toldMissed: 0, silentlyMissed: 0, lostAfterRecovery: 0, acceptedNotStored: 0, storedDuplicates: 0, failedPosts: 0, retries: 0, resyncs: 0, gaps: 0, reconnects: 0 } },
    { stop_ms: ms, drain_timeout_ms: DRAIN_MS });
  // A second of slack for the process itself (HTTP close, exit).
  assert.ok(ms <= DRAIN_MS + 1000, `SIGTERM took ${ms} ms with DRAIN_TIMEOUT=${DRAIN_MS}ms`);
  await stack.nats[0].start();
});
