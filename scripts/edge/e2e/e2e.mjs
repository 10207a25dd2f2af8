// End-to-end driver for scripts/edge/test.sh (phase 2): the real api-rest and api-ws behind
// the test nginx, over TLS with the Pebble-issued certificates (NODE_EXTRA_CA_CERTS = Pebble's
// root). Connects to 127.0.0.1 while using the real host names for SNI and Host, like
// `curl --resolve`. Prints "ok   - ..." / "FAIL - ..." lines; exits 1 on any failure.
//
// Environment: MOP_E2E_DOMAIN, MOP_E2E_HTTPS_PORT, MOP_E2E_ACCESS_LOG (nginx access log),
// MOP_E2E_WS_UPSTREAMS (host:port,host:port), MOP_E2E_RESTART_CMD (replaces one api-ws
// instance: stop it, start a new binary on the same port, wait for /healthz),
// MOP_E2E_SECRETS_FILE (written at the end: every access token, refresh token and Engine.IO
// sid the clients used, one a line, for the log scan of test.sh).
import https from 'node:https';
import fs from 'node:fs';
import { spawn } from 'node:child_process';
import { io } from 'socket.io-client';

const domain = process.env.MOP_E2E_DOMAIN || 'chat5202ol.xyz';
const port = Number(process.env.MOP_E2E_HTTPS_PORT || 443);
const accessLog = process.env.MOP_E2E_ACCESS_LOG;
const wsUpstreams = (process.env.MOP_E2E_WS_UPSTREAMS || '').split(',').filter(Boolean);
const restartCmd = process.env.MOP_E2E_RESTART_CMD;
const secretsFile = process.env.MOP_E2E_SECRETS_FILE;
// Credentials seen by this run; none of them may appear in any log.
const secrets = new Set();
const remember = (...vs) => { for (const v of vs) if (typeof v === 'string' && v.length >= 16) secrets.add(v); };
const apiHost = `api.${domain}`;
const wsHost = `ws-api.${domain}`;
const wwwOrigin = `https://www.${domain}`;
const foreignOrigin = 'https://evil.example';
const suffix = port === 443 ? '' : `:${port}`;

let failures = 0;
let passes = 0;
const ok = (cond, what, extra) => {
  if (cond) { passes++; console.log(`ok   - ${what}`); }
  else { failures++; console.log(`FAIL - ${what}${extra !== undefined ? ` :: ${typeof extra === 'string' ? extra : JSON.stringify(extra)}` : ''}`); }
  return cond;
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function until(what, fn, timeoutMs = 15000, everyMs = 50) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timeout waiting for ${what}`);
    await sleep(everyMs);
  }
}

// Every connection goes to 127.0.0.1; TLS SNI and Host stay the real names.
const lookup = (hostname, opts, cb) => {
  if (typeof opts === 'function') { cb = opts; opts = {}; }
  if (opts && opts.all) cb(null, [{ address: '127.0.0.1', family: 4 }]);
  else cb(null, '127.0.0.1', 4);
};
const agent = new https.Agent({ keepAlive: true, lookup });

function request(method, host, path, { body, raw, token, headers = {} } = {}) {
  return new Promise((resolve, reject) => {
    const h = { accept: 'application/json', ...headers };
    let data;
    if (body !== undefined) { data = Buffer.from(JSON.stringify(body)); h['content-type'] = 'application/json'; h['content-length'] = data.length; }
    if (raw !== undefined) { data = Buffer.from(raw); h['content-length'] = data.length; }
    if (token) h.authorization = `Bearer ${token}`;
    const req = https.request({ host, port, path, method, headers: h, agent, servername: host, timeout: 15000 }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        let json;
        try { json = text ? JSON.parse(text) : undefined; } catch { json = undefined; }
        resolve({ status: res.statusCode, headers: res.headers, text, json });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${host}${path}: timeout`)));
    req.on('error', reject);
    if (data) req.write(data);
    req.end();
  });
}
const api = (method, path, opts) => request(method, apiHost, `/api/v1${path}`, opts);

function connect(token, { transports = ['websocket'], cookie, name } = {}) {
  const extraHeaders = cookie ? { cookie } : undefined;
  const s = io(`https://${wsHost}${suffix}`, {
    path: '/socket.io/',
    transports,
    upgrade: false,
    auth: { token },
    agent,
    extraHeaders,
    reconnectionDelay: 200,
    reconnectionDelayMax: 1000,
    timeout: 10000,
  });
  s.mopName = name;
  s.received = new Map(); // seq -> message
  s.disconnects = 0;
  s.connects = 0;
  s.sids = new Set();
  s.on('message.created', (m) => { if (m && m.seq !== undefined) s.received.set(Number(m.seq), m); });
  // A server that shuts down cleanly disconnects its sockets ("io server disconnect"), which
  // socket.io-client does not retry by itself: reconnect as a real client does.
  s.on('disconnect', (reason) => {
    s.disconnects++;
    if (reason === 'io server disconnect' && !s.closing) setTimeout(() => s.connect(), 200);
  });
  const close = s.close.bind(s);
  s.close = () => { s.closing = true; return close(); };
  s.on('connect', () => { s.connects++; if (s.io.engine) { s.sids.add(s.io.engine.id); remember(s.io.engine.id); } });
  return s;
}
const connected = (s, what) => until(`${what} connected`, () => s.connected, 15000);

function accessLogLines() {
  if (!accessLog) return [];
  return fs.readFileSync(accessLog, 'utf8').split('\n').filter((l) => l.includes(`${wsHost} `));
}
// The access log keeps only the first 6 characters of a sid (sidp=): sessions are told apart
// by that prefix.
function upstreamsBySid(sids) {
  const by = new Map();
  const prefixes = new Set([...sids].map((s) => s.slice(0, 6)));
  if (prefixes.size !== sids.size) throw new Error('two Engine.IO sids share their 6-character prefix');
  sids = prefixes;
  for (const line of accessLogLines()) {
    const sid = /\bsidp=(\S+)/.exec(line)?.[1];
    const up = /\bupstream=(\S+)/.exec(line)?.[1];
    if (!sid || sid === '-' || !sids.has(sid) || !up || up === '-') continue;
    if (!by.has(sid)) by.set(sid, new Set());
    by.get(sid).add(up.replace(/,$/, ''));
  }
  return by;
}

async function main() {
  const tag = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
  const password = 'correct-horse-battery-staple-9';

  // --- REST through nginx on the api host
  const reg = {};
  for (const who of ['alice', 'bob']) {
    const r = await api('POST', '/auth/register', { body: { username: `${who}_${tag}`, password, display_name: who } });
    ok(r.status === 201 && r.json?.access_token && r.json?.user?.id, `REST register ${who} on ${apiHost} (TLS, SNI)`, `${r.status} ${r.text.slice(0, 200)}`);
    reg[who] = r.json;
  }
  const login = await api('POST', '/auth/login', { body: { username: `alice_${tag}`, password } });
  ok(login.status === 200 && login.json?.access_token, `REST login on ${apiHost}`, `${login.status} ${login.text.slice(0, 200)}`);
  ok(/^[A-Za-z0-9._:-]+$/.test(login.headers['x-request-id'] || ''), 'response carries X-Request-ID', login.headers);
  ok(/max-age=\d+/.test(login.headers['strict-transport-security'] || ''), 'HSTS on the api host');
  for (const r of [reg.alice, reg.bob, login.json]) remember(r?.access_token, r?.refresh_token);
  const refreshed = await api('POST', '/auth/refresh', { body: { refresh_token: login.json?.refresh_token } });
  ok(refreshed.status === 200 && refreshed.json?.refresh_token, `REST refresh on ${apiHost}`, `${refreshed.status} ${refreshed.text.slice(0, 200)}`);
  remember(refreshed.json?.access_token, refreshed.json?.refresh_token);
  const alice = login.json?.access_token || reg.alice?.access_token;
  const bob = reg.bob?.access_token;
  const bobId = reg.bob?.user?.id;
  if (!alice || !bob) throw new Error('cannot continue without tokens');
  const conv = await api('POST', '/conversations', { token: alice, body: { type: 'direct', member_ids: [bobId] } });
  ok(conv.status === 201 || conv.status === 200, 'REST create conversation', `${conv.status} ${conv.text.slice(0, 200)}`);
  const convId = conv.json?.id;
  let n = 0;
  const post = async (label) => {
    const r = await api('POST', `/conversations/${convId}/messages`, { token: alice, body: { body: `${label} ${tag}`, client_msg_id: `${tag}-${++n}` } });
    if (r.status !== 201) throw new Error(`post ${label}: ${r.status} ${r.text.slice(0, 200)}`);
    return r.json;
  };

  // --- CORS preflights on both hosts
  const preflight = (host, path, origin, method) => request('OPTIONS', host, path, {
    headers: { origin, 'access-control-request-method': method, 'access-control-request-headers': 'authorization,content-type' },
  });
  for (const [host, path, method] of [[apiHost, '/api/v1/auth/login', 'POST'], [wsHost, '/socket.io/?EIO=4&transport=polling', 'GET']]) {
    const good = await preflight(host, path, wwwOrigin, method);
    ok(good.status >= 200 && good.status < 300 && good.headers['access-control-allow-origin'] === wwwOrigin,
      `CORS preflight from ${wwwOrigin} accepted on ${host}`, { status: good.status, acao: good.headers['access-control-allow-origin'] });
    const evil = await preflight(host, path, foreignOrigin, method);
    ok(!evil.headers['access-control-allow-origin'] && evil.status >= 400,
      `CORS preflight from ${foreignOrigin} refused on ${host}`, { status: evil.status, acao: evil.headers['access-control-allow-origin'] });
  }
  const evilPoll = await request('GET', wsHost, '/socket.io/?EIO=4&transport=polling', { headers: { origin: foreignOrigin } });
  ok(evilPoll.status === 403, `polling handshake with a foreign Origin refused (403) on ${wsHost}`, evilPoll.status);

  // --- a 2.x-style client: the token in the query string of the polling handshake
  const hs = await request('GET', wsHost, `/socket.io/?EIO=4&transport=polling&token=${encodeURIComponent(bob)}`);
  const qsid = /"sid":"([^"]+)"/.exec(hs.text)?.[1];
  remember(qsid);
  const open = qsid && await request('POST', wsHost, `/socket.io/?EIO=4&transport=polling&sid=${qsid}`,
    { headers: { 'content-type': 'text/plain;charset=UTF-8' }, body: undefined, raw: '40' });
  const ack = qsid && await request('GET', wsHost, `/socket.io/?EIO=4&transport=polling&sid=${qsid}`);
  ok(open?.status === 200 && /^40\{"sid"/.test(ack?.text || ''), 'polling client with ?token= in the query connects through nginx', { hs: hs.status, open: open?.status, ack: ack?.text });

  // --- wss:// on the ws-api host, a REST message delivered on the socket
  const ws = connect(bob, { name: 'ws' });
  await connected(ws, 'websocket client');
  ok(ws.io.engine.transport.name === 'websocket', `socket.io-client ${'4.x'} over wss:// on ${wsHost}`);
  const m1 = await post('hello');
  await until('message.created over wss', () => ws.received.has(Number(m1.seq)), 10000).catch(() => {});
  const got = ws.received.get(Number(m1.seq));
  ok(got && got.id === m1.id && got.body === m1.body, 'message posted over REST delivered on the socket (message.created)', got);

  // --- an attachment through nginx: upload (multipart), send, link, /static/ over TLS
  // A 1×1 PNG, declared as text/html: the server goes by the content.
  const png = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==', 'base64');
  const boundary = `mop${tag}`;
  const form = Buffer.concat([
    Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="../dot.png"\r\nContent-Type: text/html\r\n\r\n`),
    png, Buffer.from(`\r\n--${boundary}--\r\n`)]);
  const up = await request('POST', apiHost, '/api/v1/attachments', { token: alice, raw: form, headers: { 'content-type': `multipart/form-data; boundary=${boundary}` } });
  ok(up.status === 201 && up.json?.content_type === 'image/png' && up.json?.name === 'dot.png' && up.json?.thumbnail === true,
    `upload through nginx (multipart over TLS): type from the content, name without path`, `${up.status} ${up.text.slice(0, 200)}`);
  const withFile = await api('POST', `/conversations/${convId}/messages`, { token: alice, body: { body: '', attachment_ids: [up.json?.id], client_msg_id: `${tag}-file` } });
  ok(withFile.status === 201 && withFile.json?.attachments?.[0]?.id === up.json?.id, 'message with the attachment', `${withFile.status} ${withFile.text.slice(0, 200)}`);
  const link = await api('GET', `/attachments/${up.json?.id}`, { token: bob });
  ok(link.status === 200 && /^\/static\//.test(link.json?.url || ''), 'the other member gets a signed link', `${link.status} ${link.text.slice(0, 200)}`);
  const file = link.json?.url ? await new Promise((resolve, reject) => {
    const req = https.request({ host: apiHost, port, path: link.json.url, method: 'GET', agent, servername: apiHost, timeout: 15000 }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end();
  }) : { status: 0, headers: {}, body: Buffer.alloc(0) };
  ok(file.status === 200 && file.body.equals(png), `attachment fetched through nginx over TLS on ${apiHost}/static/`, { status: file.status, bytes: file.body.length });
  ok(file.headers['content-type'] === 'image/png' && file.headers['x-content-type-options'] === 'nosniff' &&
    /sandbox/.test(file.headers['content-security-policy'] || '') && /^private, max-age=\d+, immutable$/.test(file.headers['cache-control'] || '') &&
    /^inline; filename=/.test(file.headers['content-disposition'] || ''),
    '/static/ answer: its type, nosniff, a sandboxing CSP, private caching, inline disposition', file.headers);
  const forged = link.json?.url ? await request('GET', apiHost, link.json.url.replace(/sig=[^&]+/, 'sig=AAAA')) : { status: 0 };
  ok(forged.status === 403 && forged.json?.error?.code === 'forbidden', 'an altered link is refused (403) through nginx', forged.status);
  const fake = await request('POST', apiHost, '/api/v1/attachments', { token: alice, raw: Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="x.png"\r\nContent-Type: image/png\r\n\r\n<html><script>alert(1)</script></html>\r\n--${boundary}--\r\n`),
    headers: { 'content-type': `multipart/form-data; boundary=${boundary}` } });
  ok(fake.status === 415 && fake.json?.error?.code === 'unsupported_media_type', 'HTML declared as image/png is refused (415) through nginx', `${fake.status} ${fake.text.slice(0, 200)}`);
  ws.close();

  // --- polling through the sticky upstream, two api-ws instances
  const polls = [];
  for (let k = 1; k <= 20; k++) polls.push(connect(bob, { transports: ['polling'], cookie: `mop_ws_route=10.20.0.${k}`, name: `poll${k}` }));
  polls.push(connect(bob, { transports: ['polling'], name: 'poll-nocookie' }));
  await Promise.all(polls.map((s) => connected(s, s.mopName)));
  ok(polls.every((s) => s.io.engine.transport.name === 'polling'), `${polls.length} long-polling clients connected through ${wsHost}`);
  const m2 = await post('polling');
  await until('polling delivery', () => polls.every((s) => s.received.has(Number(m2.seq))), 10000).catch(() => {});
  ok(polls.every((s) => s.received.has(Number(m2.seq))), 'message delivered to every polling client',
    polls.filter((s) => !s.received.has(Number(m2.seq))).map((s) => s.mopName));
  const sids = new Set(polls.map((s) => s.io.engine.id));
  await sleep(300); // access log lines are written when each request completes
  const by = upstreamsBySid(sids);
  const stuck = [...by.values()].every((set) => set.size === 1);
  const used = new Set([...by.values()].flatMap((set) => [...set]));
  ok(by.size === sids.size && stuck, 'every polling session stayed on one api-ws instance (access log)', Object.fromEntries([...by].map(([k, v]) => [k, [...v]])));
  if (wsUpstreams.length > 1) ok(used.size === wsUpstreams.length, `polling sessions spread over all ${wsUpstreams.length} api-ws instances`, [...used]);

  // --- replace one api-ws instance while clients are connected; nothing is lost
  if (restartCmd) {
    const clients = [...polls];
    for (let k = 1; k <= 6; k++) clients.push(connect(bob, { name: `wsr${k}` }));
    await Promise.all(clients.map((s) => connected(s, s.mopName)));
    // the recovery every client does on (re)connect: fetch what it missed after its last seq
    const lastSeq = (s) => (s.received.size ? Math.max(...s.received.keys()) : 0);
    const recover = async (s) => {
      const r = await api('GET', `/conversations/${convId}/messages?after_seq=${lastSeq(s)}&limit=100`, { token: bob });
      if (r.status === 200) for (const m of r.json?.messages || []) s.received.set(Number(m.seq), m);
      s.recovered = (s.recovered || 0) + 1;
    };
    const base = await post('before-restart');
    await until('baseline delivery', () => clients.every((s) => s.received.has(Number(base.seq))), 10000)
      .catch(() => {});
    ok(clients.every((s) => s.received.has(Number(base.seq))), `baseline message delivered to ${clients.length} clients`);
    for (const s of clients) s.on('connect', () => { recover(s).catch(() => {}); });
    const before = new Map(clients.map((s) => [s, s.disconnects]));

    const child = spawn('bash', ['-c', restartCmd], { stdio: ['ignore', 'inherit', 'inherit'] });
    const restarted = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
    const during = [];
    for (let i = 0; i < 6; i++) { during.push(await post(`during-restart-${i}`)); await sleep(150); }
    const code = await restarted;
    ok(code === 0, 'one api-ws instance replaced (stopped, new binary started on the same port)', code);
    const moved = clients.filter((s) => s.disconnects > before.get(s));
    ok(moved.length > 0, `clients of the replaced instance were disconnected (${moved.length} of ${clients.length})`);
    await until('all clients reconnected', () => clients.every((s) => s.connected), 20000).catch(() => {});
    ok(clients.every((s) => s.connected), 'every client reconnected', clients.filter((s) => !s.connected).map((s) => s.mopName));
    const after = await post('after-restart');
    await until('live delivery after restart', () => clients.every((s) => s.received.has(Number(after.seq))), 10000).catch(() => {});
    ok(clients.every((s) => s.received.has(Number(after.seq))), 'live delivery to every client after the replacement',
      clients.filter((s) => !s.received.has(Number(after.seq))).map((s) => s.mopName));
    // after_seq recovery closes any gap left by the disconnection
    await Promise.all(clients.map((s) => recover(s)));
    const want = [Number(base.seq), ...during.map((m) => Number(m.seq)), Number(after.seq)];
    const missing = clients.map((s) => [s.mopName, want.filter((q) => !s.received.has(q))]).filter(([, m]) => m.length);
    ok(missing.length === 0, `no message lost across the replacement (seq ${want[0]}..${want[want.length - 1]}, after_seq recovery)`, missing);
    const gapFree = clients.every((s) => {
      const seqs = [...s.received.keys()].filter((q) => q >= want[0]).sort((a, b) => a - b);
      return seqs.every((q, i) => i === 0 || q === seqs[i - 1] + 1);
    });
    ok(gapFree, 'every client holds a gap-free seq range');
    for (const s of clients) s.close();
  } else {
    for (const s of polls) s.close();
  }
}

main()
  .catch((e) => { failures++; console.log(`FAIL - e2e aborted: ${e && e.stack || e}`); })
  .finally(() => {
    if (secretsFile) fs.writeFileSync(secretsFile, [...secrets].join('\n') + (secrets.size ? '\n' : ''));
    console.log(`e2e: ${passes} passed, ${failures} failed`);
    agent.destroy();
    process.exit(failures ? 1 : 0);
  });
