// Unit tests of the formatting the user reads (src/js/format.js): times of day per locale.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { clockTime, groupText } from '../src/js/format.js';

// Local times, so the hour is the one shown whatever the machine's time zone.
const at = (h, m) => new Date(2026, 0, 15, h, m).toISOString();
// ICU puts a narrow no-break space before AM/PM; the reader sees a space.
const shown = (s) => s.replace(/\s/gu, ' ');

describe('clockTime', () => {
  const cases = [
    { name: 'en-US morning: no leading zero', locale: 'en-US', iso: at(5, 29), want: '5:29 AM' },
    { name: 'en-US afternoon', locale: 'en-US', iso: at(17, 5), want: '5:05 PM' },
    { name: 'en-US two-digit hour', locale: 'en-US', iso: at(11, 0), want: '11:00 AM' },
    { name: 'de-DE', locale: 'de-DE', iso: at(17, 5), want: '17:05' },
    { name: 'not a time', locale: 'en-US', iso: 'yesterday', want: '' },
  ];
  for (const c of cases) {
    it(c.name, () => assert.equal(shown(clockTime(c.iso, c.locale)), c.want));
  }
});

describe('groupText', () => {
  const cases = [
    { name: 'before the count is known', members: 4, online: undefined, want: '4 members' },
    { name: 'with the count', members: 4, online: 2, want: '4 members, 2 online' },
    { name: 'nobody online', members: 2, online: 0, want: '2 members, 0 online' },
    { name: 'one member', members: 1, online: 1, want: '1 member, 1 online' },
  ];
  for (const c of cases) {
    it(c.name, () => assert.equal(groupText(c.members, c.online), c.want));
  }
});
