// Conversation pane: header with presence, the message log (scroll-back, pending / sent /
// seen / failed states, edit and delete of own messages), typing indicator and composer.

import { $, h, reconcile } from '../dom.js';
import { byteSize, clockTime, dayLabel, errorText, groupText, hue, initial, presenceText } from '../format.js';

const NEAR_TOP_PX = 120;
const NEAR_BOTTOM_PX = 60;

export class ConversationView {
  #chat;
  #scroller = $('#message-scroller');
  #list = $('#message-list');
  #input = $('#composer-input');
  #editing = null; // {conversationId, messageId} while the composer edits a message
  #shownId = null;
  #stickToBottom = true;
  #files = []; // File objects chosen for the next message

  constructor(chat) {
    this.#chat = chat;
    $('#composer').addEventListener('submit', (e) => {
      e.preventDefault();
      this.#submit();
    });
    this.#input.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        this.#submit();
      } else if (e.key === 'Escape' && this.#editing) {
        this.#cancelEdit();
      }
    });
    this.#input.addEventListener('input', () => {
      this.#autosize();
      if (this.#input.value.trim() && !this.#editing && chat.activeId) chat.typed(chat.activeId);
    });
    $('#edit-cancel').addEventListener('click', () => this.#cancelEdit());
    const picker = $('#composer-file');
    picker.addEventListener('change', () => {
      this.#files.push(...picker.files);
      picker.value = '';
      this.#renderFiles();
    });
    $('#composer-files').addEventListener('click', (e) => {
      const i = e.target.closest('button[data-index]')?.dataset.index;
      if (i === undefined) return;
      this.#files.splice(Number(i), 1);
      this.#renderFiles();
    });
    $('#load-older').addEventListener('click', () => chat.loadOlder(chat.activeId));
    this.#scroller.addEventListener('scroll', () => {
      this.#stickToBottom = this.#distanceFromBottom() < NEAR_BOTTOM_PX;
      if (this.#scroller.scrollTop < NEAR_TOP_PX && chat.activeId) chat.loadOlder(chat.activeId);
    }, { passive: true });
    // Message actions (retry, edit, delete) are delegated from the log.
    this.#list.addEventListener('click', (e) => this.#onAction(e));
  }

  render() {
    const chat = this.#chat;
    const c = chat.active;
    $('#no-conversation').hidden = !!c;
    $('#conversation-view').hidden = !c;
    if (!c) {
      this.#shownId = null;
      return;
    }
    const switched = this.#shownId !== c.id;
    if (switched) {
      this.#shownId = c.id;
      this.#stickToBottom = true;
      this.#cancelEdit();
      this.#input.value = '';
      this.#files = [];
      this.#renderFiles();
      this.#autosize();
    }

    // Header
    const title = chat.title(c);
    $('#conv-title').textContent = title;
    const avatar = $('#conv-avatar');
    const peer = chat.peer(c);
    avatar.textContent = initial(title);
    avatar.style.setProperty('--hue', hue(peer?.user_id ?? c.id));
    // A deleted account shows with an empty username; the server refuses messages to it.
    const gone = !!peer && !peer.username;
    $('#conv-subtitle').textContent = gone
      ? 'Account deleted'
      : peer ? presenceText(chat.presence.get(peer.user_id)) : groupText(c.members.length, chat.online.get(c.id));
    this.#input.disabled = gone;
    $('#send-button').disabled = gone;
    $('#composer-file').disabled = gone;
    this.#input.placeholder = gone ? 'This account was deleted' : 'Write a message…';

    // Messages: keep the reading position when older ones are prepended, follow the
    // bottom when the user is there.
    const prevHeight = this.#scroller.scrollHeight;
    const prevTop = this.#scroller.scrollTop;
    const firstBefore = this.#list.firstElementChild?.dataset.key;
    this.#renderMessages(c);
    const firstAfter = this.#list.firstElementChild?.dataset.key;
    if (this.#stickToBottom) {
      this.#scroller.scrollTop = this.#scroller.scrollHeight;
    } else if (firstBefore && firstAfter !== firstBefore) {
      this.#scroller.scrollTop = prevTop + (this.#scroller.scrollHeight - prevHeight);
    }

    $('#load-older').hidden = !c.hasMoreBefore;
    $('#load-older').textContent = c.loadingOlder ? 'Loading…' : 'Load earlier messages';
    $('#history-start').hidden = !c.loaded || c.hasMoreBefore || c.messages.size === 0;

    const typing = chat.typingNames(c);
    $('#typing-indicator').textContent = typing.length
      ? `${typing.join(', ')} ${typing.length > 1 ? 'are' : 'is'} typing…` : '';

    if (switched && matchMedia('(min-width: 900px)').matches) this.#input.focus();
  }

  #renderMessages(c) {
    const chat = this.#chat;
    const sent = [...c.messages.values()].sort((a, b) => a.seq - b.seq);
    const items = [];
    let day = '';
    for (const m of sent) {
      const label = dayLabel(m.created_at);
      if (label !== day) items.push({ kind: 'day', label, key: `d${m.seq}` });
      day = label;
      items.push({ kind: 'sent', m, key: `s${m.seq}` });
    }
    for (const p of c.pending.values()) items.push({ kind: 'pending', p, key: `p${p.client_msg_id}` });
    const group = c.type === 'group';
    reconcile(this.#list, items, (it) => it.key, (it) => {
      if (it.kind === 'day') {
        return [it.label, () => h('li', { class: 'day', role: 'separator' }, h('span', {}, it.label))];
      }
      if (it.kind === 'pending') {
        const p = it.p;
        const files = (p.files ?? []).map((f) => ({ name: f.file.name, size: f.file.size }));
        return [JSON.stringify(['p', p.body, p.state, p.error?.code, files.length]), () => this.#bubble({
          own: true, body: p.body, time: p.created_at, status: p.state === 'failed' ? 'failed' : 'pending',
          error: p.error, clientMsgId: p.client_msg_id, files,
        })];
      }
      const m = it.m;
      const own = m.sender_id === chat.me.id;
      const seen = own ? chat.seenBy(c, m.seq).length : 0;
      const status = own ? (seen ? 'seen' : 'sent') : null;
      const sender = group && !own ? chat.senderName(c, m.sender_id) : null;
      const sig = JSON.stringify(['s', m.id, m.body, m.edited_at, m.deleted_at, seen, sender, m.attachments?.length ?? 0]);
      return [sig, () => this.#bubble({
        own, body: m.body, time: m.created_at, status, sender, messageId: m.id, seq: m.seq,
        seenBy: group && seen ? seen : 0,
        edited: !!m.edited_at, deleted: !!m.deleted_at, attachments: m.attachments ?? [],
      })];
    });
  }

  #bubble({ own, body, time, status, error, sender, messageId, seq, clientMsgId, edited, deleted, seenBy, attachments = [], files = [] }) {
    const statusText = seenBy ? `Seen by ${seenBy}` : { pending: 'Sending…', sent: 'Sent', seen: 'Seen', failed: 'Failed' }[status];
    const actions = own && messageId && !deleted;
    return h('li', {
      class: `msg ${own ? 'own' : 'theirs'}${deleted ? ' deleted' : ''}${status === 'failed' ? ' failed' : ''}`,
      // Own messages take focus (a tap on a phone) to reveal their actions.
      tabindex: actions ? '0' : null,
      'data-testid': 'message',
      dataset: { seq: seq ?? '', status: status ?? '', messageId: messageId ?? '', clientMsgId: clientMsgId ?? '' },
    },
    h('div', { class: 'bubble' },
      sender ? h('div', { class: 'sender', style: `--hue:${hue(sender)}` }, sender) : null,
      deleted ? null : attachments.map((a) => this.#attachment(a)),
      deleted ? null : files.map((f) => h('span', { class: 'file-chip uploading', 'data-testid': 'attachment-file' },
        h('span', { class: 'file-name' }, f.name), h('span', { class: 'file-size' }, byteSize(f.size)))),
      deleted || body ? h('div', { class: 'body', 'data-testid': 'message-body' }, deleted ? 'Message deleted' : body) : null,
      h('div', { class: 'meta' },
        edited && !deleted ? h('span', { class: 'edited' }, 'edited') : null,
        h('time', { datetime: time }, clockTime(time)),
        statusText && !deleted ? h('span', { class: `status status-${status}`, 'data-testid': 'message-status' }, statusText) : null)),
    status === 'failed' ? h('div', { class: 'msg-actions visible' },
      h('span', { class: 'error' }, errorText(error)),
      h('button', { type: 'button', class: 'link', dataset: { action: 'retry' } }, 'Retry'),
      h('button', { type: 'button', class: 'link', dataset: { action: 'discard' } }, 'Discard')) : null,
    actions ? h('div', { class: 'msg-actions' },
      h('button', { type: 'button', class: 'link', dataset: { action: 'edit' }, 'aria-label': 'Edit message' }, 'Edit'),
      h('button', { type: 'button', class: 'link', dataset: { action: 'delete' }, 'aria-label': 'Delete message' }, 'Delete')) : null);
  }

  // #attachment is an image preview (its thumbnail; a click opens the file) or a file chip
  // (a click downloads it). Links are fetched when shown and again once expired.
  #attachment(a) {
    const chat = this.#chat;
    const open = async (e) => {
      e.preventDefault();
      try {
        const l = await chat.link(a.id);
        const go = h('a', { href: l.url, target: '_blank', rel: 'noopener noreferrer' });
        if (!a.thumbnail) go.setAttribute('download', a.name);
        go.click();
      } catch (err) {
        e.target.closest('.attachment, .file-chip')?.setAttribute('title', errorText(err));
      }
    };
    if (a.thumbnail) {
      const w = Math.min(a.width, 240);
      const img = h('img', {
        alt: a.name, width: w, height: Math.max(1, Math.round((a.height * w) / a.width)), loading: 'lazy',
        'data-testid': 'attachment-image',
      });
      chat.link(a.id).then((l) => { img.src = l.thumbnail_url; }, () => { img.alt = `${a.name} (unavailable)`; });
      return h('a', { class: 'attachment', href: '#', title: a.name, onclick: open }, img);
    }
    return h('a', { class: 'file-chip', href: '#', title: `Download ${a.name}`, onclick: open, 'data-testid': 'attachment-file' },
      h('span', { class: 'file-name' }, a.name), h('span', { class: 'file-size' }, byteSize(a.size)));
  }

  #renderFiles() {
    const list = $('#composer-files');
    list.hidden = this.#files.length === 0;
    list.replaceChildren(...this.#files.map((f, i) => h('li', { class: 'file-chip', 'data-testid': 'composer-file' },
      h('span', { class: 'file-name' }, f.name), h('span', { class: 'file-size' }, byteSize(f.size)),
      h('button', { type: 'button', class: 'link', dataset: { index: i }, 'aria-label': `Remove ${f.name}` }, '×'))));
  }

  async #onAction(e) {
    const button = e.target.closest('button[data-action]');
    if (!button) return;
    const li = button.closest('li.msg');
    const chat = this.#chat;
    const id = chat.activeId;
    const { messageId, clientMsgId } = li.dataset;
    switch (button.dataset.action) {
      case 'retry': return chat.retry(id, clientMsgId);
      case 'discard': return chat.discard(id, clientMsgId);
      case 'edit': {
        const m = [...chat.active.messages.values()].find((x) => x.id === messageId);
        if (!m) return;
        this.#editing = { conversationId: id, messageId };
        this.#editBanner('Editing message');
        $('#edit-banner').hidden = false;
        $('#send-button').textContent = 'Save';
        this.#input.value = m.body;
        this.#autosize();
        this.#input.focus();
        return;
      }
      case 'delete':
        try {
          await chat.remove(id, messageId);
        } catch (err) {
          this.#flash(li, errorText(err));
        }
    }
  }

  async #submit() {
    const chat = this.#chat;
    const body = this.#input.value;
    if ((!body.trim() && (!this.#files.length || this.#editing)) || !chat.activeId) return;
    if (this.#editing) {
      const { conversationId, messageId } = this.#editing;
      try {
        await chat.edit(conversationId, messageId, body);
        this.#cancelEdit();
      } catch (err) {
        this.#editBanner(`Editing message — ${errorText(err)}`);
      }
      return;
    }
    this.#input.value = '';
    this.#autosize();
    this.#stickToBottom = true;
    const files = this.#files;
    this.#files = [];
    this.#renderFiles();
    chat.send(chat.activeId, body, files);
  }

  #cancelEdit() {
    if (!this.#editing) return;
    this.#editing = null;
    $('#edit-banner').hidden = true;
    $('#send-button').textContent = 'Send';
    this.#input.value = '';
    this.#autosize();
  }

  #editBanner(text) {
    $('#edit-banner span').textContent = text;
  }

  #flash(li, text) {
    li.append(h('div', { class: 'msg-actions visible' }, h('span', { class: 'error', role: 'alert' }, text)));
  }

  #autosize() {
    this.#input.style.height = 'auto';
    // A hidden pane (the phone layout before it shows the conversation) measures 0: keep the
    // natural height then rather than fixing the box at height 0.
    if (this.#input.scrollHeight === 0) return;
    // border-box: the height includes the borders, which scrollHeight leaves out.
    const borders = this.#input.offsetHeight - this.#input.clientHeight;
    this.#input.style.height = `${Math.min(this.#input.scrollHeight + borders, 160)}px`;
  }

  #distanceFromBottom() {
    const s = this.#scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight;
  }
}
