// Browser tests of the account dialog against the real stack run.sh starts: one person on
// two devices (two browser contexts) signs the other out, renames, sets and removes a
// picture, changes the password (the other device is signed out, this one stays) and
// deletes the account.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  DESKTOP, PASSWORD, PHONE, cspViolations, conversation, eventually, launch, loginInUi, message, newPage, png,
  registerInUi, rest, serveDist, uniqueName, waitForCount, waitForText,
} from './helpers.mjs';

describe('account dialog', () => {
  let server, browser, desk, phone;
  const A = { username: uniqueName('dora'), name: 'Dora Device' };

  before(async () => {
    server = await serveDist();
    browser = await launch();
    desk = await newPage(browser, DESKTOP);
    phone = await newPage(browser, PHONE);
  });

  after(async () => {
    await browser?.close();
    server?.close();
  });

  const signedOut = async (page) => {
    await page.getByRole('button', { name: 'Sign in' }).waitFor();
    assert.equal(await page.locator('#chat-screen').isVisible(), false);
  };

  it('lists the devices and signs the other one out', async () => {
    await registerInUi(desk, A.username, A.name);
    await loginInUi(phone, A.username);
    await desk.getByRole('button', { name: 'Account' }).click();
    const sessions = desk.getByTestId('session');
    await waitForCount(sessions, 2);
    await waitForCount(sessions.filter({ hasText: 'this device' }), 1);
    // The phone's entry names its browser (its User-Agent) and can be signed out.
    await desk.getByRole('button', { name: /^Sign out / }).click();
    await waitForText(desk.locator('#account-status'), 'The device was signed out.');
    await waitForCount(sessions, 1);
    await signedOut(phone);
    await waitForText(phone.locator('#login-notice'), /session has ended/);
  });

  it('renames the account: the sidebar and a reload show the new name (Eve sees it below)', async () => {
    const form = desk.locator('#profile-form');
    assert.equal(await form.getByLabel('Name shown to others').inputValue(), A.name);
    await form.getByLabel('Name shown to others').fill('   ');
    await form.getByRole('button', { name: 'Save name' }).click();
    await waitForText(desk.locator('#account-error'), /display name: /);
    A.name = 'Dora D.';
    await form.getByLabel('Name shown to others').fill(A.name);
    await form.getByRole('button', { name: 'Save name' }).click();
    await waitForText(desk.locator('#account-status'), 'Name saved.');
    await waitForText(desk.locator('#me-name'), A.name);
    await desk.reload();
    await waitForText(desk.locator('#me-name'), A.name);
    await desk.getByRole('button', { name: 'Account' }).click();
  });

  // loaded waits for an <img> that has actually decoded (a broken link has naturalWidth 0).
  const loaded = (img) => eventually(async () => {
    const n = await img.evaluate((el) => (el.complete ? el.naturalWidth : 0));
    return n > 0 ? n : null;
  });

  it('sets a picture (refusals show the reason), shows it in the dialog and the sidebar, removes it', async () => {
    const dialog = desk.locator('#account-dialog');
    const error = desk.locator('#account-error');
    // Not an image: uploaded, then refused as an avatar; an image in name only: refused at upload.
    await desk.locator('#avatar-file').setInputFiles({ name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('hello\n') });
    await waitForText(error, /avatar id: must be one of your image uploads/);
    await desk.locator('#avatar-file').setInputFiles({ name: 'fake.png', mimeType: 'image/png', buffer: Buffer.from('<html>not a picture</html>') });
    await waitForText(error, /type of file is not accepted/);
    assert.equal(await dialog.getByTestId('avatar-image').count(), 0);
    assert.equal(await dialog.getByRole('button', { name: 'Remove picture' }).isVisible(), false);

    await desk.locator('#avatar-file').setInputFiles({ name: 'me.png', mimeType: 'image/png', buffer: png(200, 200) });
    await waitForText(desk.locator('#account-status'), 'Picture saved.');
    assert.equal(await error.isVisible(), false);
    const shown = dialog.getByTestId('avatar-image');
    assert.ok(await loaded(shown) > 0);
    assert.match(await shown.getAttribute('src'), /\/static\/[0-9A-Z]+\/thumb\?exp=\d+&sig=/);
    assert.ok(await loaded(desk.locator('#me-avatar').getByTestId('avatar-image')) > 0);

    // Stored on the server: a reload (and another device) shows it too, also on a phone.
    await desk.reload();
    assert.ok(await loaded(desk.locator('#me-avatar').getByTestId('avatar-image')) > 0);
    await loginInUi(phone, A.username);
    await phone.getByRole('button', { name: 'Account' }).click();
    assert.ok(await loaded(phone.locator('#account-dialog').getByTestId('avatar-image')) > 0);
    for (const name of ['Choose picture', 'Remove picture']) {
      const box = await phone.getByRole('button', { name }).boundingBox();
      assert.ok(box.x >= 0 && box.x + box.width <= PHONE.viewport.width, `${name} off screen: ${JSON.stringify(box)}`);
    }
    await phone.getByRole('button', { name: 'Close' }).click();
    await phone.getByRole('button', { name: 'Log out' }).click();
    await signedOut(phone);

    await desk.getByRole('button', { name: 'Account' }).click();
    await dialog.getByRole('button', { name: 'Remove picture' }).click();
    await waitForText(desk.locator('#account-status'), 'Picture removed.');
    await waitForCount(dialog.getByTestId('avatar-image'), 0);
    await waitForCount(desk.locator('#me-avatar').getByTestId('avatar-image'), 0);
    assert.equal(await dialog.getByRole('button', { name: 'Remove picture' }).isVisible(), false);
    const me = await rest('GET', '/users/me', { token: (await rest('POST', '/auth/login', { body: { username: A.username, password: PASSWORD } })).access_token });
    assert.equal(me.avatar_id, undefined);
    assert.equal(cspViolations.length, 0, cspViolations.join('\n'));
  });

  it('changes the password: a wrong current one is refused, the other device is signed out', async () => {
    await loginInUi(phone, A.username);
    const form = desk.locator('#password-form');
    await form.getByLabel('Current password').fill('not the password');
    await form.getByLabel('New password').fill('a brand new password');
    await form.getByRole('button', { name: 'Change password' }).click();
    await waitForText(desk.locator('#account-error'), 'The current password is wrong.');

    await form.getByLabel('Current password').fill(PASSWORD);
    await form.getByLabel('New password').fill('a brand new password');
    await form.getByRole('button', { name: 'Change password' }).click();
    await waitForText(desk.locator('#account-status'), 'Password changed. Every other device was signed out.');
    await signedOut(phone);
    await waitForText(desk.getByTestId('connection-state'), 'Connected');
    await rest('POST', '/auth/login', { body: { username: A.username, password: 'a brand new password' } });
  });

  it('deletes the account after the password, and the name is free again', async () => {
    // Eve has a direct conversation with Dora.
    const eve = await newPage(browser, DESKTOP);
    const E = uniqueName('eve');
    await registerInUi(eve, E, 'Eve Else');
    const eveAuth = await rest('POST', '/auth/login', { body: { username: E, password: PASSWORD } });
    const { users } = await rest('GET', `/users?q=${A.username}`, { token: eveAuth.access_token });
    const conv = await rest('POST', '/conversations', { token: eveAuth.access_token, body: { type: 'direct', member_ids: [users[0].id] } });
    await rest('POST', `/conversations/${conv.id}/messages`, { token: eveAuth.access_token, body: { body: 'Hi Dora' } });
    await conversation(eve, A.name).waitFor();

    const form = desk.locator('#delete-form');
    await form.getByLabel('Password to confirm').fill('a brand new password');
    await form.getByRole('button', { name: 'Delete my account' }).click();
    await signedOut(desk);
    await waitForText(desk.locator('#login-notice'), /deleted|session has ended/);
    const err = await rest('POST', '/auth/login', { body: { username: A.username, password: 'a brand new password' } })
      .then(() => assert.fail('signed in to a deleted account'), (e) => e);
    assert.equal(err.status, 401);
    await rest('POST', '/auth/register', { body: { username: A.username, password: PASSWORD } });

    // Eve still reads the conversation, now with "Deleted user", and cannot write to it.
    await eve.reload();
    await conversation(eve, 'Deleted user').click();
    await waitForText(eve.getByTestId('conversation-subtitle'), 'Account deleted');
    await message(eve, 'Hi Dora').waitFor();
    assert.equal(await eve.getByLabel('Message', { exact: true }).isDisabled(), true);
    assert.equal(await eve.getByRole('button', { name: 'Send' }).isDisabled(), true);
  });
});
