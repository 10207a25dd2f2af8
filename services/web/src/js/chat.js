// Chat: the client-side model of conversations and messages, and every operation on them.
//
// The rules a client of mop needs to get right live here:
// - `seq` is the one cursor. Each conversation keeps a window of messages keyed by seq that
//   is contiguous from `floor` to `top`; scroll-back extends it down with before_seq, and
//   anything newer (a live event that skips a seq, a reconnect) is fetched with
//   after_seq=top. Keyed by seq, the same message from the socket and from REST is stored
//   once: no duplicates whichever way it came, however often.
// - The server's `resync` (it cannot vouch that every event reached this socket) is handled
//   like a reconnect: the list is reloaded and every loaded conversation catches up.
// - Sending creates a pending entry with a fresh client_msg_id; it is sent over the socket
//   (ack) or, when the socket is down or does not answer, over REST. A retry reuses the
//   same client_msg_id, so the server stores the message at most once.
// - Unread counts come from GET /conversations and are advanced by live events only for
//   seqs the client has not counted yet.
//
// The view listens to "change" (detail: {id} of the conversation, or {} for the list).

import { ApiError } from './http.js';

const PAGE = 50;
const CATCH_UP_PAGE = 200;
const TYPING_SEND_EVERY_MS = 3_000; // "start" again while the user keeps typing
const TYPING_IDLE_MS = 4_000; // no keystroke for this long: "stop"
const TYPING_SHOW_MS = 6_000; // a remote "start" without follow-up fades after this
const PRESENCE_BATCH = 500; // ids per presence.subscribe (the server's bound per call)
const PRESENCE_MAX = 500; // subscriptions per socket (the server's bound)
const COUNT_EVERY_MS = 60_000; // how often an open group's "N online" is asked again
// Failures worth trying again by themselves once the connection is back.
const TRANSIENT = new Set(['network', 'timeout', 'disconnected', 'unavailable', 'internal']);

export class Chat extends EventTarget {
  #api;
  #rt;
  me;
  conversations = new Map(); // id -> conversation (server fields + local state, see #conv)
  presence = new Map(); // user id -> {online, last_seen}
  online = new Map(); // group id -> members online now (presence.count), for the open group
  users = new Map(); // user id -> User (senders who are no longer members)
  activeId = null;
  #typingOut = { id: null, sentAt: 0, timer: 0 };
  #visible = () => document.visibilityState === 'visible';

  constructor(api, realtime, me) {
    super();
    this.#api = api;
    this.#rt = realtime;
    this.me = me;
    const on = (name, fn) => realtime.addEventListener(name, (e) => fn(e.detail));
    on('connect', () => this.sync());
    on('resync', () => this.sync().catch(() => {}));
    // Presence is only known while connected; the connect's sync asks again.
    // Subscriptions belong to the socket: a new one (reconnect) starts with none.
    on('state', ({ state }) => {
      if (state === 'connected') return;
      this.#subscribed.clear();
      if (this.presence.size || this.online.size) {
        this.presence.clear();
        this.online.clear();
        this.#changed();
      }
    });
    on('message.created', (m) => this.#onMessage(m));
    on('message.updated', (m) => this.#onMessageChanged(m));
    on('message.deleted', (m) => this.#onMessageChanged(m));
    on('read.updated', (r) => this.#onRead(r));
    on('conversation.created', (c) => this.#upsert(c));
    on('conversation.updated', (c) => this.#upsert(c));
    on('member.added', (mc) => this.#onMembersAdded(mc));
    on('member.removed', (mc) => this.#onMemberRemoved(mc));
    on('typing', (t) => this.#onTyping(t));
    on('presence', (p) => this.#setPresence([p]));
    document.addEventListener('visibilitychange', () => this.markRead());
  }

  // ---- conversations ----------------------------------------------------------------

  // sorted: newest activity first (as GET /conversations), for the list.
  sorted() {
    const at = (c) => c.last_message?.created_at ?? c.updated_at ?? c.created_at ?? '';
    return [...this.conversations.values()].sort((a, b) => (at(b) > at(a) ? 1 : at(b) < at(a) ? -1 : 0));
  }

  get active() { return this.conversations.get(this.activeId) ?? null; }

  // sync loads the conversation list and, for every conversation whose messages are on
  // screen, what was missed (after_seq). Runs at start and after every (re)connect.
  async sync() {
    const known = new Set(this.conversations.keys()); // a conversation created meanwhile stays
    const list = await this.#api.conversations();
    const seen = new Set();
    for (const c of list) {
      seen.add(c.id);
      this.#upsert(c, { authoritative: true });
    }
    // Conversations we were removed from while away.
    for (const id of known) if (!seen.has(id)) this.#drop(id);
    this.#loadMembers();
    this.#syncPresence();
    this.#countOnline();
    await Promise.all([...this.conversations.values()].filter((c) => c.loaded).map((c) => this.#catchUp(c)));
    for (const c of this.conversations.values()) this.#retryTransient(c);
    // The open conversation's first page may have failed (offline at start): load it now.
    const a = this.active;
    if (a && !a.loaded && !a.loading) await this.open(a.id);
    this.markRead();
  }

  // title: the group's title, or the other person's name in a direct conversation.
  title(c) {
    if (c.type === 'group') {
      return c.title || c.members.filter((m) => m.user_id !== this.me.id).map((m) => this.#name(m)).join(', ') || 'Group';
    }
    const peer = this.peer(c);
    return peer ? this.#name(peer) : (c.title || 'Direct conversation');
  }

  peer(c) {
    return c.type === 'direct' ? c.members.find((m) => m.user_id !== this.me.id) ?? null : null;
  }

  senderName(c, userId) {
    if (userId === this.me.id) return 'You';
    const m = c.members.find((x) => x.user_id === userId) ?? this.users.get(userId);
    if (!m) this.#loadUser(userId);
    return m ? this.#name(m) : '…';
  }

  async create(type, memberIds, title) {
    const c = await this.#api.createConversation(type, memberIds, title);
    return this.#upsert(c).id;
  }

  // open makes a conversation the visible one and loads its latest page once.
  async open(id) {
    this.#stopTyping();
    this.activeId = id;
    const c = this.conversations.get(id);
    this.#changed(id);
    if (!c) return;
    this.#countOnline();
    if (!c.loaded && !c.loading) {
      c.loading = true;
      try {
        const page = await this.#api.history(id, { limit: PAGE });
        this.#ingest(c, page.messages);
        c.loaded = true;
        c.hasMoreBefore = c.floor > 1;
      } finally {
        c.loading = false;
        this.#changed(id);
      }
      // A newer seq that the page and the events meanwhile did not join up: fetch the rest.
      if (c.last_seq > c.top) await this.#catchUp(c);
    }
    this.markRead();
  }

  close() {
    this.#stopTyping();
    this.activeId = null;
    this.#changed();
  }

  // loadOlder extends the window downwards (scroll-back) with before_seq.
  async loadOlder(id) {
    const c = this.conversations.get(id);
    if (!c || !c.loaded || !c.hasMoreBefore || c.loadingOlder) return;
    c.loadingOlder = true;
    this.#changed(id);
    try {
      const page = await this.#api.history(id, { before: c.floor, limit: PAGE });
      this.#ingest(c, page.messages);
      c.hasMoreBefore = page.messages.length > 0 && c.floor > 1;
    } catch {
      // Offline or busy: scrolling up (or the button) tries again.
    } finally {
      c.loadingOlder = false;
      this.#changed(id);
    }
  }

  // ---- sending, editing, deleting ---------------------------------------------------------

  // send queues a message with optional files (File objects): each file is uploaded once
  // (its id is kept for retries), then the message goes with the ids.
  send(id, body, files = []) {
    const c = this.conversations.get(id);
    if (!c || (!body.trim() && !files.length)) return;
    this.#stopTyping();
    const out = {
      client_msg_id: newClientMsgId(), body, state: 'pending', error: null, created_at: new Date().toISOString(),
      files: files.map((file) => ({ file, id: null })),
    };
    c.pending.set(out.client_msg_id, out);
    this.#changed(id);
    return this.#deliver(c, out);
  }

  // retry sends a failed message again with the same client_msg_id: never a duplicate.
  retry(id, clientMsgId) {
    const c = this.conversations.get(id);
    const out = c?.pending.get(clientMsgId);
    if (out && out.state === 'failed') return this.#deliver(c, out);
  }

  discard(id, clientMsgId) {
    this.conversations.get(id)?.pending.delete(clientMsgId);
    this.#changed(id);
  }

  async #deliver(c, out) {
    out.state = 'pending';
    out.error = null;
    this.#changed(c.id);
    try {
      for (const f of out.files ?? []) if (!f.id) f.id = (await this.#api.upload(f.file)).id;
      const ids = (out.files ?? []).map((f) => f.id);
      const payload = { conversation_id: c.id, body: out.body, client_msg_id: out.client_msg_id };
      if (ids.length) payload.attachment_ids = ids;
      let msg;
      if (this.#rt.connected) {
        try {
          msg = (await this.#rt.request('message.send', payload)).message;
        } catch (err) {
          if (!TRANSIENT.has(err.code)) throw err;
          msg = await this.#api.send(c.id, out.body, out.client_msg_id, ids); // socket went quiet: REST
        }
      } else {
        msg = await this.#api.send(c.id, out.body, out.client_msg_id, ids);
      }
      this.#ingest(c, [msg]);
    } catch (err) {
      if (!c.pending.has(out.client_msg_id)) return; // the echo arrived meanwhile: it was sent
      out.state = 'failed';
      out.error = err;
    }
    this.#changed(c.id);
  }

  // link returns an attachment's signed links (URLs the page can load), cached until shortly
  // before they expire; the server hands out the same link within a window anyway.
  #links = new Map(); // attachment id -> Promise<{url, thumbnail_url, expires}>
  link(attachmentId) {
    const cached = this.#links.get(attachmentId);
    if (cached && cached.expires > Date.now()) return cached.promise;
    const entry = { expires: Infinity };
    entry.promise = this.#api.attachmentLink(attachmentId).then((l) => {
      entry.expires = Date.parse(l.expires_at) - 60_000;
      return { ...l, url: this.#api.resolve(l.url), thumbnail_url: this.#api.resolve(l.thumbnail_url) };
    }, (err) => {
      this.#links.delete(attachmentId);
      throw err;
    });
    this.#links.set(attachmentId, entry);
    return entry.promise;
  }

  #retryTransient(c) {
    for (const out of c.pending.values()) {
      if (out.state === 'failed' && TRANSIENT.has(out.error?.code)) this.#deliver(c, out);
    }
  }

  async edit(id, messageId, body) {
    const c = this.conversations.get(id);
    const m = await this.#api.edit(id, messageId, body);
    if (c) this.#onMessageChanged(m);
  }

  async remove(id, messageId) {
    await this.#api.remove(id, messageId);
    const c = this.conversations.get(id);
    const m = c && [...c.messages.values()].find((x) => x.id === messageId);
    if (m && !m.deleted_at) this.#onMessageChanged({ ...m, body: '', deleted_at: new Date().toISOString() });
  }

  // ---- read receipts -------------------------------------------------------------------

  // markRead advances our read marker of the visible conversation to its newest message.
  async markRead() {
    const c = this.active;
    if (!c || !c.loaded || !this.#visible() || c.top <= c.read_seq) return;
    const seq = c.top;
    const before = c.read_seq;
    c.read_seq = seq;
    c.unread_count = this.#unreadAfter(c, seq);
    this.#changed(c.id);
    try {
      if (this.#rt.connected) await this.#rt.request('read', { conversation_id: c.id, seq });
      else await this.#api.markRead(c.id, seq);
    } catch {
      // Not recorded; the next markRead (new message, focus, reconnect) tries again.
      if (c.read_seq === seq) c.read_seq = before;
    }
  }

  // seenBy: members (other than us) whose read marker has reached seq.
  seenBy(c, seq) {
    const who = [];
    for (const [userId, readSeq] of c.readBy) if (userId !== this.me.id && readSeq >= seq) who.push(userId);
    return who;
  }

  #onRead(r) {
    const c = this.conversations.get(r.conversation_id);
    if (!c) return;
    if (r.user_id === this.me.id) {
      // Read on another device or tab.
      if (r.seq > c.read_seq) {
        c.read_seq = r.seq;
        c.unread_count = this.#unreadAfter(c, r.seq);
      }
    } else {
      c.readBy.set(r.user_id, Math.max(c.readBy.get(r.user_id) ?? 0, r.seq));
    }
    this.#changed(c.id);
  }

  #unreadAfter(c, seq) {
    if (seq >= c.last_seq) return 0;
    if (c.loaded && c.floor <= seq + 1) {
      let n = 0;
      for (const m of c.messages.values()) if (m.seq > seq && m.sender_id !== this.me.id && !m.deleted_at) n++;
      return n;
    }
    return Math.min(c.unread_count, c.last_seq - seq);
  }

  // ---- typing --------------------------------------------------------------------------

  // typed is called on every keystroke in the composer; sends are throttled.
  typed(id) {
    const t = this.#typingOut;
    if (t.id !== id) this.#stopTyping();
    const now = Date.now();
    if (t.id !== id || now - t.sentAt > TYPING_SEND_EVERY_MS) {
      this.#rt.notify('typing', { conversation_id: id, state: 'start' });
      t.id = id;
      t.sentAt = now;
    }
    clearTimeout(t.timer);
    t.timer = setTimeout(() => this.#stopTyping(), TYPING_IDLE_MS);
  }

  #stopTyping() {
    const t = this.#typingOut;
    clearTimeout(t.timer);
    if (t.id) this.#rt.notify('typing', { conversation_id: t.id, state: 'stop' });
    t.id = null;
    t.sentAt = 0;
  }

  // typingNames: who is typing in a conversation right now.
  typingNames(c) {
    return [...c.typing.keys()].map((userId) => this.senderName(c, userId));
  }

  #onTyping({ conversation_id: id, user_id: userId, state }) {
    const c = this.conversations.get(id);
    if (!c || userId === this.me.id) return;
    clearTimeout(c.typing.get(userId));
    if (state === 'start') c.typing.set(userId, setTimeout(() => this.#clearTyping(c, userId), TYPING_SHOW_MS));
    else c.typing.delete(userId);
    this.#changed(id);
  }

  #clearTyping(c, userId) {
    if (!c.typing.has(userId)) return;
    clearTimeout(c.typing.get(userId));
    c.typing.delete(userId);
    this.#changed(c.id);
  }

  // ---- messages ------------------------------------------------------------------------

  #onMessage(m) {
    const c = this.conversations.get(m.conversation_id);
    if (!c) {
      // A conversation we have not heard of (its conversation.created was missed): reload.
      this.sync().catch(() => {});
      return;
    }
    this.#clearTyping(c, m.sender_id);
    this.#recheckPresence(m.sender_id);
    this.#ingest(c, [m]);
    if (c.loaded && c.last_seq > c.top) this.#catchUp(c); // a seq was skipped: fill the gap
    if (c.id === this.activeId) this.markRead();
  }

  #onMessageChanged(m) {
    const c = this.conversations.get(m.conversation_id);
    if (!c) return;
    // An edit that arrives after the delete (events and pages cross) must not revive it.
    const old = c.messages.get(m.seq);
    if (old && newer(m, old)) c.messages.set(m.seq, m);
    if (c.last_message?.id === m.id && newer(m, c.last_message)) c.last_message = m;
    this.#changed(c.id);
  }

  // ingest stores messages (from any source, any number of times) in the window, keyed by
  // seq, and advances last_seq / last_message / unread_count for seqs not counted before.
  #ingest(c, messages) {
    for (const m of messages) {
      if (m.sender_id === this.me.id && m.client_msg_id) c.pending.delete(m.client_msg_id);
      if (m.seq > c.last_seq) {
        c.last_seq = m.seq;
        c.last_message = m;
        if (m.sender_id !== this.me.id && m.seq > c.read_seq) c.unread_count++;
      }
      if (!c.loaded && !c.loading) continue; // not on screen: its latest page loads on open
      const old = c.messages.get(m.seq);
      if (!old || newer(m, old)) c.messages.set(m.seq, m);
    }
    // Pages and events arrive in any order. The window starts at the lowest seq held
    // (scroll-back only ever extends it downwards) and `top` is the highest seq up to which
    // it has no gap: the after_seq cursor. A message beyond a gap shows at once; the
    // catch-up that fills the gap is started by the caller.
    if (c.messages.size) {
      let floor = Infinity;
      for (const seq of c.messages.keys()) if (seq < floor) floor = seq;
      c.floor = floor;
      c.top = floor;
      while (c.messages.has(c.top + 1)) c.top++;
    }
    this.#changed(c.id);
  }

  // catchUp fetches everything after the window's top (after_seq), page by page. One at a
  // time per conversation; events that arrive meanwhile make it loop.
  async #catchUp(c) {
    if (c.catchingUp) {
      c.catchUpAgain = true;
      return c.catchingUp;
    }
    c.catchingUp = (async () => {
      try {
        do {
          c.catchUpAgain = false;
          let page;
          do {
            page = await this.#api.history(c.id, { after: c.top, limit: CATCH_UP_PAGE });
            this.#ingest(c, page.messages);
          } while (page.has_more && page.messages.length > 0);
        } while (c.catchUpAgain);
      } catch {
        // Offline again or the server is busy: the next (re)connect catches up.
      } finally {
        c.catchingUp = null;
      }
    })();
    return c.catchingUp;
  }

  // ---- conversation records ------------------------------------------------------------

  // #upsert merges a Conversation from REST or an event. Only REST (authoritative) knows
  // read_seq and unread_count for us; events carry zeros there.
  #upsert(data, { authoritative = false } = {}) {
    let c = this.conversations.get(data.id);
    if (!c) {
      c = {
        id: data.id, members: [], last_seq: 0, read_seq: 0, unread_count: 0, last_message: null,
        messages: new Map(), floor: 0, top: 0, loaded: false, loading: false, hasMoreBefore: false,
        loadingOlder: false, pending: new Map(), readBy: new Map(), typing: new Map(),
        catchingUp: null, catchUpAgain: false,
      };
      this.conversations.set(data.id, c);
    }
    for (const k of ['type', 'title', 'created_by', 'created_at', 'updated_at']) if (data[k] !== undefined) c[k] = data[k];
    if (data.members?.length) {
      c.members = data.members;
      // Members carry how far each has read, so receipts survive a reload.
      for (const m of data.members) {
        if (m.read_seq > 0) c.readBy.set(m.user_id, Math.max(c.readBy.get(m.user_id) ?? 0, m.read_seq));
      }
      this.#syncPresence();
    }
    if (authoritative) {
      // A list fetched before a live event we already processed must not roll it back.
      if (data.last_seq >= c.last_seq) {
        c.last_seq = data.last_seq;
        c.last_message = data.last_message ?? c.last_message;
        c.unread_count = data.unread_count;
      }
      c.read_seq = Math.max(c.read_seq, data.read_seq ?? 0);
    } else if (data.last_message && (data.last_seq ?? 0) > c.last_seq) {
      c.last_seq = data.last_seq;
      c.last_message = data.last_message;
    }
    this.#changed(c.id);
    return c;
  }

  #drop(id) {
    this.conversations.delete(id);
    if (this.activeId === id) this.activeId = null;
    this.#changed();
  }

  // One member.added lists every member added at once (`member` alone: an older server).
  #onMembersAdded({ conversation_id: id, member, members }) {
    const c = this.conversations.get(id);
    if (!c) {
      // We were added to a conversation: fetch it whole.
      this.#api.conversation(id).then((full) => this.#upsert(full)).catch(() => {});
      return;
    }
    const added = members?.length ? members : [member];
    const ids = new Set(added.map((m) => m.user_id));
    c.members = [...c.members.filter((m) => !ids.has(m.user_id)), ...added];
    this.#changed(id);
  }

  #onMemberRemoved({ conversation_id: id, member }) {
    if (member.user_id === this.me.id) return this.#drop(id);
    const c = this.conversations.get(id);
    if (!c) return;
    c.members = c.members.filter((m) => m.user_id !== member.user_id);
    this.#changed(id);
  }

  // GET /conversations may omit members; titles of direct conversations need them.
  async #loadMembers() {
    const missing = [...this.conversations.values()].filter((c) => !c.members.length && !c.membersLoading);
    await pool(missing, 4, async (c) => {
      c.membersLoading = true;
      try {
        const full = await this.#api.conversation(c.id);
        this.#upsert(full);
      } catch {
        // Retried at the next sync.
      } finally {
        c.membersLoading = false;
      }
    });
  }

  async #loadUser(id) {
    if (this.users.has(id)) return;
    this.users.set(id, null); // once
    try {
      this.users.set(id, await this.#api.user(id));
      this.#changed();
    } catch (err) {
      if (!(err instanceof ApiError) || err.status !== 404) this.users.delete(id);
    }
  }

  // ---- presence ------------------------------------------------------------------------

  #presenceQueued = false;
  #subscribed = new Set(); // user ids this socket is subscribed to

  // #syncPresence subscribes the socket to the people the list shows (the partners of
  // direct conversations: their dots and headers) and unsubscribes those it no longer
  // shows. The answers carry the current state; api-ws then pushes each change. Group
  // members are not subscribed: a group shows a count (#countOnline), nothing per member.
  #syncPresence() {
    if (this.#presenceQueued) return;
    this.#presenceQueued = true;
    queueMicrotask(async () => {
      this.#presenceQueued = false;
      if (!this.#rt.connected) return; // subscribed again on connect
      const want = new Set();
      for (const c of this.sorted()) {
        const peer = this.peer(c);
        if (peer && want.size < PRESENCE_MAX) want.add(peer.user_id);
      }
      const gone = [...this.#subscribed].filter((id) => !want.has(id));
      const fresh = [...want].filter((id) => !this.#subscribed.has(id));
      try {
        for (let i = 0; i < gone.length; i += PRESENCE_BATCH) {
          const ids = gone.slice(i, i + PRESENCE_BATCH);
          await this.#rt.request('presence.unsubscribe', { user_ids: ids });
          for (const id of ids) this.#subscribed.delete(id);
        }
        for (let i = 0; i < fresh.length; i += PRESENCE_BATCH) {
          const ids = fresh.slice(i, i + PRESENCE_BATCH);
          const ans = await this.#rt.request('presence.subscribe', { user_ids: ids });
          for (const id of ids) this.#subscribed.add(id);
          this.#setPresence(ans.presence ?? []);
        }
      } catch {
        // Disconnected meanwhile: the connect's sync subscribes again.
      }
    });
  }

  #countTimer = 0;

  // #countOnline asks how many members of the open group are online (nothing is pushed
  // for groups), now and every minute while it stays open.
  async #countOnline() {
    clearTimeout(this.#countTimer);
    const c = this.active;
    if (!c || c.type !== 'group' || !this.#rt.connected) return;
    this.#countTimer = setTimeout(() => this.#countOnline(), COUNT_EVERY_MS);
    try {
      const ans = await this.#rt.request('presence.count', { conversation_id: c.id });
      this.online.set(c.id, ans.online);
      this.#changed(c.id);
    } catch {
      // Shown without a count until the next try.
    }
  }

  #presenceRechecked = new Set();

  // #recheckPresence asks once about a sender shown offline: presence follows each user's
  // privacy setting, and writing to us can have made us one of their contacts just now.
  #recheckPresence(userId) {
    if (userId === this.me.id || this.presence.get(userId)?.online || this.#presenceRechecked.has(userId)) return;
    if (!this.#rt.connected) return;
    this.#presenceRechecked.add(userId);
    this.#rt.request('presence.query', { user_ids: [userId] })
      .then((ans) => this.#setPresence(ans.presence ?? []))
      .catch(() => {});
  }

  #setPresence(states) {
    for (const p of states) this.presence.set(p.user_id, { online: p.online, last_seen: p.last_seen });
    this.#changed();
  }

  // ---- helpers ---------------------------------------------------------------------------

  #name(u) { return u.display_name || u.username || '?'; }

  #changed(id) { this.dispatchEvent(new CustomEvent('change', { detail: { id } })); }
}

// newer: an edit or delete is newer than what we had (events and pages may cross).
function newer(m, old) {
  const stamp = (x) => x.deleted_at ?? x.edited_at ?? '';
  if (old.deleted_at && !m.deleted_at) return false;
  return stamp(m) >= stamp(old);
}

function newClientMsgId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  return [...crypto.getRandomValues(new Uint8Array(16))].map((b) => b.toString(16).padStart(2, '0')).join('');
}

async function pool(items, n, fn) {
  const queue = [...items];
  await Promise.all(Array.from({ length: Math.min(n, queue.length) }, async () => {
    while (queue.length) await fn(queue.shift());
  }));
}
