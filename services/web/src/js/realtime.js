// Realtime: the Socket.IO connection to api-ws (docs/api.md, "Socket.IO").
//
// - The handshake sends the current access token (`auth` is a function, so every
//   reconnect uses the newest one); when the session rotates its tokens a live socket is
//   told with `auth.refresh`, and a refused handshake (token_expired) refreshes and retries.
// - `state` is what the user sees: connecting, connected, reconnecting or offline.
// - Every (re)connect emits "connect": the chat then fetches what it missed with after_seq.
//
// Events: "state", "connect" (detail {first}), and every server event name
// (message.created, typing, ...) with the payload as detail.

import { io } from '../vendor/socket.io.esm.min.js';

export const SERVER_EVENTS = [
  'message.created', 'message.updated', 'message.deleted', 'read.updated',
  'conversation.created', 'conversation.updated', 'member.added', 'member.removed',
  'typing', 'presence', 'session.revoked', 'session.expired', 'resync',
];

const ACK_TIMEOUT_MS = 10_000;

// RealtimeError is a refused ({ok: false}) or unanswered acknowledgement.
export class RealtimeError extends Error {
  constructor(code, message) {
    super(message || code);
    this.name = 'RealtimeError';
    this.code = code; // invalid_input, not_found, ..., or "timeout" / "disconnected"
  }
}

export class Realtime extends EventTarget {
  #url;
  #session;
  #socket = null;
  #state = 'offline';
  #everConnected = false;
  #authRetried = false; // one token refresh per refused handshake
  #kicks = 0; // server-side disconnects in a row, for backoff
  #kickTimer = 0;
  #connectedAt = 0;
  connects = 0; // handshakes that succeeded (shown nowhere; tests and debugging read it)

  constructor(wsBase, session) {
    super();
    this.#url = wsBase;
    this.#session = session;
    session.addEventListener('change', () => this.#sendNewToken());
    window.addEventListener('offline', () => this.#onBrowserOffline());
    window.addEventListener('online', () => this.#onBrowserOnline());
  }

  get state() { return this.#state; }
  get connected() { return this.#socket?.connected ?? false; }

  start() {
    if (this.#socket) return;
    this.#everConnected = false;
    const socket = io(this.#url, {
      auth: (cb) => cb({ token: this.#session.accessToken }),
      reconnectionDelay: 500,
      reconnectionDelayMax: 5_000,
    });
    this.#socket = socket;
    socket.on('connect', () => {
      const first = !this.#everConnected;
      this.#everConnected = true;
      this.#authRetried = false;
      this.#connectedAt = Date.now();
      this.connects++;
      this.#updateState();
      this.#emit('connect', { first });
    });
    socket.on('disconnect', (reason) => this.#onDisconnect(reason));
    socket.on('connect_error', (err) => this.#onConnectError(err));
    socket.io.on('reconnect_attempt', () => this.#updateState());
    for (const name of SERVER_EVENTS) socket.on(name, (data) => this.#emit(name, data));
    socket.on('session.revoked', (data) => this.#onRevoked(data));
    this.#updateState();
  }

  // stop closes the connection for good (logout, revoked session).
  stop() {
    clearTimeout(this.#kickTimer);
    if (!this.#socket) return;
    this.#socket.removeAllListeners();
    this.#socket.io.removeAllListeners();
    this.#socket.disconnect();
    this.#socket = null;
    this.#setState('offline');
  }

  // request emits a client event and resolves with the ok-answer of its acknowledgement.
  async request(event, payload, timeoutMs = ACK_TIMEOUT_MS) {
    if (!this.connected) throw new RealtimeError('disconnected', 'Not connected');
    let answer;
    try {
      answer = await this.#socket.timeout(timeoutMs).emitWithAck(event, payload);
    } catch {
      throw new RealtimeError('timeout', `No answer to ${event}`);
    }
    if (!answer?.ok) throw new RealtimeError(answer?.error?.code ?? 'internal', answer?.error?.message);
    return answer;
  }

  // notify is for ephemeral events (typing): nobody waits for the answer.
  notify(event, payload) {
    if (this.connected) this.#socket.emit(event, payload, () => {});
  }

  // reconnectNow skips the backoff wait (the network just came back).
  reconnectNow() {
    if (!this.#socket || this.#socket.connected) return;
    this.#socket.disconnect();
    this.#socket.connect();
    this.#updateState();
  }

  // Test hook and "network went away" handler: drop the transport as a dead network would;
  // the client then reconnects by itself.
  dropTransport() {
    this.#socket?.io.engine?.close();
  }

  async #sendNewToken() {
    if (!this.#socket || !this.#session.accessToken) return;
    if (!this.connected) {
      // A handshake refused for its token is not retried by the manager: retry it now.
      if (!this.#socket.active) this.#socket.connect();
      return;
    }
    try {
      await this.request('auth.refresh', { token: this.#session.accessToken });
    } catch (err) {
      // The server did not take it: reconnect, which sends the new token in the handshake.
      if (err.code !== 'disconnected') this.reconnectNow();
    }
  }

  #onDisconnect(reason) {
    this.#updateState();
    if (reason !== 'io server disconnect') return; // the client reconnects by itself
    // The server closed us: session.expired, a revoked session, or a restart. Reconnect
    // with a fresh token; a revoked session is then refused and ends the session.
    if (Date.now() - this.#connectedAt > 30_000) this.#kicks = 0;
    const delay = Math.min(30_000, 500 * 2 ** this.#kicks++);
    clearTimeout(this.#kickTimer);
    this.#kickTimer = setTimeout(async () => {
      if (!this.#socket || !this.#session.signedIn) return;
      try {
        await this.#session.validToken(60_000);
      } catch {
        return; // refresh refused: the session has ended
      }
      this.#socket?.connect();
      this.#updateState();
    }, delay);
    this.#setState(navigator.onLine ? 'reconnecting' : 'offline');
  }

  async #onConnectError(err) {
    this.#updateState();
    if (err.message !== 'unauthorized') return; // network: the manager retries with backoff
    const code = err.data?.code;
    if (code === 'session_revoked' || this.#authRetried) {
      this.#session.end(code ?? 'token_invalid');
      return;
    }
    // token_expired (a slept laptop), token_invalid (a rotated key), token_missing: get a
    // new token once and retry; a second refusal ends the session.
    this.#authRetried = true;
    try {
      await this.#session.refresh();
    } catch {
      // A refused refresh has ended the session. Network trouble: the session retries the
      // refresh and its "change" reconnects us (#sendNewToken).
      this.#authRetried = false;
      return;
    }
    this.#socket?.connect();
    this.#updateState();
  }

  // session.revoked names the revoked session; other sessions (devices) of the same user
  // are told too and must carry on.
  #onRevoked(data) {
    const mine = this.#session.sessionId;
    if (data?.session_id && mine && data.session_id !== mine) return;
    this.#session.end(data?.reason === 'refresh_reuse' ? 'refresh_reused' : 'session_revoked');
  }

  #onBrowserOffline() {
    // A WebSocket can take a ping timeout (tens of seconds) to notice a dead network;
    // the browser knows now. Close it, the manager keeps trying until we are back.
    this.dropTransport();
    this.#updateState();
  }

  #onBrowserOnline() {
    this.reconnectNow();
  }

  #updateState() {
    const s = this.#socket;
    let state;
    if (s?.connected) state = 'connected';
    else if (!s || !navigator.onLine) state = 'offline';
    else state = this.#everConnected ? 'reconnecting' : 'connecting';
    this.#setState(state);
  }

  #setState(state) {
    if (state === this.#state) return;
    this.#state = state;
    this.#emit('state', { state });
  }

  #emit(type, detail) { this.dispatchEvent(new CustomEvent(type, { detail })); }
}
