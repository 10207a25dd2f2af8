// Login view: sign in or create an account; shows why the user landed here.

import { $ } from '../dom.js';
import { endedMessage, errorText } from '../format.js';

export class LoginView {
  #api;
  #onAuth;
  #mode = 'login'; // or 'register'
  #form = $('#login-form');

  constructor(api, onAuth) {
    this.#api = api;
    this.#onAuth = onAuth;
    $('#login-switch').addEventListener('click', () => this.#setMode(this.#mode === 'login' ? 'register' : 'login'));
    this.#form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.#submit();
    });
  }

  show(reason) {
    $('#chat-screen').hidden = true;
    $('#login-screen').hidden = false;
    const notice = $('#login-notice');
    notice.hidden = !reason;
    notice.textContent = reason ? endedMessage(reason) : '';
    this.#error('');
    this.#form.elements.password.value = '';
    this.#form.elements.username.focus();
  }

  #setMode(mode) {
    this.#mode = mode;
    const reg = mode === 'register';
    $('#display-name-field').hidden = !reg;
    $('#login-subtitle').textContent = reg ? 'Create your account' : 'Sign in to chat';
    $('#login-submit').textContent = reg ? 'Create account' : 'Sign in';
    $('#login-switch-text').textContent = reg ? 'Already have an account?' : 'No account yet?';
    $('#login-switch').textContent = reg ? 'Sign in' : 'Create account';
    this.#form.elements.password.autocomplete = reg ? 'new-password' : 'current-password';
    this.#error('');
  }

  async #submit() {
    const f = this.#form.elements;
    const username = f.username.value.trim().toLowerCase();
    const password = f.password.value;
    if (username.length < 3) return this.#error('Username: at least 3 characters (a-z, 0-9, _ . -)');
    if (password.length < 8) return this.#error('Password: at least 8 characters');
    const button = $('#login-submit');
    button.disabled = true;
    this.#error('');
    try {
      const auth = this.#mode === 'register'
        ? await this.#api.register(username, password, f.display_name.value.trim())
        : await this.#api.login(username, password);
      f.password.value = '';
      $('#login-notice').hidden = true;
      this.#onAuth(auth);
    } catch (err) {
      this.#error(this.#explain(err));
    } finally {
      button.disabled = false;
    }
  }

  #explain(err) {
    if (err.code === 'invalid_credentials') return 'Wrong username or password.';
    if (err.code === 'conflict' || err.code === 'username_taken') return 'That username is taken.';
    if (err.code === 'network') return 'Cannot reach the server. Check your connection.';
    if (err.code === 'rate_limited') return `Too many attempts. Try again in ${err.retryAfter || 'a few'} seconds.`;
    return errorText(err);
  }

  #error(text) {
    const el = $('#login-error');
    el.textContent = text;
    el.hidden = !text;
  }
}
