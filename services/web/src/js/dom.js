// Tiny DOM helpers: the client has no framework, so views build elements with h() and keep
// long lists (conversations, messages) in place with reconcile().

// h('li', {class: 'x', dataset: {seq: 1}, onclick}, child, 'text', [more]) builds an element.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'style') el.style.cssText = v; // CSSOM: allowed by a CSP without 'unsafe-inline'
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : v);
  }
  el.append(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
  return el;
}

export const $ = (sel, root = document) => root.querySelector(sel);

// reconcile makes parent's children one element per item, in order, reusing the element
// of each key. render(item) returns [signature, build]; an element whose signature did
// not change is left alone (keeps focus and selection), otherwise build() replaces it.
export function reconcile(parent, items, keyOf, render) {
  const old = new Map();
  for (const el of parent.children) old.set(el.dataset.key, el);
  let prev = null;
  for (const item of items) {
    const key = String(keyOf(item));
    const [sig, build] = render(item);
    let el = old.get(key);
    old.delete(key);
    if (!el || el.dataset.sig !== sig) {
      const fresh = build();
      fresh.dataset.key = key;
      fresh.dataset.sig = sig;
      if (el) el.replaceWith(fresh);
      el = fresh;
    }
    const want = prev ? prev.nextElementSibling : parent.firstElementChild;
    if (el !== want) parent.insertBefore(el, want);
    prev = el;
  }
  for (const el of old.values()) el.remove();
}
