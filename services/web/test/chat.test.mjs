// Browser tests of the web client against the real stack (api-rest, api-ws, NATS) that
// run.sh starts: two people in two browser contexts, desktop (www.) and phone (app.).
// The steps share one story and run in order.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  DESKTOP, PASSWORD, PHONE, bodies, contrast, conversation, cspViolations, eventually, launch, loginInUi, message, messages, newPage,
  registerInUi, renderedBox, rest, screenshot, sendInUi, serveDist, sessionOf, tokenKeys, uniqueName, waitForAttr,
  waitForCount, waitForText, webUrl,
} from './helpers.mjs';

describe('web client', () => {
  let server, browser;
  let alice, bob; // desktop pages
  const A = { username: uniqueName('alice'), name: 'Alice Liddell' };
  const B = { username: uniqueName('bob'), name: 'Bob Builder' };
  let carol; // AuthResult of a third person, who uses the API directly

  before(async () => {
    server = await serveDist();
    browser = await launch();
    alice = await newPage(browser, DESKTOP);
    bob = await newPage(browser, DESKTOP);
    carol = await rest('POST', '/auth/register', { body: { username: uniqueName('carol'), password: PASSWORD, display_name: 'Carol Chen' } });
  });

  after(async () => {
    await browser?.close();
    server?.close();
  });

  it('two people register and chat both ways, with read receipt and typing indicator', async () => {
    await alice.goto(webUrl);
    await alice.getByRole('button', { name: 'Sign in' }).waitFor();
    await screenshot(alice, 'desktop-login');
    await registerInUi(alice, A.username, A.name);
    await registerInUi(bob, B.username, B.name);

    // Alice finds Bob and starts a direct conversation.
    await alice.getByRole('button', { name: 'New conversation' }).click();
    await alice.getByLabel('Find people').fill(B.username.slice(0, 6));
    await alice.getByRole('option', { name: new RegExp(B.name) }).click();
    await screenshot(alice, 'desktop-new-conversation');
    await alice.getByRole('button', { name: 'Start chat' }).click();
    await waitForText(alice.getByRole('heading', { level: 2 }), B.name);

    await sendInUi(alice, 'Hi Bob!');
    await waitForText(message(alice, 'Hi Bob!').getByTestId('message-status'), 'Sent');

    // Bob sees the conversation with an unread count and the last message.
    const bobItem = conversation(bob, A.name);
    await waitForText(bobItem.getByTestId('unread-count'), '1');
    await bobItem.getByText('Hi Bob!').waitFor();
    await screenshot(bob, 'desktop-unread');

    // Bob opens it: the message is there and Alice sees it was read.
    await bobItem.click();
    await message(bob, 'Hi Bob!').waitFor();
    await waitForCount(bobItem.getByTestId('unread-count'), 0);
    await waitForText(message(alice, 'Hi Bob!').getByTestId('message-status'), 'Seen');

    // Bob types: Alice sees the indicator; it goes away when his message arrives.
    await bob.getByLabel('Message', { exact: true }).pressSequentially('Hello Al', { delay: 20 });
    await waitForText(alice.getByTestId('typing-indicator'), `${B.name} is typing…`);
    await screenshot(alice, 'desktop-typing');
    await bob.getByLabel('Message', { exact: true }).pressSequentially('ice!');
    await bob.getByLabel('Message', { exact: true }).press('Enter');
    await message(alice, 'Hello Alice!').waitFor();
    await waitForText(alice.getByTestId('typing-indicator'), '');
    await waitForText(message(bob, 'Hello Alice!').getByTestId('message-status'), 'Seen');

    // Presence: each sees the other online. Desktop shows list and conversation together.
    await waitForAttr(alice.getByTestId('presence-dot'), 'data-online', 'true');
    await waitForText(alice.getByTestId('conversation-subtitle'), 'online');
    assert.ok(await alice.getByRole('complementary', { name: 'Conversations' }).isVisible());
    assert.ok(await alice.getByRole('log', { name: 'Messages' }).isVisible());
    assert.equal(await alice.getByRole('button', { name: 'Back to conversations' }).isVisible(), false);
    assert.deepEqual(await bodies(alice), ['Hi Bob!', 'Hello Alice!']);
    assert.deepEqual(await bodies(bob), ['Hi Bob!', 'Hello Alice!']);
    await screenshot(alice, 'desktop-chat');
  });

  it('a person who was offline gets every missed message exactly once', async () => {
    const before = await messages(alice).count();
    await alice.context().setOffline(true);
    await waitForText(alice.getByTestId('connection-state'), 'Offline');
    await waitForAttr(alice.getByTestId('presence-dot'), 'data-online', 'false'); // unknown while offline

    for (const text of ['missed one', 'missed two', 'missed three']) {
      await sendInUi(bob, text);
      await waitForText(message(bob, text).getByTestId('message-status'), 'Sent');
    }
    // Nothing reached Alice while she was away.
    assert.equal(await message(alice, 'missed one').count(), 0);
    await screenshot(alice, 'desktop-offline');

    await alice.context().setOffline(false);
    await waitForText(alice.getByTestId('connection-state'), 'Connected');
    for (const text of ['missed one', 'missed two', 'missed three']) await message(alice, text).waitFor();
    await waitForAttr(alice.getByTestId('presence-dot'), 'data-online', 'true');
    // A live message after the recovery: by the time it shows, any duplicate would too.
    await sendInUi(bob, 'welcome back');
    await message(alice, 'welcome back').waitFor();
    assert.equal(await messages(alice).count(), before + 4);
    assert.deepEqual(await bodies(alice), await bodies(bob));
    for (const text of ['missed one', 'missed two', 'missed three']) assert.equal(await message(alice, text).count(), 1);
    await waitForText(message(bob, 'welcome back').getByTestId('message-status'), 'Seen');

    // Alice is subscribed to her direct partner's presence: Bob going away and coming
    // back is pushed to her while she stays connected.
    await bob.context().setOffline(true);
    await waitForAttr(alice.getByTestId('presence-dot'), 'data-online', 'false');
    await waitForText(alice.getByTestId('conversation-subtitle'), /^last seen /);
    await bob.context().setOffline(false);
    await waitForText(bob.getByTestId('connection-state'), 'Connected');
    await waitForAttr(alice.getByTestId('presence-dot'), 'data-online', 'true');
    await waitForText(alice.getByTestId('conversation-subtitle'), 'online');
  });

  it('sends over REST while the socket is down, and a retry after a lost answer stores one message', async () => {
    // Keep Bob's socket from coming back, then drop it.
    const ctx = bob.context();
    let blocked = true;
    await ctx.routeWebSocket(/\/socket\.io\//, (ws) => (blocked ? ws.close() : ws.connectToServer()));
    await ctx.route(/\/socket\.io\//, (route) => (blocked ? route.abort() : route.fallback()));
    await bob.evaluate(() => window.mop.realtime.dropTransport());
    await waitForText(bob.getByTestId('connection-state'), 'Reconnecting…');

    await sendInUi(bob, 'sent over REST');
    await waitForText(message(bob, 'sent over REST').getByTestId('message-status'), 'Sent');
    await message(alice, 'sent over REST').waitFor();

    // The server stores the message but its answer never reaches Bob.
    let lost = 0;
    await ctx.route(/\/conversations\/[^/]+\/messages$/, async (route) => {
      if (route.request().method() !== 'POST' || lost++ > 0) return route.fallback();
      await route.fetch(); // reaches api-rest
      await route.abort('connectionreset'); // ...the answer is lost
    });
    await sendInUi(bob, 'answer lost');
    const failed = message(bob, 'answer lost');
    await waitForText(failed.getByTestId('message-status'), 'Failed');
    await screenshot(bob, 'desktop-failed');
    await failed.getByRole('button', { name: 'Retry' }).click();
    await waitForText(message(bob, 'answer lost').getByTestId('message-status'), /^(Sent|Seen)$/);
    await message(alice, 'answer lost').waitFor();
    assert.equal(lost, 2);
    assert.equal(await message(alice, 'answer lost').count(), 1);
    assert.equal(await message(bob, 'answer lost').count(), 1);

    blocked = false;
    await bob.evaluate(() => window.mop.realtime.reconnectNow());
    await waitForText(bob.getByTestId('connection-state'), 'Connected');
    assert.deepEqual(await bodies(alice), await bodies(bob));
  });

  it('edits and deletes own messages, live for the other person', async () => {
    const mine = message(alice, 'Hi Bob!');
    await mine.hover();
    await mine.getByRole('button', { name: 'Edit message' }).click();
    const box = alice.getByLabel('Message', { exact: true });
    await box.fill('Hi Bob, edited');
    await box.press('Enter');
    const edited = message(bob, 'Hi Bob, edited');
    await edited.getByText('edited', { exact: true }).waitFor();

    // Only the sender gets the actions.
    assert.equal(await message(alice, 'welcome back').getByRole('button', { name: 'Delete message' }).count(), 0);
    const own = message(bob, 'welcome back');
    await own.hover();
    await own.getByRole('button', { name: 'Delete message' }).click();
    await waitForCount(message(alice, 'welcome back'), 0);
    await message(alice, 'Message deleted').waitFor();
  });

  it('starts a group conversation', async () => {
    await alice.getByRole('button', { name: 'New conversation' }).click();
    const find = alice.getByLabel('Find people');
    await find.fill(B.username);
    await alice.getByRole('option', { name: new RegExp(B.name) }).click();
    await find.fill(carol.user.username);
    await alice.getByRole('option', { name: /Carol Chen/ }).click();
    await alice.getByLabel('Group name').fill('Team');
    await alice.getByRole('button', { name: 'Create group' }).click();
    await waitForText(alice.getByRole('heading', { level: 2 }), 'Team');
    // The group shows how many are online (presence.count): Alice and Bob, not Carol.
    await waitForText(alice.getByTestId('conversation-subtitle'), '3 members, 2 online');

    // Bob hears of the group live and answers; Alice sees who wrote it.
    const group = conversation(bob, 'Team');
    await group.click();
    await sendInUi(bob, 'hello team');
    await message(alice, 'hello team').getByText(B.name, { exact: true }).waitFor();
    await waitForText(message(bob, 'hello team').getByTestId('message-status'), 'Seen by 1');
    await screenshot(alice, 'desktop-group');
    await conversation(alice, B.name).click();
    await conversation(bob, A.name).click();
    await message(alice, 'Hello Alice!').waitFor();
  });

  it('renders the single-pane app layout on a phone', async () => {
    const phone = await newPage(browser, PHONE);
    await loginInUi(phone, B.username);
    const list = phone.getByRole('complementary', { name: 'Conversations' });
    const log = phone.getByRole('log', { name: 'Messages' });
    assert.ok(await list.isVisible());
    assert.equal(await log.isVisible(), false);
    await screenshot(phone, 'phone-list');

    await conversation(phone, A.name).tap();
    await message(phone, 'Hello Alice!').waitFor();
    assert.equal(await list.isVisible(), false);
    assert.ok(await log.isVisible());
    const composer = phone.getByLabel('Message', { exact: true });
    const box = await composer.boundingBox();
    assert.ok(box.y + box.height <= 844 && box.width < 390, `composer inside the phone viewport: ${JSON.stringify(box)}`);
    // Sized while its pane was hidden, the box used to be drawn 22 px high, the placeholder cut.
    const drawn = await renderedBox(composer);
    assert.ok(drawn.height >= drawn.oneLine && !drawn.cut, `composer shows a whole line: ${JSON.stringify(drawn)}`);
    await sendInUi(phone, 'from my phone');
    await message(alice, 'from my phone').waitFor();
    // Own messages' time and status on the blue bubble: WCAG AA, 4.5:1 for small text.
    const own = message(phone, 'from my phone');
    await eventually(async () => assert.match(await own.getAttribute('data-status'), /^(sent|seen)$/));
    for (const part of [own.locator('time'), own.getByTestId('message-status')]) {
      const ratio = await contrast(part);
      assert.ok(ratio >= 4.5, `contrast of "${await part.textContent()}" on an own message: ${ratio.toFixed(2)}:1`);
    }
    const theirs = message(phone, 'Hello Alice!').locator('time');
    assert.ok(await contrast(theirs) >= 4.5, `contrast of a received message's time: ${(await contrast(theirs)).toFixed(2)}:1`);
    await screenshot(phone, 'phone-chat');

    await phone.getByRole('button', { name: 'Back to conversations' }).tap();
    await list.waitFor();
    assert.equal(await log.isVisible(), false);

    // Logging out ends the session: login page, no tokens kept.
    await phone.getByRole('button', { name: 'Log out' }).tap();
    await phone.getByRole('button', { name: 'Sign in' }).waitFor();
    await waitForText(phone.getByRole('alert').filter({ hasText: 'signed out' }), 'You have signed out.');
    assert.deepEqual(await tokenKeys(phone), []);
    await phone.context().close();
  });

  it('two windows of one browser can be two people', async () => {
    const context = await browser.newContext(DESKTOP);
    const [one, two] = [await context.newPage(), await context.newPage()];
    await loginInUi(one, A.username);
    await loginInUi(two, B.username);
    await one.reload();
    await waitForText(one.getByTestId('connection-state'), 'Connected');
    assert.equal((await sessionOf(one)).user.username, A.username);
    assert.equal((await sessionOf(two)).user.username, B.username);
    await two.getByRole('button', { name: 'Log out' }).click();
    await two.getByRole('button', { name: 'Sign in' }).waitFor();
    await conversation(one, B.name).waitFor(); // the other window is still signed in
    assert.equal((await sessionOf(one)).user.username, A.username);
    assert.equal((await tokenKeys(one)).length, 2); // its tab key and its pair
    await context.close();
  });

  it('scrolls back through history with before_seq', async () => {
    // Carol writes 70 messages to Alice.
    const conv = await rest('POST', '/conversations', { token: carol.access_token, body: { type: 'direct', member_ids: [(await sessionOf(alice)).user.id] } });
    for (let i = 1; i <= 70; i++) {
      await rest('POST', `/conversations/${conv.id}/messages`, { token: carol.access_token, body: { body: `history ${i}`, client_msg_id: `h-${i}` } });
    }
    const item = conversation(alice, 'Carol Chen');
    await waitForText(item.getByTestId('unread-count'), '70');
    await item.click();
    await message(alice, 'history 70').waitFor();
    assert.equal(await message(alice, 'history 1').count(), 0); // only the latest page
    await alice.getByRole('log', { name: 'Messages' }).evaluate((el) => { el.parentElement.scrollTop = 0; });
    await message(alice, 'history 1').waitFor();
    await alice.getByText('Start of the conversation').waitFor();
    const got = await bodies(alice);
    assert.deepEqual(got, Array.from({ length: 70 }, (_, i) => `history ${i + 1}`));
  });

  it('keeps the socket across access-token refreshes', async () => {
    // ACCESS_TOKEN_TTL is short in this stack: the page must refresh on REST and tell the
    // socket (auth.refresh) before the first token runs out, without reconnecting.
    const start = await alice.evaluate(() => ({ exp: window.mop.session.expiresAt, connects: window.mop.realtime.connects }));
    await alice.waitForFunction((exp) => window.mop.session.expiresAt > exp, start.exp, { timeout: 120_000 });
    // Past the first token's expiry (api-ws would have closed a socket still on it).
    await alice.waitForFunction((exp) => Date.now() > exp + 3000, start.exp, { timeout: 120_000, polling: 500 });
    await sendInUi(alice, 'still here');
    await waitForText(message(alice, 'still here').getByTestId('message-status'), /^(Sent|Seen)$/);
    assert.equal(await alice.evaluate(() => window.mop.realtime.connects), start.connects);
    await waitForText(alice.getByTestId('connection-state'), 'Connected');
  });

  it('a revoked session lands on the login page with a message', async () => {
    const { access_token: token } = await sessionOf(bob);
    await rest('POST', '/auth/logout', { token }); // as if from elsewhere
    await bob.getByRole('button', { name: 'Sign in' }).waitFor();
    await bob.getByRole('alert').filter({ hasText: 'Your session has ended' }).waitFor();
    assert.equal(await sessionOf(bob), null);
    await screenshot(bob, 'desktop-revoked');

    // A stolen refresh token: someone else spends it first, then the page's own refresh
    // presents the spent token, which revokes the session (refresh_reused).
    const page = await newPage(browser, DESKTOP);
    await loginInUi(page, carol.user.username);
    const { refresh_token: stolen } = await sessionOf(page);
    await rest('POST', '/auth/refresh', { body: { refresh_token: stolen } });
    await page.evaluate(() => { window.mop.session.refresh().catch(() => {}); }); // not awaited: the page reloads
    await page.getByRole('button', { name: 'Sign in' }).waitFor();
    await page.getByRole('alert').filter({ hasText: 'used twice' }).waitFor();
    assert.equal(await sessionOf(page), null);
    await page.context().close();
  });

  it('ran without Content-Security-Policy violations', () => {
    assert.deepEqual(cspViolations, []);
  });
});
