// REST client for api-rest (docs/api.md, base path /api/v1).
//
// Every authenticated call gets a token valid for a little while longer (refreshing first if
// needed) and, if the server still answers 401 token_expired (clock trouble, a sleeping
// tab), refreshes and retries exactly once. 401 session_revoked ends the session.

import { ApiError, requestJSON } from './http.js';

export class Api {
  #base;
  #origin;
  #session;

  constructor(apiBase, session) {
    this.#origin = apiBase.replace(/\/+$/, '');
    this.#base = `${this.#origin}/api/v1`;
    this.#session = session;
  }

  // resolve turns a URL the API answered relative to its origin (an attachment link) into
  // one the page can load.
  resolve(url) { return url ? new URL(url, `${this.#origin}/`).href : url; }

  async #call(method, path, body, { auth = true, query } = {}) {
    let url = this.#base + path;
    if (query) {
      const qs = new URLSearchParams();
      for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null) qs.set(k, v);
      if ([...qs].length) url += `?${qs}`;
    }
    if (!auth) return requestJSON(method, url, { body });
    let token = await this.#session.validToken();
    for (let attempt = 0; ; attempt++) {
      try {
        return await requestJSON(method, url, { body, token });
      } catch (err) {
        if (!(err instanceof ApiError) || err.status !== 401) throw err;
        if (err.code === 'token_expired' && attempt === 0) {
          await this.#session.refresh();
          token = this.#session.accessToken;
          continue;
        }
        if (err.code !== 'token_expired') this.#session.end(err.code); // session_revoked, ...
        throw err;
      }
    }
  }

  // Accounts
  register(username, password, displayName) {
    const body = { username, password };
    if (displayName) body.display_name = displayName;
    return this.#call('POST', '/auth/register', body, { auth: false });
  }
  login(username, password) { return this.#call('POST', '/auth/login', { username, password }, { auth: false }); }
  // logout revokes the session on the server. It takes the token explicitly: the app has
  // already forgotten it locally, so a failure here cannot leave the user signed in.
  logout(token) { return requestJSON('POST', `${this.#base}/auth/logout`, { token }); }
  me() { return this.#call('GET', '/users/me'); }
  // Account lifecycle (docs/api.md): one's sessions, password, deletion.
  async sessions() { return (await this.#call('GET', '/users/me/sessions')).sessions; }
  revokeSession(id) { return this.#call('DELETE', `/users/me/sessions/${encodeURIComponent(id)}`); }
  changePassword(currentPassword, newPassword) {
    return this.#call('POST', '/users/me/password', { current_password: currentPassword, new_password: newPassword });
  }
  deleteAccount(password) { return this.#call('DELETE', '/users/me', { password }); }
  updateProfile(displayName) { return this.#call('PATCH', '/users/me', { display_name: displayName }); }
  setAvatar(attachmentId) { return this.#call('PATCH', '/users/me', { avatar_id: attachmentId }); }

  // Attachments (docs/api.md): upload a File, then send its id with a message; links are
  // short-lived and need no token (an <img> can load them).
  upload(file) {
    const form = new FormData();
    form.append('file', file, file.name);
    return this.#call('POST', '/attachments', form);
  }
  attachmentLink(id) { return this.#call('GET', `/attachments/${encodeURIComponent(id)}`); }
  user(id) { return this.#call('GET', `/users/${encodeURIComponent(id)}`); }
  async searchUsers(q, limit = 20) {
    return (await this.#call('GET', '/users', undefined, { query: { q, limit } })).users;
  }

  // Conversations
  async conversations() { return (await this.#call('GET', '/conversations')).conversations; }
  conversation(id) { return this.#call('GET', `/conversations/${encodeURIComponent(id)}`); }
  createConversation(type, memberIds, title) {
    const body = { type, member_ids: memberIds };
    if (title) body.title = title;
    return this.#call('POST', '/conversations', body);
  }

  // Messages. history({after}) / history({before}) / history({}) for the latest page.
  history(conversationId, { after, before, limit = 50 } = {}) {
    return this.#call('GET', `/conversations/${encodeURIComponent(conversationId)}/messages`, undefined,
      { query: { after_seq: after, before_seq: before, limit } });
  }
  send(conversationId, body, clientMsgId, attachmentIds) {
    const msg = { body, client_msg_id: clientMsgId };
    if (attachmentIds?.length) msg.attachment_ids = attachmentIds;
    return this.#call('POST', `/conversations/${encodeURIComponent(conversationId)}/messages`, msg);
  }
  edit(conversationId, messageId, body) {
    return this.#call('PATCH', `/conversations/${encodeURIComponent(conversationId)}/messages/${encodeURIComponent(messageId)}`, { body });
  }
  remove(conversationId, messageId) {
    return this.#call('DELETE', `/conversations/${encodeURIComponent(conversationId)}/messages/${encodeURIComponent(messageId)}`);
  }
  markRead(conversationId, seq) {
    return this.#call('POST', `/conversations/${encodeURIComponent(conversationId)}/read`, { seq });
  }
}
