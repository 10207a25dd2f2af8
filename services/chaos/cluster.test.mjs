// A 3-node JetStream cluster with the stream at R3 (NATS_REPLICAS=3): the
// stream's leader is killed with SIGKILL before the api-ws consumers
// delivered their first event, while messages are posted, and restarted
// later. Another node takes over; nothing may be lost or duplicated, and the
// failover time (kill → first realtime delivery of a message posted after
// the kill) is reported for docs/deploy.md.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import {
  Client, Rest, assertClean, group, logs, newLedger, post, report, restartWs, settle, sleep, startStack, stopStack, streamLeader, waitFor,
} from './lib.mjs';

const MEMBERS = 10;
let stack;
let rest;
let users;
let conv;
let clients;

before(async () => {
  stack = await startStack({ cluster: true });
  rest = new Rest(stack);
  ({ users, conv } = await group(rest, MEMBERS, 'cluster'));
  clients = users.map((u, i) => new Client(stack, rest, u, conv.id, i, { v2: i % 5 === 4 }));
  await Promise.all(clients.map((c) => c.start()));
});

after(async () => {
  for (const c of clients || []) c.close();
  if (stack) await stopStack(stack);
});

test('R3 stream leader killed before the first event', async () => {
  let leader;
  await waitFor('a stream leader', async () => (leader = await streamLeader(stack)) !== null, 20000, 200);
  // Fresh api-ws instances whose consumers have delivered nothing yet.
  await restartWs(stack, clients);
  await sleep(500);
  const ledger = newLedger();
  const killedAt = Date.now();
  await leader.kill9();
  const posting = post(rest, users[1], conv.id, { count: 50, perSecond: 5, tag: 'leader-kill', ledger });
  let failoverMs = NaN;
  await sleep(6000);
  await leader.start();
  await posting;
  const result = await settle(rest, users[0], clients, ledger);
  // Failover: from the kill to the first realtime delivery of any message
  // (all of them were posted after the kill).
  const firsts = clients.flatMap((c) => [...(c.firstRealtime?.values() || [])]);
  if (firsts.length) failoverMs = Math.min(...firsts) - killedAt;
  const newLeader = await streamLeader(stack);
  report('cluster-r3-leader-kill', result, { killed: leader.name, new_leader: newLeader?.name, failover_ms: failoverMs });
  try {
    assertClean(assert, 'leader kill', result);
  } catch (e) {
    e.message += `\n${logs(stack, 15)}`;
    throw e;
  }
  assert.equal(result.total.realtime, result.total.stored * clients.length, 'not everything delivered in realtime after failover');
});
