// Unit tests of the formatting the user reads (src/js/format.js): times of day per locale.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { clockTime } from '../src/js/format.js';

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
