// Formatting of times, names and the messages shown to the user.

// `hour: 'numeric'`: the locale's own clock ("5:29 AM" in en-US, "05:29" where 24-hour
// times keep the zero); '2-digit' would force "05:29 AM".
const timeFormats = new Map();
function timeFmt(locale) {
  let f = timeFormats.get(locale);
  if (!f) timeFormats.set(locale, f = new Intl.DateTimeFormat(locale, { hour: 'numeric', minute: '2-digit' }));
  return f;
}
const dayFmt = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric' });

export function shortTime(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  return sameDay(d, new Date()) ? timeFmt().format(d) : dayFmt.format(d);
}

// clockTime is the time of day of a timestamp in the user's locale (or the one given).
export function clockTime(iso, locale = undefined) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? '' : timeFmt(locale).format(d);
}

const longDayFmt = new Intl.DateTimeFormat(undefined, { weekday: 'short', month: 'short', day: 'numeric' });

// dayLabel names the day of a timestamp for the separators in the message log.
export function dayLabel(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  const today = new Date();
  if (sameDay(d, today)) return 'Today';
  if (sameDay(d, new Date(today.getFullYear(), today.getMonth(), today.getDate() - 1))) return 'Yesterday';
  return longDayFmt.format(d);
}

function sameDay(a, b) {
  return a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() && a.getDate() === b.getDate();
}

export function initial(name) {
  return (name || '?').trim().charAt(0).toUpperCase() || '?';
}

// hue gives each person a stable avatar colour.
export function hue(id) {
  let x = 0;
  for (const ch of String(id)) x = (x * 31 + ch.charCodeAt(0)) >>> 0;
  return x % 360;
}

export function presenceText(p) {
  if (!p) return '';
  if (p.online) return 'online';
  return p.last_seen ? `last seen ${shortTime(p.last_seen)}` : 'offline';
}

// groupText is a group's subtitle: its size and, once asked (presence.count), how many
// of the members you may see are online.
export function groupText(members, online) {
  const size = `${members} member${members === 1 ? '' : 's'}`;
  return online === undefined ? size : `${size}, ${online} online`;
}

// Why the user is looking at the login page.
const ENDED = {
  logout: 'You have signed out.',
  session_revoked: 'Your session has ended (signed out on another device, or revoked). Please sign in again.',
  refresh_reused: 'For your security your session was ended: its credentials were used twice. Please sign in again.',
  refresh_invalid: 'Your session has expired. Please sign in again.',
  token_invalid: 'Your session is no longer valid. Please sign in again.',
  token_missing: 'Please sign in again.',
  signed_out_elsewhere: 'You were signed out in another tab.',
  account_deleted: 'Your account has been deleted.',
};

export function endedMessage(reason) {
  return ENDED[reason] ?? 'Your session has ended. Please sign in again.';
}

// errorText turns an ApiError or RealtimeError into a sentence for the user.
export function errorText(err) {
  if (!err) return '';
  if (err.code === 'network' || err.code === 'disconnected' || err.code === 'timeout') return 'No connection';
  if (err.code === 'rate_limited') return 'Too many requests, wait a moment';
  if (err.code === 'invalid_input') {
    const fields = err.details?.fields;
    if (fields && Object.keys(fields).length) return Object.entries(fields).map(([k, v]) => `${k.replace('_', ' ')}: ${v}`).join('; ');
  }
  return err.message || err.code || 'Something went wrong';
}

// byteSize is a file size for people: 512 B, 14 KB, 3.2 MB.
export function byteSize(n) {
  if (!(n >= 0)) return '';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${Math.round(n / 1024)} KB`;
  return `${(n / (1024 * 1024)).toFixed(1)} MB`;
}
