// Shared pieces of the browser tests: the static server for dist/, Debian's Chromium via
// playwright-core, REST calls made by the test itself, and small auto-waiting assertions
// (playwright-core has no `expect`: these poll a condition until a deadline).

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createReadStream, mkdirSync, statSync } from 'node:fs';
import http from 'node:http';
import { dirname, extname, join, normalize, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { deflateSync } from 'node:zlib';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));

function need(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set (run the suite with services/web/test/run.sh)`);
  return v;
}

export const env = {
  api: need('MOP_WEB_TEST_API'), // http://127.0.0.1:<api-rest port>
  ws: need('MOP_WEB_TEST_WS'), // http://127.0.0.1:<api-ws port>
  webPort: Number(need('MOP_WEB_TEST_PORT')), // the origin api-rest and api-ws allow
  dist: process.env.MOP_WEB_TEST_DIST ?? resolve(here, '..', 'dist'),
  artifacts: process.env.MOP_WEB_TEST_ARTIFACTS ?? resolve(here, 'artifacts'),
  chromium: process.env.CHROMIUM ?? '/usr/bin/chromium',
};
export const webUrl = `http://127.0.0.1:${env.webPort}/`;
export const PASSWORD = 'correct horse battery';
export const TIMEOUT = 15_000;

const TYPES = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8', '.map': 'application/json', '.png': 'image/png', '.svg': 'image/svg+xml',
};

// serveDist serves the built client like `make run` and nginx do: files from dist/, and
// /config.js answered by the server itself (pointing at the test stack's ports).
// Pages are served with a Content-Security-Policy as strict as the edge's (stricter: no
// inline styles either); violations are collected in cspViolations.
export function serveDist() {
  const configJs = `window.MOP_CONFIG = ${JSON.stringify({ apiBase: env.api, wsBase: env.ws, testHooks: true })};\n`;
  const csp = [
    "default-src 'self'", `connect-src 'self' ${env.api} ${env.ws} ${env.ws.replace(/^http/, 'ws')}`,
    `img-src 'self' data: ${env.api}`, "style-src 'self'", "object-src 'none'", "base-uri 'self'",
    "frame-ancestors 'none'", "form-action 'self'",
  ].join('; ');
  const server = http.createServer((req, res) => {
    res.setHeader('Content-Security-Policy', csp);
    const path = new URL(req.url, 'http://x').pathname;
    if (path === '/config.js') {
      res.writeHead(200, { 'Content-Type': TYPES['.js'], 'Cache-Control': 'no-store' });
      return res.end(configJs);
    }
    const file = normalize(join(env.dist, path === '/' ? 'index.html' : decodeURIComponent(path)));
    if (!file.startsWith(env.dist) || !isFile(file)) {
      res.writeHead(404, { 'Content-Type': 'text/plain' });
      return res.end('not found');
    }
    res.writeHead(200, { 'Content-Type': TYPES[extname(file)] ?? 'application/octet-stream' });
    createReadStream(file).pipe(res);
  });
  return new Promise((ok, fail) => {
    server.once('error', fail);
    server.listen(env.webPort, '127.0.0.1', () => ok(server));
  });
}

function isFile(p) {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
}

export const cspViolations = [];

export function launch() {
  return chromium.launch({
    executablePath: env.chromium,
    headless: true,
    // Without the background-networking flags Chromium's own connections get refused here.
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

export const DESKTOP = { viewport: { width: 1280, height: 800 } };
export const PHONE = { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true };

// newPage opens a page in a fresh browser context (its own storage: another person).
export async function newPage(browser, options = DESKTOP) {
  const context = await browser.newContext(options);
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  page.on('pageerror', (err) => console.error(`[page error] ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    console.error(`[console] ${msg.text()}`);
    if (/Content.Security.Policy/i.test(msg.text())) cspViolations.push(msg.text());
  });
  return page;
}

export function uniqueName(prefix) {
  return `${prefix}_${randomBytes(3).toString('hex')}`;
}

// ---- UI steps -------------------------------------------------------------------------

export async function registerInUi(page, username, displayName) {
  await page.goto(webUrl);
  await page.getByRole('button', { name: 'Create account' }).click();
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Display name').fill(displayName);
  await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
  await page.getByRole('button', { name: 'Create account' }).click();
  await waitForText(page.getByTestId('connection-state'), 'Connected');
}

export async function loginInUi(page, username) {
  await page.goto(webUrl);
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await waitForText(page.getByTestId('connection-state'), 'Connected');
}

export async function sendInUi(page, text) {
  const box = page.getByLabel('Message', { exact: true });
  await box.fill(text);
  await box.press('Enter');
}

// conversation: the list item of the conversation titled exactly `title`.
export function conversation(page, title) {
  return page.getByTestId('conversation-item').filter({ has: page.getByText(title, { exact: true }) });
}

// messages: the message items of the open conversation; message(page, text): the ones
// whose body is exactly `text`.
export function messages(page) {
  return page.getByRole('log', { name: 'Messages' }).getByTestId('message');
}

export function message(page, text) {
  return messages(page).filter({ has: page.getByTestId('message-body').getByText(text, { exact: true }) });
}

export async function bodies(page) {
  return messages(page).getByTestId('message-body').allTextContents();
}

export async function screenshot(page, name) {
  mkdirSync(env.artifacts, { recursive: true });
  const path = join(env.artifacts, `${name}.png`);
  await page.screenshot({ path });
  console.log(`screenshot: ${path}`);
  return path;
}

// ---- waiting assertions -----------------------------------------------------------------

// eventually retries an assertion until it passes or the deadline passes (then rethrows).
export async function eventually(fn, { timeout = TIMEOUT, interval = 50 } = {}) {
  const deadline = Date.now() + timeout;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (Date.now() > deadline) throw err;
    }
    await new Promise((r) => setTimeout(r, interval));
  }
}

// waitForText: the element's text is `expected` (a string), or matches it (a RegExp).
export async function waitForText(locator, expected, timeout = TIMEOUT) {
  await eventually(async () => {
    const text = (await locator.textContent({ timeout }))?.trim();
    if (expected instanceof RegExp) assert.match(text, expected);
    else assert.equal(text, expected);
  }, { timeout });
}

export async function waitForCount(locator, n, timeout = TIMEOUT) {
  await eventually(async () => assert.equal(await locator.count(), n), { timeout });
}

export async function waitForAttr(locator, name, value, timeout = TIMEOUT) {
  await eventually(async () => assert.equal(await locator.getAttribute(name), value), { timeout });
}

// ---- the test's own REST client ------------------------------------------------------------

export async function rest(method, path, { token, body } = {}) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (token) headers.Authorization = `Bearer ${token}`;
  const res = await fetch(`${env.api}/api/v1${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  const data = text ? JSON.parse(text) : null;
  if (!res.ok) throw Object.assign(new Error(`${method} ${path}: ${res.status} ${text}`), { status: res.status, data });
  return data;
}

// sessionOf reads the tokens of the page's session (see src/js/session.js): the tab's
// session id in sessionStorage, the pair in localStorage; null when signed out.
export function sessionOf(page) {
  return page.evaluate(() => {
    const sid = JSON.parse(sessionStorage.getItem('mop.tab'))?.sid;
    return sid ? JSON.parse(localStorage.getItem(`mop.session.${sid}`)) : null;
  });
}

// tokenKeys lists the storage keys the client keeps sessions under (none when signed out).
export function tokenKeys(page) {
  return page.evaluate(() => [
    ...Object.keys(sessionStorage).filter((k) => k === 'mop.tab'),
    ...Object.keys(localStorage).filter((k) => k.startsWith('mop.session.')),
  ]);
}

// renderedBox measures a text box as drawn: its height, and the least height that shows one
// line of its text with its padding and borders (from its computed style), and whether its
// content (placeholder included) is cut.
export function renderedBox(locator) {
  return locator.evaluate((el) => {
    const cs = getComputedStyle(el);
    const px = (v) => parseFloat(v) || 0;
    const line = px(cs.lineHeight) || px(cs.fontSize) * 1.2;
    return {
      height: el.getBoundingClientRect().height,
      oneLine: line + px(cs.paddingTop) + px(cs.paddingBottom) + px(cs.borderTopWidth) + px(cs.borderBottomWidth),
      cut: el.scrollHeight > el.clientHeight,
    };
  });
}

// contrast gives the WCAG 2 contrast ratio of a text element against the opaque background
// behind it, with the opacity of the element and its ancestors applied to its colour.
export function contrast(locator) {
  return locator.evaluate((el) => {
    const rgba = (c) => {
      const [r, g, b, a = 1] = c.match(/[\d.]+/g).map(Number);
      return { r, g, b, a };
    };
    let fg = rgba(getComputedStyle(el).color);
    let alpha = fg.a;
    let bg = null;
    for (let n = el; n && !bg; n = n.parentElement) {
      const cs = getComputedStyle(n);
      alpha *= Number(cs.opacity);
      const b = rgba(cs.backgroundColor);
      if (b.a === 1) bg = b;
    }
    bg ??= { r: 255, g: 255, b: 255 };
    const mix = (k) => fg[k] * alpha + bg[k] * (1 - alpha);
    const lum = (c) => {
      const lin = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
      return 0.2126 * lin(c.r) + 0.7152 * lin(c.g) + 0.0722 * lin(c.b);
    };
    const [hi, lo] = [lum({ r: mix('r'), g: mix('g'), b: mix('b') }), lum(bg)].sort((x, y) => y - x);
    return (hi + 0.05) / (lo + 0.05);
  });
}

// png is a w×h RGB PNG, striped so the thumbnail has something to show.
export function png(w, h) {
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
