// The reference a user would pick instead of api-ws: a plain Socket.IO 4.x
// server doing the same work per message as mop's realtime tier, minus NATS
// and the database. It verifies the same HS256 access tokens (so the per-
// connection auth cost is comparable), puts every socket in the room of its
// user, and on POST /groups/:id/messages emits `message.created` to the rooms
// of the group's members, exactly as api-ws fans an event out to its
// recipients' user rooms.
//
// Env: PORT (required), HOST (default 127.0.0.1), JWT_SIGNING_KEY, JWT_ISSUER,
// JWT_AUDIENCE (defaults "mop").
'use strict';

const http = require('node:http');
const crypto = require('node:crypto');
const { Server } = require('socket.io');

const port = Number(process.env.PORT);
const host = process.env.HOST || '127.0.0.1';
const key = process.env.JWT_SIGNING_KEY || '';
const issuer = process.env.JWT_ISSUER || 'mop';
const audience = process.env.JWT_AUDIENCE || 'mop';
if (!port || key.length < 32) {
  console.error('PORT and JWT_SIGNING_KEY (>= 32 bytes) are required');
  process.exit(2);
}

// verify checks an HS256 JWT the way pkg/auth does (algorithm, signature,
// issuer, audience, expiry) and returns its claims, or null.
function verify(token) {
  if (typeof token !== 'string' || token.length > 4096) return null;
  const parts = token.split('.');
  if (parts.length !== 3) return null;
  let header;
  let claims;
  try {
    header = JSON.parse(Buffer.from(parts[0], 'base64url'));
    claims = JSON.parse(Buffer.from(parts[1], 'base64url'));
  } catch {
    return null;
  }
  if (header.alg !== 'HS256') return null;
  const want = crypto.createHmac('sha256', key).update(parts[0] + '.' + parts[1]).digest();
  const got = Buffer.from(parts[2], 'base64url');
  if (got.length !== want.length || !crypto.timingSafeEqual(got, want)) return null;
  const aud = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
  const now = Date.now() / 1000;
  if (claims.iss !== issuer || !aud.includes(audience) || !(claims.exp > now - 30) || !claims.sub) {
    return null;
  }
  return claims;
}

const groups = new Map(); // id -> {rooms: [string], seq: number}

function readJSON(req, limit = 1 << 20) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size > limit) {
        reject(new Error('body too large'));
        req.destroy();
      } else {
        chunks.push(c);
      }
    });
    req.on('end', () => {
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}'));
      } catch (e) {
        reject(e);
      }
    });
    req.on('error', reject);
  });
}

function send(res, status, body) {
  const data = body === undefined ? '' : JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data) });
  res.end(data);
}

const httpServer = http.createServer(async (req, res) => {
  const url = new URL(req.url, 'http://x');
  try {
    if (req.method === 'GET' && url.pathname === '/healthz') {
      return send(res, 200, { status: 'ok', sockets: io.engine.clientsCount });
    }
    const m = url.pathname.match(/^\/groups\/([^/]+)(\/messages)?$/);
    if (m && req.method === 'POST' && !m[2]) {
      const { members } = await readJSON(req);
      if (!Array.isArray(members)) return send(res, 400, { error: 'members must be an array' });
      groups.set(m[1], { rooms: members.map((u) => 'user:' + u), seq: 0 });
      return send(res, 201, { id: m[1], members: members.length });
    }
    if (m && req.method === 'POST' && m[2]) {
      const g = groups.get(m[1]);
      if (!g) return send(res, 404, { error: 'not_found' });
      const { sender_id: senderID, body, client_msg_id: clientMsgID } = await readJSON(req);
      const msg = {
        id: crypto.randomUUID(),
        conversation_id: m[1],
        seq: ++g.seq,
        sender_id: senderID || '',
        body: body || '',
        client_msg_id: clientMsgID || '',
        created_at: new Date().toISOString(),
        edited_at: null,
        deleted_at: null,
      };
      io.to(g.rooms).emit('message.created', msg);
      return send(res, 201, msg);
    }
    send(res, 404, { error: 'not_found' });
  } catch (e) {
    send(res, 400, { error: String(e.message || e) });
  }
});

const io = new Server(httpServer, {
  pingInterval: 25000,
  pingTimeout: 60000,
  maxHttpBufferSize: 1e6,
  cors: { origin: false },
});

io.use((socket, next) => {
  const claims = verify(socket.handshake.auth && socket.handshake.auth.token);
  if (!claims) {
    const err = new Error('unauthorized');
    err.data = { code: 'token_invalid' };
    return next(err);
  }
  socket.data.userID = claims.sub;
  next();
});

io.on('connection', (socket) => {
  socket.join('user:' + socket.data.userID);
});

httpServer.listen(port, host, () => {
  console.log(JSON.stringify({ msg: 'listening', host, port, pid: process.pid }));
});

function shutdown() {
  io.close();
  httpServer.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
