// mop reference web client: wiring. Each tab signs in on its own (two windows can be two
// people), and one page load serves at most one signed-in session: when the session ends
// (logout, revocation) the page reloads into the login view, so no state of the previous
// user survives in memory.
//
//   Session  — tokens, refresh (session.js)
//   Api      — REST, api-rest (api.js)
//   Realtime — Socket.IO, api-ws (realtime.js)
//   Chat     — conversations and messages (chat.js)
//   views/   — DOM (account.js: name, picture, devices, password, deletion)

import { Api } from './api.js';
import { Chat } from './chat.js';
import { $ } from './dom.js';
import { Realtime } from './realtime.js';
import { Session } from './session.js';
import { AccountDialog } from './views/account.js';
import { ConversationView } from './views/conversation.js';
import { LoginView } from './views/login.js';
import { NewChatDialog } from './views/newchat.js';
import { Sidebar } from './views/sidebar.js';

const config = window.MOP_CONFIG ?? {};
const apiBase = (config.apiBase ?? location.origin).replace(/\/+$/, '');
const wsBase = (config.wsBase ?? location.origin).replace(/\/+$/, '');
const ENDED_KEY = 'mop.ended'; // why the last session ended, shown after the reload
const LOGOUT_WAIT_MS = 2_000;

const session = new Session(apiBase);
const api = new Api(apiBase, session);
const realtime = new Realtime(wsBase, session);
const login = new LoginView(api, (auth) => {
  session.start(auth);
  enter();
});
let chat = null;

session.addEventListener('end', (e) => {
  realtime.stop();
  if (chat) {
    sessionStorage.setItem(ENDED_KEY, e.detail.reason);
    location.replace(location.pathname + location.search); // fresh page, login view
  } else {
    login.show(e.detail.reason);
  }
});

if (config.testHooks) window.mop = { session, api, realtime, get chat() { return chat; } };

if (session.signedIn) {
  enter();
} else {
  const reason = sessionStorage.getItem(ENDED_KEY);
  sessionStorage.removeItem(ENDED_KEY);
  login.show(reason);
}

function enter() {
  if (chat) return;
  chat = new Chat(api, realtime, session.user);
  const sidebar = new Sidebar(chat, { onLogout: logout, onNewChat: () => dialog.open() });
  const conversation = new ConversationView(chat);
  const dialog = new NewChatDialog(api, chat, (id) => { location.hash = `#/c/${encodeURIComponent(id)}`; });
  const account = new AccountDialog(api, {
    me: () => chat.me,
    link: (id) => chat.link(id),
    onProfile: (user) => {
      session.setUser(user);
      chat.me.display_name = user.display_name;
      chat.me.avatar_id = user.avatar_id; // absent when the picture was removed
      sidebar.showMe(user);
    },
    onDeleted: () => {
      realtime.stop();
      session.end('account_deleted');
    },
  });
  $('#account-button').addEventListener('click', () => account.open());

  let queued = false;
  const render = () => {
    queued = false;
    // The pane first: the conversation view measures its composer, which a hidden pane cannot.
    $('#chat-screen').dataset.pane = chat.activeId ? 'conversation' : 'list';
    sidebar.render();
    conversation.render();
    const unread = chat.sorted().reduce((n, c) => n + (c.id === chat.activeId ? 0 : c.unread_count), 0);
    document.title = unread ? `(${unread}) mop` : 'mop';
  };
  chat.addEventListener('change', () => {
    if (!queued) {
      queued = true;
      queueMicrotask(render);
    }
  });
  realtime.addEventListener('state', (e) => sidebar.setConnection(e.detail.state));
  window.addEventListener('focus', () => chat.markRead());

  const route = () => {
    const m = location.hash.match(/^#\/c\/(.+)$/);
    const op = m ? chat.open(decodeURIComponent(m[1])) : chat.close();
    Promise.resolve(op).catch(() => {}); // failed loads are retried by the next sync
  };
  window.addEventListener('hashchange', route);
  $('#back-button').addEventListener('click', () => { location.hash = '#/'; });

  $('#login-screen').hidden = true;
  $('#chat-screen').hidden = false;
  sidebar.setConnection(realtime.state);
  realtime.start();
  chat.sync().catch(() => {}).finally(route); // the socket's connect syncs again
  render();
}

async function logout() {
  const token = session.accessToken;
  realtime.stop();
  // Revoke on the server (which also disconnects this session's other sockets), but do
  // not keep the user waiting on a dead network: the local session ends regardless.
  const revoke = api.logout(token).catch(() => {});
  await Promise.race([revoke, new Promise((r) => setTimeout(r, LOGOUT_WAIT_MS))]);
  session.end('logout');
}
