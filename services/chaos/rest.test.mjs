// api-rest killed with SIGKILL during concurrent posts, on SQLite and on
// PostgreSQL, and started again on the same database. Posters retry every
// unanswered request with the same client_msg_id: each message must be stored
// exactly once, and every client must end with all of them, realtime or told.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import {
  Client, Rest, assertClean, group, newLedger, post, report, settle, sleep, startStack, stopStack,
} from './lib.mjs';

const pgURL = process.env.MOP_CHAOS_POSTGRES_URL || '';

for (const backend of ['sqlite', 'postgres']) {
  describe(`api-rest on ${backend}`, () => {
    test('killed with SIGKILL during concurrent posts, retried by client_msg_id', async () => {
      assert.ok(backend === 'sqlite' || pgURL, 'MOP_CHAOS_POSTGRES_URL is not set (make test-chaos passes TEST_POSTGRES_URL)');
      const stack = await startStack({ pgURL: backend === 'postgres' ? pgURL : '' });
      const clients = [];
      try {
        const rest = new Rest(stack);
        const { users, conv } = await group(rest, 10, `rest_${backend}`);
        clients.push(...users.map((u, i) => new Client(stack, rest, u, conv.id, i, { v2: i % 5 === 4 })));
        await Promise.all(clients.map((c) => c.start()));
        const ledger = newLedger();
        // Four senders at once, 5 messages a second each.
        const posting = Promise.all(users.slice(1, 5).map((u) => post(rest, u, conv.id, { count: 30, perSecond: 5, tag: `rest-${backend}`, ledger })));
        await sleep(2500);
        await stack.rest.kill9();
        await sleep(1000);
        await stack.rest.start();
        await posting;
        const result = await settle(rest, users[0], clients, ledger);
        report(`api-rest-kill9-${backend}`, result);
        assertClean(assert, `api-rest kill -9 on ${backend}`, result);
        assert.ok(result.total.retries > 0, 'no post was interrupted: the kill came too late');
      } finally {
        for (const c of clients) c.close();
        await stopStack(stack);
      }
    });
  });
}
