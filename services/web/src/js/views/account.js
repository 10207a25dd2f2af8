// Account dialog: the display name, the signed-in devices (sessions) with "Sign out" for the others, password
// change (which signs out every other device) and account deletion, each re-authenticated
// by the server as docs/api.md says.

import { $, h } from '../dom.js';
import { errorText, shortTime } from '../format.js';

export class AccountDialog {
  #api;
  #me;
  #onRenamed;
  #onDeleted;
  #dialog = $('#account-dialog');

  constructor(api, { me, onRenamed, onDeleted }) {
    this.#api = api;
    this.#me = me;
    this.#onRenamed = onRenamed;
    this.#onDeleted = onDeleted;
    $('#account-close').addEventListener('click', () => this.#dialog.close());
    $('#profile-form').addEventListener('submit', (e) => {
      e.preventDefault();
      this.#rename(e.target);
    });
    $('#password-form').addEventListener('submit', (e) => {
      e.preventDefault();
      this.#changePassword(e.target);
    });
    $('#delete-form').addEventListener('submit', (e) => {
      e.preventDefault();
      this.#delete(e.target);
    });
  }

  open() {
    this.#say('', '');
    for (const f of ['#password-form', '#delete-form']) $(f).reset();
    $('#profile-form').elements.display_name.value = this.#me().display_name;
    this.#dialog.showModal();
    this.#loadSessions();
  }

  async #loadSessions() {
    try {
      const sessions = await this.#api.sessions();
      $('#session-list').replaceChildren(...sessions.map((s) => {
        const label = s.user_agent || 'Unknown device';
        return h('li', { class: 'user-option', 'data-testid': 'session' },
          h('span', { class: 'user-names' }, h('strong', {}, label),
            h('span', { class: 'muted' }, s.current ? ' · this device' : ` · last used ${shortTime(s.last_used_at)}`)),
          s.current ? null : h('button', {
            type: 'button', class: 'link', 'aria-label': `Sign out ${label}`, onclick: () => this.#revoke(s.id),
          }, 'Sign out'));
      }));
    } catch (err) {
      this.#say('', errorText(err));
    }
  }

  async #revoke(id) {
    try {
      await this.#api.revokeSession(id);
      this.#say('The device was signed out.', '');
    } catch (err) {
      this.#say('', errorText(err));
    }
    this.#loadSessions();
  }

  async #rename(form) {
    try {
      const user = await this.#api.updateProfile(form.elements.display_name.value);
      this.#onRenamed(user);
      this.#say('Name saved.', '');
    } catch (err) {
      this.#say('', errorText(err));
    }
  }

  async #changePassword(form) {
    try {
      await this.#api.changePassword(form.elements.current.value, form.elements.next.value);
      form.reset();
      this.#say('Password changed. Every other device was signed out.', '');
      this.#loadSessions();
    } catch (err) {
      this.#say('', wrongPassword(err) ? 'The current password is wrong.' : errorText(err));
    }
  }

  async #delete(form) {
    try {
      await this.#api.deleteAccount(form.elements.password.value);
    } catch (err) {
      this.#say('', wrongPassword(err) ? 'The password is wrong.' : errorText(err));
      return;
    }
    this.#dialog.close();
    this.#onDeleted();
  }

  #say(status, error) {
    $('#account-status').textContent = status;
    $('#account-status').hidden = !status;
    $('#account-error').textContent = error;
    $('#account-error').hidden = !error;
  }
}

function wrongPassword(err) {
  return err?.status === 403 && err.code === 'invalid_credentials';
}
