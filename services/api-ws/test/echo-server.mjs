// The Node.js reference for api-ws's conformance suite
// (services/api-ws/internal/conformance): the official Engine.IO / Socket.IO
// server, configured like the echo server the suite runs against mop's own
// engine, so every expectation of the suite is checked against the reference.
//
//   node echo-server.mjs <engine|socket> [port]     (or ECHO_KIND / PORT)
//
// Port 0 (the default) lets the system pick a free port. Prints
// "listening <port>" once it accepts connections; SIGTERM/SIGINT stop it.
//
// kind "engine": a bare Engine.IO server that echoes every message as received
// (text as text, binary as binary).
// kind "socket": Socket.IO on top, namespace "/" only. On connect it emits
// ["auth", <handshake auth>]; "message" → "message-back" with the same args;
// "message-with-ack" → the ack with the same args; "kick" → DISCONNECT, then
// the connection is closed. A CONNECT whose auth (v5) or query (v4, for
// socket.io-client 2.x) carries refuse=<code> is refused with
// {message: "unauthorized", data: {code}}.
import http from 'node:http';
import { Server as EngineServer } from 'engine.io';
import { Server as SocketServer } from 'socket.io';

const kind = process.argv[2] ?? process.env.ECHO_KIND ?? 'socket';
const port = Number(process.argv[3] ?? process.env.PORT ?? 0);
const PATH = '/socket.io/';
const ALLOWED_ORIGIN = 'http://allowed.example';

const engineOptions = {
  pingInterval: 300,
  pingTimeout: 200,
  maxHttpBufferSize: 1e6,
  allowEIO3: true,
  cors: { origin: ALLOWED_ORIGIN, credentials: true },
  // Only the handshake goes through allowRequest (a request carrying a sid
  // does not): a foreign Origin is refused there with 403 {"code":4}.
  allowRequest(req, callback) {
    const origin = req.headers.origin;
    callback(null, origin === undefined || origin === ALLOWED_ORIGIN);
  },
};

const httpServer = http.createServer((req, res) => {
  res.writeHead(404).end();
});

if (kind === 'engine') {
  const engine = new EngineServer(engineOptions);
  engine.attach(httpServer, { path: PATH });
  engine.on('connection', (socket) => {
    socket.on('message', (data) => socket.send(data));
  });
} else if (kind === 'socket') {
  const io = new SocketServer(httpServer, { ...engineOptions, path: PATH, connectTimeout: 1000 });
  io.use((socket, next) => {
    const legacy = socket.conn.protocol === 3;
    const code = legacy ? socket.handshake.query.refuse : socket.handshake.auth?.refuse;
    if (code === undefined) return next();
    const err = new Error('unauthorized');
    err.data = { code: String(code) };
    return next(err);
  });
  io.on('connection', (socket) => {
    socket.emit('auth', socket.handshake.auth);
    socket.on('message', (...args) => socket.emit('message-back', ...args));
    socket.on('message-with-ack', (...args) => {
      const ack = args.pop();
      if (typeof ack === 'function') ack(...args);
    });
    socket.on('kick', () => socket.disconnect(true));
  });
} else {
  console.error(`echo-server: unknown kind "${kind}" (want engine or socket)`);
  process.exit(2);
}

for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => process.exit(0));
}

httpServer.listen(port, '127.0.0.1', () => {
  console.log(`listening ${httpServer.address().port}`);
});
