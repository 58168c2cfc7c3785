/**
 * Client-chosen text made fit for logs: query values redacted with names kept (or kept whole on
 * request), and every value capped in length with a marker of what was cut.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  capped,
  loggedHeader,
  loggedPath,
  MAX_LOGGED_LENGTH,
} from '../../../src/observability/log-fields.ts';

test('query values are redacted, names, bare flags and empty values kept', () => {
  const cases: [string, string][] = [
    ['/echo', '/echo'],
    ['/echo?room=42&token=SECRET', '/echo?room=[redacted]&token=[redacted]'],
    ['/echo?debug&x=', '/echo?debug&x='],
    ['/echo?', '/echo?'],
    ['/a?b=c=d', '/a?b=[redacted]'],
    [
      '/socket.io/?EIO=4&transport=polling&sid=abc',
      '/socket.io/?EIO=[redacted]&transport=[redacted]&sid=[redacted]',
    ],
  ];
  for (const [target, expected] of cases) assert.equal(loggedPath(target, 'redact'), expected, target);
});

test('with keep, the target is logged as received', () => {
  assert.equal(loggedPath('/echo?token=SECRET', 'keep'), '/echo?token=SECRET');
});

test('long values are cut and say how much was left out', () => {
  const long = 'x'.repeat(MAX_LOGGED_LENGTH + 100);
  assert.equal(capped(long), `${'x'.repeat(MAX_LOGGED_LENGTH)}…(+100)`);
  assert.equal(capped('short'), 'short');
  assert.equal(loggedHeader(['first', 'second']), 'first');
  assert.equal(loggedHeader(undefined), undefined);
  assert.ok((loggedPath(`/p?${'a=b&'.repeat(500)}`, 'redact').length ?? 0) < MAX_LOGGED_LENGTH + 20);
});
