// Browser tests of attachments against the real stack run.sh starts: Alice sends a photo and a
// document, Bob sees the image preview (a thumbnail loaded from the API's signed /static/
// link) and the file chip, and a file the server refuses shows the server's reason.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  DESKTOP, conversation, cspViolations, eventually, launch, messages, newPage, png, registerInUi, serveDist,
  uniqueName, waitForCount, waitForText,
} from './helpers.mjs';

describe('attachments', () => {
  let server, browser, alice, bob;
  const A = { username: uniqueName('ana'), name: 'Ana Attach' };
  const B = { username: uniqueName('ben'), name: 'Ben Browse' };

  before(async () => {
    server = await serveDist();
    browser = await launch();
    alice = await newPage(browser, DESKTOP);
    bob = await newPage(browser, DESKTOP);
  });

  after(async () => {
    await browser?.close();
    server?.close();
  });

  it('sends a photo and a document; the other side sees the preview and the file chip', async () => {
    await registerInUi(alice, A.username, A.name);
    await registerInUi(bob, B.username, B.name);
    await alice.getByRole('button', { name: 'New conversation' }).click();
    await alice.getByLabel('Find people').fill(B.username);
    await alice.getByRole('option', { name: new RegExp(B.name) }).click();
    await alice.getByRole('button', { name: 'Start chat' }).click();
    await waitForText(alice.getByRole('heading', { level: 2 }), B.name);

    // Two files chosen, one removed again, then sent without any text.
    await alice.locator('#composer-file').setInputFiles([
      { name: 'stripes.png', mimeType: 'image/png', buffer: png(600, 300) },
      { name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('minutes of the meeting\n') },
      { name: 'oops.txt', mimeType: 'text/plain', buffer: Buffer.from('not this one\n') },
    ]);
    await waitForCount(alice.getByTestId('composer-file'), 3);
    await alice.getByRole('button', { name: 'Remove oops.txt' }).click();
    await waitForCount(alice.getByTestId('composer-file'), 2);
    await alice.getByRole('button', { name: 'Send' }).click();
    await waitForCount(alice.getByTestId('composer-file'), 0);

    const sent = messages(alice).filter({ has: alice.getByTestId('attachment-image') });
    await waitForText(sent.getByTestId('message-status'), /Sent|Seen/);

    await conversation(bob, A.name).click();
    const got = messages(bob).filter({ has: bob.getByTestId('attachment-image') });
    await got.waitFor();
    const img = got.getByTestId('attachment-image');
    // The preview is the server's thumbnail: loaded, and at most 320 px wide.
    const natural = await eventually(async () => {
      const n = await img.evaluate((el) => (el.complete ? el.naturalWidth : 0));
      return n > 0 ? n : null;
    });
    assert.equal(natural, 320);
    assert.match(await img.getAttribute('src'), /\/static\/[0-9A-Z]+\/thumb\?exp=\d+&sig=/);
    assert.equal(await img.getAttribute('alt'), 'stripes.png');
    await waitForText(got.getByTestId('attachment-file'), /notes\.txt\s*23 B/);

    // The chip downloads the document through a fresh signed link.
    const download = bob.waitForEvent('download');
    await got.getByTestId('attachment-file').click();
    const file = await download;
    assert.equal(file.suggestedFilename(), 'notes.txt');
    assert.equal(cspViolations.length, 0, cspViolations.join('\n'));
  });

  it('a refused file shows the reason and can be discarded', async () => {
    await alice.locator('#composer-file').setInputFiles([
      { name: 'page.png', mimeType: 'image/png', buffer: Buffer.from('<!DOCTYPE html><script>alert(1)</script>') },
    ]);
    await alice.getByLabel('Message', { exact: true }).fill('look at this');
    await alice.getByLabel('Message', { exact: true }).press('Enter');
    const failed = messages(alice).filter({ hasText: 'look at this' });
    await waitForText(failed.getByTestId('message-status'), 'Failed');
    await waitForText(failed.locator('.error'), /type of file is not accepted/);
    await failed.getByRole('button', { name: 'Discard' }).click();
    await waitForCount(failed, 0);
  });
});
