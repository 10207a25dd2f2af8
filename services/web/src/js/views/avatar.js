// A person's avatar: their picture (the thumbnail of avatar_id, loaded through a signed link)
// when they have one, else their initial on a colour of their own.

import { h } from '../dom.js';
import { hue, initial } from '../format.js';

// paintAvatar fills an .avatar element for user. link(id) resolves an attachment's signed
// links (Chat.link). The initial shows until the picture arrives, and stays if it fails.
export function paintAvatar(el, user, link, alt = '') {
  const id = user.avatar_id ?? '';
  el.style.setProperty('--hue', hue(user.id));
  el.dataset.avatarId = id;
  el.replaceChildren(initial(user.display_name || user.username));
  if (!id) return;
  link(id).then((l) => {
    // A later paint (a new picture, or none) wins over a slow link.
    if (el.dataset.avatarId !== id || !l.thumbnail_url) return;
    el.replaceChildren(h('img', { src: l.thumbnail_url, alt, 'data-testid': 'avatar-image' }));
  }, () => {});
}
