// Browser tests of attachments against the real stack run.sh starts: Alice sends a photo and a
// document, Bob sees the image preview (a thumbnail loaded from the API's signed /static/
// link) and the file chip, and a file the server refuses shows the server's reason.

import assert from 'node:assert/strict';
import { deflateSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import {
  DESKTOP, conversation, cspViolations, eventually, launch, messages, newPage, registerInUi, serveDist, uniqueName,
  waitForCount, waitForText,
} from './helpers.mjs';

// png is a w×h RGB PNG, striped so the thumbnail has something to show.
function png(w, h) {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (buf) => {
    let c = 0xffffffff;
    for (const b of buf) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type), data]);
    const sum = Buffer.alloc(4);
    sum.writeUInt32BE(crc(td));
    return Buffer.concat([len, td, sum]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  const rows = [];
  for (let y = 0; y < h; y++) {
    const row = Buffer.alloc(1 + 3 * w);
    for (let x = 0; x < w; x++) row.set((x >> 4) % 2 ? [30, 120, 200] : [250, 200, 40], 1 + 3 * x);
    rows.push(row);
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr), chunk('IDAT', deflateSync(Buffer.concat(rows))), chunk('IEND', Buffer.alloc(0)),
  ]);
}

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
