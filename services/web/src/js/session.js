// Session: the signed-in user and their token pair.
//
// Each tab (or window) signs in on its own, so two windows can be two people: the tab
// remembers which session it uses in sessionStorage (kept across reloads, copied when a tab
// is duplicated). The token pair itself lives in localStorage under that session's id,
// shared by every tab of the same session.
//
// Why shared: refresh tokens rotate on every use, and presenting a spent one revokes the
// whole session (`refresh_reused`). Two tabs of one session (a duplicated tab) must
// therefore never refresh with the same token: refresh() runs under a Web Lock named after
// the session and re-reads the stored pair inside it; a tab that finds a newer pair there
// adopts it instead of spending its own stale one.
//
// Events: "change" (new tokens: the socket sends them with `auth.refresh`) and
// "end" (detail: {reason}; the app shows the login page with that reason).

import { ApiError, postJSON } from './http.js';

const TAB_KEY = 'mop.tab'; // sessionStorage: {sid} of this tab's session
const PAIR_PREFIX = 'mop.session.'; // localStorage: the pair of each session, by sid
const LOCK_PREFIX = 'mop.refresh.';
const MAX_MARGIN_MS = 60_000; // refresh at most a minute before expiry...
const MARGIN_SHARE = 0.25; // ...or a quarter of the lifetime for short-lived tokens
const RETRY_MS = 5_000; // refresh failed on the network: try again after this
// A live tab refreshes its pair before the access token expires; a pair whose token
// expired this long ago belongs to tabs that were closed without logging out.
const FORGET_AFTER_MS = 6 * 3600_000;

export class Session extends EventTarget {
  #apiBase;
  #sid = null;
  #data = null; // {user, access_token, refresh_token, expires_at (ms), lifetime (ms)}
  #refreshing = null; // in-flight refresh promise (single flight inside this tab)
  #timer = 0;

  constructor(apiBase) {
    super();
    this.#apiBase = apiBase;
    pruneStale();
    this.#sid = readJSON(sessionStorage, TAB_KEY)?.sid ?? null;
    this.#data = this.#sid ? readPair(this.#sid) : null;
    // Another tab of this session refreshed (adopt its pair) or signed out (end here too).
    window.addEventListener('storage', (e) => {
      if (!this.#sid || e.key !== PAIR_PREFIX + this.#sid) return;
      const next = readPair(this.#sid);
      if (!next) {
        if (this.#data) this.#finish('signed_out_elsewhere');
        return;
      }
      if (next.access_token !== this.#data?.access_token) {
        this.#data = next;
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
  // revokes, and the same user's other sessions (tabs, devices) must not react to it.
  get sessionId() { return this.#sid; }

  // setUser keeps the stored profile current after the user edits it.
  setUser(user) {
    if (!this.#data) return;
    this.#data = { ...this.#data, user };
    localStorage.setItem(PAIR_PREFIX + this.#sid, JSON.stringify(this.#data));
  }

  // start stores the AuthResult of register or login.
  start(auth) {
    this.#sid = jwtClaims(auth.access_token)?.sid ?? randomId();
    sessionStorage.setItem(TAB_KEY, JSON.stringify({ sid: this.#sid }));
    this.#store(auth);
    this.#emit('change');
  }

  // end forgets the tokens locally, for every tab of this session (the server side is
  // POST /auth/logout, see Api.logout).
  end(reason) {
    if (this.#sid) localStorage.removeItem(PAIR_PREFIX + this.#sid);
    if (this.#data) this.#finish(reason);
  }

  #finish(reason) {
    clearTimeout(this.#timer);
    this.#data = null;
    sessionStorage.removeItem(TAB_KEY);
    this.#emit('end', { reason });
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
      const sid = this.#sid;
      this.#refreshing = withLock(LOCK_PREFIX + sid, () => this.#refreshLocked(sid, spent))
        .finally(() => { this.#refreshing = null; });
    }
    return this.#refreshing;
  }

  async #refreshLocked(sid, spent) {
    const stored = readPair(sid);
    if (!stored || !this.#data || sid !== this.#sid) throw new ApiError(401, 'session_revoked', 'Signed out');
    if (stored.refresh_token !== spent) {
      // Another tab of this session rotated the pair while we waited for the lock.
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
    localStorage.setItem(PAIR_PREFIX + this.#sid, JSON.stringify(this.#data));
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

  #emit(type, detail) { this.dispatchEvent(new CustomEvent(type, { detail })); }
}

function readJSON(storage, key) {
  try {
    return JSON.parse(storage.getItem(key));
  } catch {
    return null;
  }
}

function readPair(sid) {
  const v = readJSON(localStorage, PAIR_PREFIX + sid);
  return v && v.user && v.access_token && v.refresh_token ? v : null;
}

// pruneStale drops the pairs of sessions whose tabs are long gone (closed without logout).
function pruneStale() {
  for (let i = localStorage.length - 1; i >= 0; i--) {
    const key = localStorage.key(i);
    if (!key?.startsWith(PAIR_PREFIX)) continue;
    const v = readJSON(localStorage, key);
    if (!v || Date.now() - (v.expires_at ?? 0) > FORGET_AFTER_MS) localStorage.removeItem(key);
  }
}

function withLock(name, fn) {
  // Web Locks exist in secure contexts (https, and http://127.0.0.1 / localhost).
  return navigator.locks ? navigator.locks.request(name, fn) : fn();
}

function randomId() {
  return crypto.randomUUID?.() ?? String(Math.random()).slice(2);
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
