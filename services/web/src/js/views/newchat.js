// New conversation dialog: search people (GET /users?q=), pick one for a direct
// conversation or several (and a title) for a group.

import { $, h } from '../dom.js';
import { errorText, hue, initial } from '../format.js';

const SEARCH_DELAY_MS = 250;

export class NewChatDialog {
  #api;
  #chat;
  #onCreated;
  #dialog = $('#new-chat-dialog');
  #search = $('#user-search');
  #selected = new Map(); // user id -> User
  #results = [];
  #timer = 0;
  #query = 0; // answers to older queries are ignored

  constructor(api, chat, onCreated) {
    this.#api = api;
    this.#chat = chat;
    this.#onCreated = onCreated;
    this.#search.addEventListener('input', () => {
      clearTimeout(this.#timer);
      this.#timer = setTimeout(() => this.#find(), SEARCH_DELAY_MS);
    });
    $('#new-chat-cancel').addEventListener('click', () => this.#dialog.close());
    $('#new-chat-form').addEventListener('submit', (e) => {
      e.preventDefault();
      this.#create();
    });
  }

  open() {
    this.#selected.clear();
    this.#results = [];
    this.#search.value = '';
    $('#group-title').value = '';
    this.#error('');
    this.#render();
    this.#dialog.showModal();
    this.#search.focus();
  }

  async #find() {
    const q = this.#search.value.trim();
    const n = ++this.#query;
    if (!q) {
      this.#results = [];
      return this.#render();
    }
    try {
      const users = await this.#api.searchUsers(q);
      if (n !== this.#query) return;
      this.#results = users.filter((u) => u.id !== this.#chat.me.id);
      this.#error('');
    } catch (err) {
      if (n === this.#query) this.#error(errorText(err));
    }
    this.#render();
  }

  #toggle(user) {
    if (this.#selected.has(user.id)) this.#selected.delete(user.id);
    else this.#selected.set(user.id, user);
    this.#render();
  }

  #render() {
    const q = this.#search.value.trim();
    $('#user-results-empty').hidden = !q || this.#results.length > 0;
    $('#user-results').replaceChildren(...this.#results.map((u) => {
      const on = this.#selected.has(u.id);
      return h('li', {
        role: 'option', 'aria-selected': String(on), tabindex: '0', class: 'user-option',
        onclick: () => this.#toggle(u),
        onkeydown: (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); this.#toggle(u); } },
      },
      h('span', { class: 'avatar small', style: `--hue:${hue(u.id)}`, 'aria-hidden': 'true' }, initial(u.display_name || u.username)),
      h('span', { class: 'user-names' }, h('strong', {}, u.display_name || u.username), h('span', { class: 'muted' }, ` @${u.username}`)),
      h('span', { class: 'check', 'aria-hidden': 'true' }, on ? '✓' : ''));
    }));
    $('#selected-users').replaceChildren(...[...this.#selected.values()].map((u) => h('button', {
      type: 'button', class: 'chip', 'aria-label': `Remove ${u.display_name || u.username}`, onclick: () => this.#toggle(u),
    }, `${u.display_name || u.username} ×`)));
    const n = this.#selected.size;
    $('#group-title-field').hidden = n < 2;
    const submit = $('#new-chat-submit');
    submit.disabled = n === 0;
    submit.textContent = n >= 2 ? 'Create group' : 'Start chat';
  }

  async #create() {
    const ids = [...this.#selected.keys()];
    if (!ids.length) return;
    const submit = $('#new-chat-submit');
    submit.disabled = true;
    try {
      const id = ids.length === 1
        ? await this.#chat.create('direct', ids)
        : await this.#chat.create('group', ids, $('#group-title').value.trim());
      this.#dialog.close();
      this.#onCreated(id);
    } catch (err) {
      this.#error(errorText(err));
    } finally {
      submit.disabled = this.#selected.size === 0;
    }
  }

  #error(text) {
    const el = $('#new-chat-error');
    el.textContent = text;
    el.hidden = !text;
  }
}
