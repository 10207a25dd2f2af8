// A reader that stops reading: its TCP connection is paused while a burst of
// large messages is posted, then no more traffic comes. api-ws must close it
// within WS_SLOW_TIMEOUT of its output backing up, whether or not new events
// arrive; the other clients get everything; the paused client, once it reads
// again, sees the close, reconnects and fetches what it missed (told, not
// silent).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import {
  Client, Rest, assertClean, group, newLedger, report, settle, startStack, stopStack, waitFor,
} from './lib.mjs';

const SLOW_MS = 5000;
let stack;
let rest;
let users;
let conv;
let clients;

before(async () => {
  stack = await startStack({
    wsEnv: { WS_SLOW_TIMEOUT: `${SLOW_MS}ms`, WS_OUTPUT_HARD_LIMIT: String(256 << 20), WS_OUTPUT_TOTAL_LIMIT: String(1 << 30) },
  });
  rest = new Rest(stack);
  ({ users, conv } = await group(rest, 4, 'slow'));
  // Everyone on ws-a, so its metrics tell about the paused socket.
  clients = users.map((u, i) => new Client(stack, rest, u, conv.id, 2 * i));
  await Promise.all(clients.map((c) => c.start()));
});

after(async () => {
  for (const c of clients || []) c.close();
  if (stack) await stopStack(stack);
});

test('a paused reader is closed within WS_SLOW_TIMEOUT although traffic stops', async () => {
  const ws = stack.ws[0];
  const paused = clients[3];
  const kicksBefore = await ws.metric('mop_ws_slow_consumers_disconnected_total');
  paused.pauseReading();
  // Watch the server from the pause on: when it closes the socket, and the
  // largest output it held meanwhile (evidence that the pause holds).
  let closedAt = 0;
  let backlog = 0;
  let watching = true;
  const watcher = (async () => {
    while (watching && !closedAt) {
      backlog = Math.max(backlog, await ws.metric('mop_ws_output_pending_bytes'));
      if ((await ws.metric('mop_ws_slow_consumers_disconnected_total')) > kicksBefore) closedAt = Date.now();
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  const ledger = newLedger();
  const body = 'x'.repeat(16000);
  // ~10 MB for the paused socket, more than the kernel's socket buffers, sent
  // fast (12 senders) so that traffic stops well before WS_SLOW_TIMEOUT runs out.
  await Promise.all(Array.from({ length: 12 }, (_, k) => (async () => {
    const u = users[k % 3];
    for (let i = 0; i < 55; i++) {
      const cid = `slow-${k}-${i}`;
      ledger.posted.set(cid, Date.now());
      const m = await rest.call('POST', `/conversations/${conv.id}/messages`, u.access_token, { body, client_msg_id: cid });
      ledger.accepted.set(cid, m.id);
    }
  })()));
  const burstEnd = Date.now();
  try {
    await waitFor('the paused socket closed', () => closedAt > 0, SLOW_MS + 5000, 100);
  } catch { /* reported below */ }
  watching = false;
  await watcher;
  const ws0 = paused.socket.io.engine.transport.ws;
  (ws0._socket || ws0.socket || ws0).resume();
  const result = await settle(rest, users[0], clients, ledger, 30000);
  // Negative: closed while the burst was still being posted.
  const closedAfter = closedAt ? closedAt - burstEnd : NaN;
  report('paused-reader', result, { closed_ms_after_traffic_stopped: closedAfter, slow_timeout_ms: SLOW_MS, max_server_backlog_bytes: backlog });
  assertClean(assert, 'paused reader', result);
  assert.ok(backlog > 0, 'the paused reader\'s output never backed up on the server: the pause did not hold');
  assert.ok(closedAt > 0 && closedAfter <= SLOW_MS + 2000,
    `the paused socket was closed ${closedAt ? `${closedAfter} ms` : 'never'} after traffic stopped (WS_SLOW_TIMEOUT ${SLOW_MS} ms)`);
});
