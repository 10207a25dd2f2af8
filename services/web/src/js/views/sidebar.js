// Sidebar: who I am (name and picture), the connection state, and the conversation list with presence dots,
// last messages and unread counts.

import { $, h, reconcile } from '../dom.js';
import { hue, initial, shortTime } from '../format.js';
import { paintAvatar } from './avatar.js';

const CONNECTION_LABEL = {
  connecting: 'Connecting…',
  connected: 'Connected',
  reconnecting: 'Reconnecting…',
  offline: 'Offline',
};

export class Sidebar {
  #chat;

  constructor(chat, { onLogout, onNewChat }) {
    this.#chat = chat;
    $('#logout-button').addEventListener('click', onLogout);
    $('#new-chat-button').addEventListener('click', onNewChat);
    this.showMe(chat.me);
  }

  showMe(me) {
    $('#me-name').textContent = me.display_name || me.username;
    paintAvatar($('#me-avatar'), me, (id) => this.#chat.link(id));
  }

  setConnection(state) {
    const el = $('#connection-state');
    el.dataset.state = state;
    el.textContent = CONNECTION_LABEL[state] ?? state;
  }

  render() {
    const chat = this.#chat;
    const list = chat.sorted();
    $('#conversation-empty').hidden = list.length > 0;
    reconcile($('#conversation-list'), list, (c) => c.id, (c) => {
      const title = chat.title(c);
      const peer = chat.peer(c);
      const presence = peer ? chat.presence.get(peer.user_id) : null;
      const last = c.last_message;
      let preview = '';
      if (last) {
        const who = c.type === 'group' || last.sender_id === chat.me.id ? `${chat.senderName(c, last.sender_id)}: ` : '';
        preview = last.deleted_at ? `${who}Message deleted` : who + last.body.replace(/\s+/g, ' ');
      }
      const typing = chat.typingNames(c);
      if (typing.length) preview = `${typing.join(', ')} ${typing.length > 1 ? 'are' : 'is'} typing…`;
      const active = c.id === chat.activeId;
      const unread = active ? 0 : c.unread_count;
      const sig = JSON.stringify([title, presence?.online, preview, last?.created_at, unread, active, !!typing.length]);
      return [sig, () => h('li', { class: 'conv-item' },
        h('a', {
          href: `#/c/${encodeURIComponent(c.id)}`,
          'data-testid': 'conversation-item',
          'aria-current': active ? 'page' : null,
          class: `conv-link${unread ? ' has-unread' : ''}`,
        },
        h('span', { class: 'avatar', style: `--hue:${hue(peer?.user_id ?? c.id)}`, 'aria-hidden': 'true' },
          initial(title),
          peer ? h('span', {
            class: 'dot', 'data-testid': 'presence-dot', dataset: { online: String(!!presence?.online) },
          }) : null),
        h('span', { class: 'conv-text' },
          h('span', { class: 'conv-top' },
            h('span', { class: 'conv-name' }, title),
            h('time', { class: 'conv-time muted' }, shortTime(last?.created_at ?? c.updated_at))),
          h('span', { class: 'conv-bottom' },
            h('span', { class: `conv-preview muted${typing.length ? ' is-typing' : ''}` }, preview || 'No messages yet'),
            unread ? h('span', { class: 'visually-hidden' }, `, ${unread} unread`) : null,
            unread ? h('span', { class: 'badge', 'data-testid': 'unread-count', 'aria-hidden': 'true' }, unread > 99 ? '99+' : String(unread)) : null)))),
      ];
    });
  }
}
