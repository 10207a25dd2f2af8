// Realtime with socket.io-client: log in on the API host, send and receive on the ws-api host.
// Run after the curl walk-through (it exports ALICE, PW and CONV): node services/web/examples/realtime.mjs
import { io } from "socket.io-client";   // services/web/node_modules (`make web` installs it)

const api = process.env.API ?? "http://127.0.0.1:8080/api/v1";   // https://api.chat5202ol.xyz/api/v1
const ws = process.env.WS ?? "http://127.0.0.1:8081";             // https://ws-api.chat5202ol.xyz
const post = async (path, body) => {
  const res = await fetch(api + path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  if (!res.ok) throw new Error(`${path}: ${res.status} ${await res.text()}`);
  return res.json();
};
let tokens = await post("/auth/login", { username: process.env.ALICE, password: process.env.PW });
// One refresh at a time: a refresh token is spent once, and a second use revokes the session.
let refreshing = null;
const refresh = () => (refreshing ??= post("/auth/refresh", { refresh_token: tokens.refresh_token })
  .then((t) => { tokens = t; }).finally(() => { refreshing = null; }));

// auth as a callback: every (re)connect sends the token held now, not the first one.
const socket = io(ws, { transports: ["websocket"], auth: (cb) => cb({ token: tokens.access_token }) });
let renewed = null;   // session.expired: refresh now, reconnect once the server has closed the socket
socket.on("session.expired", () => { renewed = refresh(); });
socket.on("disconnect", async (reason) => {
  if (reason !== "io server disconnect" || !renewed) return;   // other drops reconnect by themselves
  try { await renewed; socket.connect(); } catch (err) { console.log("sign in again:", err.message); } finally { renewed = null; }
});
socket.on("connect_error", async (err) => {
  if (socket.active) return;   // a network failure: the client retries with backoff by itself
  console.log("refused:", err.message, err.data?.code);   // unauthorized or rate_limited: not retried
  if (err.data?.code === "token_expired") refresh().then(() => socket.connect(), (e) => console.log("sign in again:", e.message));
});
socket.on("message.created", (m) => {
  console.log("message.created", m.conversation_id, m.seq, m.body);
  if (m.body === sent) socket.close();   // the example ends when its own message comes back
});
const sent = `hi from the socket ${new Date().toISOString()}`;
socket.emit("message.send", { conversation_id: process.env.CONV, body: sent, client_msg_id: crypto.randomUUID() },
  (ack) => console.log("ack", ack.ok ? ack.message.seq : ack.error.code));
