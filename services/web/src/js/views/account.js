// Account dialog: the display name and picture (an image uploaded like a composer attachment,
// then set as avatar_id; the server refuses anything but an image), the signed-in devices (sessions) with "Sign out" for the others, password
// change (which signs out every other device) and account deletion, each re-authenticated
// by the server as docs/api.md says.

import { $, h } from '../dom.js';
import { errorText, shortTime } from '../format.js';
import { paintAvatar } from './avatar.js';

export class AccountDialog {
  #api;
  #me;
  #link;
  #onProfile;
  #onDeleted;
  #dialog = $('#account-dialog');

  constructor(api, { me, link, onProfile, onDeleted }) {
    this.#api = api;
    this.#me = me;
    this.#link = link;
    this.#onProfile = onProfile;
    this.#onDeleted = onDeleted;
    $('#account-close').addEventListener('click', () => this.#dialog.close());
    $('#profile-form').addEventListener('submit', (e) => {
      e.preventDefault();
      this.#rename(e.target);
    });
    $('#avatar-choose').addEventListener('click', () => $('#avatar-file').click());
    $('#avatar-file').addEventListener('change', (e) => {
      const [file] = e.target.files;
      e.target.value = ''; // the same file can be picked again after a refusal
      if (file) this.#setPicture(file);
    });
    $('#avatar-remove').addEventListener('click', () => this.#setPicture(null));
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
    this.#showPicture(this.#me());
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
      this.#onProfile(user);
      this.#say('Name saved.', '');
    } catch (err) {
      this.#say('', errorText(err));
    }
  }

  #showPicture(user) {
    paintAvatar($('#account-avatar'), user, this.#link, 'Your picture');
    $('#avatar-remove').hidden = !user.avatar_id;
  }

  // #setPicture uploads file and makes it the avatar, or removes the avatar (file null).
  // A refusal (not an image, too large) shows the server's reason; the old picture stays.
  async #setPicture(file) {
    const buttons = [$('#avatar-choose'), $('#avatar-remove')];
    for (const b of buttons) b.disabled = true;
    this.#say(file ? 'Uploading the picture…' : '', '');
    try {
      const id = file ? (await this.#api.upload(file)).id : '';
      const user = await this.#api.setAvatar(id);
      this.#onProfile(user);
      this.#showPicture(user);
      this.#say(file ? 'Picture saved.' : 'Picture removed.', '');
    } catch (err) {
      this.#say('', errorText(err));
    } finally {
      for (const b of buttons) b.disabled = false;
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
