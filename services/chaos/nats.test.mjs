// NATS faults on one node: killed and restarted before the instances'
// consumers delivered their first event, killed and restarted after it, and
// killed with its store wiped (the stream and buckets come back empty, their
// sequences restart). REST keeps accepting meanwhile; every client must end
// with every message, told (resync or disconnect) about any it did not get in
// realtime, and both services must become ready again without a restart.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import {
  Client, Rest, assertClean, group, logs, newLedger, post, report, restartWs, settle, sleep, startStack, stopStack, waitFor,
} from './lib.mjs';

const MEMBERS = 20;
let stack;
let rest;
let users;
let conv;
let clients;

before(async () => {
  stack = await startStack();
  rest = new Rest(stack);
  ({ users, conv } = await group(rest, MEMBERS, 'nats'));
  clients = users.map((u, i) => new Client(stack, rest, u, conv.id, i, { v2: i % 5 === 4 }));
  await Promise.all(clients.map((c) => c.start()));
});

after(async () => {
  for (const c of clients || []) c.close();
  if (stack) await stopStack(stack);
});

const nats = () => stack.nats[0];

async function outagePending() {
  return stack.rest.metric('mop_outbox_pending');
}

test('NATS killed before the first event and restarted', async () => {
  // Fresh api-ws instances whose consumers have delivered nothing yet, NATS
  // killed half a second later: where a DeliverNew consumer lost events.
  await restartWs(stack, clients);
  await sleep(500);
  await nats().kill9();
  const ledger = newLedger();
  await sleep(1000);
  const posting = post(rest, users[1], conv.id, { count: 50, perSecond: 5, tag: 'before-first', ledger });
  await sleep(5000);
  // Events wait in the outbox; the gauge must say so while publishing fails.
  const pending = await outagePending();
  await nats().start();
  await posting;
  const result = await settle(rest, users[0], clients, ledger);
  report('nats-restart-before-first-event', result, { outbox_pending_during_outage: pending });
  assert.ok(pending > 0, `mop_outbox_pending was ${pending} while NATS was down with events waiting`);
  assertClean(assert, 'restart before the first event', result);
});

test('NATS killed after the first event and restarted', async () => {
  const ledger = newLedger();
  const posting = post(rest, users[2], conv.id, { count: 30, perSecond: 5, tag: 'after-first', ledger });
  await sleep(1500);
  await nats().kill9();
  await sleep(2500);
  await nats().start();
  await posting;
  const result = await settle(rest, users[0], clients, ledger);
  report('nats-restart-after-first-event', result);
  assertClean(assert, 'restart after the first event', result);
  assert.ok(result.total.realtime > 0, 'nothing delivered in realtime');
});

test('NATS loses its store: streams and buckets recreated, clients told, readiness back', async () => {
  const ledger = newLedger();
  const before = await stack.ws[0].metric('mop_ws_stream_continuity_breaks_total');
  const posting = post(rest, users[3], conv.id, { count: 30, perSecond: 5, tag: 'store-loss', ledger });
  await sleep(1500);
  await nats().loseStore();
  await posting;
  // Nobody restarts the services: both must become ready again by themselves.
  try {
    await Promise.all([stack.rest, ...stack.ws].map((s) => s.ready(30000)));
  } catch (e) {
    throw new Error(`${e.message}\n${logs(stack)}`);
  }
  const result = await settle(rest, users[0], clients, ledger);
  // After recovery new messages flow in realtime again (the issue saw 0 of 50).
  const afterLedger = newLedger();
  await post(rest, users[4], conv.id, { count: 10, perSecond: 10, tag: 'after-loss', ledger: afterLedger });
  const afterResult = await settle(rest, users[0], clients, afterLedger);
  const breaks = (await stack.ws[0].metric('mop_ws_stream_continuity_breaks_total')) - before;
  report('nats-store-loss', result, { continuity_breaks_ws_a: breaks });
  report('nats-store-loss-after-recovery', afterResult);
  assertClean(assert, 'store loss', result);
  assertClean(assert, 'after the store loss', afterResult);
  assert.ok(breaks >= 1, 'the continuity break was not counted');
  assert.equal(afterResult.total.realtime, afterResult.total.stored * clients.length,
    'messages after recovery not all delivered in realtime');
  await waitFor('outbox drained', async () => (await outagePending()) === 0, 15000, 250);
});
