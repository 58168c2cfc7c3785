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

const REDACT = { mode: 'redact', secrets: new Set<string>() } as const;
const KEEP = { mode: 'keep', secrets: new Set<string>() } as const;

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
  for (const [target, expected] of cases) assert.equal(loggedPath(target, REDACT), expected, target);
});

test('with keep, the target is logged as received', () => {
  assert.equal(loggedPath('/echo?token=SECRET', KEEP), '/echo?token=SECRET');
});

test('long values are cut and say how much was left out', () => {
  const long = 'x'.repeat(MAX_LOGGED_LENGTH + 100);
  assert.equal(capped(long), `${'x'.repeat(MAX_LOGGED_LENGTH)}…(+100)`);
  assert.equal(capped('short'), 'short');
  assert.equal(loggedHeader(['first', 'second']), 'first');
  assert.equal(loggedHeader(undefined), undefined);
  assert.ok((loggedPath(`/p?${'a=b&'.repeat(500)}`, REDACT).length ?? 0) < MAX_LOGGED_LENGTH + 20);
});

test('token parameters are redacted even when the query is kept', () => {
  const keep = { mode: 'keep', secrets: new Set(['access_token']) } as const;
  assert.equal(loggedPath('/ws?room=1&access_token=SECRET', keep), '/ws?room=1&access_token=[redacted]');
  assert.equal(loggedPath('/ws?room=1&access%5Ftoken=SECRET', keep), '/ws?room=1&access%5Ftoken=[redacted]');
});
