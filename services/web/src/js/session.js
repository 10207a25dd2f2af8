// Session: the signed-in user and their token pair.
//
// Tokens live in localStorage so that a reload stays signed in and all tabs of one browser
// share one session. Refresh tokens rotate on every use and presenting a spent one revokes
// the whole session (`refresh_reused`), so two tabs must never refresh at the same time:
// refresh() runs under a Web Lock and re-reads storage inside it; a tab that finds a newer
// pair there adopts it instead of spending its own (now stale) refresh token.
//
// Events: "change" (new tokens: the socket sends them with `auth.refresh`) and
// "end" (detail: {reason}; the app shows the login page with that reason).

import { ApiError, postJSON } from './http.js';

const STORAGE_KEY = 'mop.session';
const LOCK_NAME = 'mop.session.refresh';
const MAX_MARGIN_MS = 60_000; // refresh at most a minute before expiry...
const MARGIN_SHARE = 0.25; // ...or a quarter of the lifetime for short-lived tokens
const RETRY_MS = 5_000; // refresh failed on the network: try again after this

export class Session extends EventTarget {
  #apiBase;
  #data = null; // {user, access_token, refresh_token, expires_at (ms), lifetime (ms)}
  #refreshing = null; // in-flight refresh promise (single flight inside this tab)
  #timer = 0;

  constructor(apiBase) {
    super();
    this.#apiBase = apiBase;
    this.#data = readStorage();
    // Another tab refreshed, signed in as someone else, or signed out.
    window.addEventListener('storage', (e) => {
      if (e.key !== STORAGE_KEY) return;
      const next = readStorage();
      const had = this.#data;
      this.#data = next;
      if (!next && had) {
        this.#stop();
        this.#emit('end', { reason: 'signed_out_elsewhere' });
      } else if (next && had && next.user.id !== had.user.id) {
        this.#emit('end', { reason: 'switched_user' });
      } else if (next && next.access_token !== had?.access_token) {
        this.#schedule();
        this.#emit('change');
      }
    });
    if (this.#data) this.#schedule();
  }

  get signedIn() { return this.#data !== null; }
  get user() { return this.#data?.user ?? null; }
  get accessToken() { return this.#data?.access_token ?? null; }
  get expiresAt() { return this.#data?.expires_at ?? 0; }

  // sessionId is the `sid` claim of the access token: session.revoked names the session it
  // revokes, and a user may have other sessions (devices) that must not react to it.
  get sessionId() { return jwtClaims(this.accessToken)?.sid ?? null; }

  // start stores the AuthResult of register or login.
  start(auth) {
    this.#store(auth);
    this.#emit('change');
  }

  // end forgets the tokens locally (the server side is POST /auth/logout, see Api.logout).
  end(reason) {
    const had = this.#data !== null;
    this.#stop();
    this.#data = null;
    localStorage.removeItem(STORAGE_KEY);
    if (had) this.#emit('end', { reason });
  }

  // validToken returns an access token that is valid for at least `minMs` more,
  // refreshing first when it is not (a laptop that slept skipped its timer).
  async validToken(minMs = 10_000) {
    if (!this.#data) throw new ApiError(401, 'token_missing', 'Not signed in');
    if (this.#data.expires_at - Date.now() < minMs) await this.refresh();
    if (!this.#data) throw new ApiError(401, 'session_revoked', 'Signed out');
    return this.#data.access_token;
  }

  // refresh rotates the token pair. Concurrent callers share one request.
  refresh() {
    if (!this.#refreshing) {
      const spent = this.#data?.refresh_token;
      this.#refreshing = withLock(() => this.#refreshLocked(spent)).finally(() => { this.#refreshing = null; });
    }
    return this.#refreshing;
  }

  async #refreshLocked(spent) {
    const stored = readStorage();
    if (!stored || !this.#data) throw new ApiError(401, 'session_revoked', 'Signed out');
    if (stored.refresh_token !== spent) {
      // Another tab rotated the pair while we waited for the lock: use theirs.
      this.#data = stored;
      this.#schedule();
      this.#emit('change');
      return;
    }
    try {
      const auth = await postJSON(`${this.#apiBase}/api/v1/auth/refresh`, { refresh_token: spent });
      this.#store(auth);
      this.#emit('change');
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) {
        // refresh_invalid, refresh_reused, session_revoked: the session is gone for good.
        this.end(err.code);
      } else {
        this.#schedule(RETRY_MS); // network trouble or 5xx: keep the pair, try again soon
      }
      throw err;
    }
  }

  #store(auth) {
    const lifetime = Math.max(1, auth.expires_in) * 1000;
    this.#data = {
      user: auth.user,
      access_token: auth.access_token,
      refresh_token: auth.refresh_token,
      // From our own clock and expires_in, so a skewed device clock does not matter.
      expires_at: Date.now() + lifetime,
      lifetime,
    };
    localStorage.setItem(STORAGE_KEY, JSON.stringify(this.#data));
    this.#schedule();
  }

  #schedule(delay) {
    clearTimeout(this.#timer);
    if (!this.#data) return;
    if (delay === undefined) {
      const margin = Math.min(MAX_MARGIN_MS, this.#data.lifetime * MARGIN_SHARE);
      delay = Math.max(0, this.#data.expires_at - margin - Date.now());
    }
    this.#timer = setTimeout(() => this.refresh().catch(() => {}), delay);
  }

  #stop() { clearTimeout(this.#timer); }

  #emit(type, detail) { this.dispatchEvent(new CustomEvent(type, { detail })); }
}

function readStorage() {
  try {
    const v = JSON.parse(localStorage.getItem(STORAGE_KEY));
    return v && v.user && v.access_token && v.refresh_token ? v : null;
  } catch {
    return null;
  }
}

function withLock(fn) {
  // Web Locks exist in secure contexts (https, and http://127.0.0.1 / localhost).
  return navigator.locks ? navigator.locks.request(LOCK_NAME, fn) : fn();
}

// jwtClaims reads (never verifies: that is the server's job) the payload of a JWT.
export function jwtClaims(token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(atob(part));
  } catch {
    return null;
  }
}
