/**
 * Finding the body of a backend's answer by its framing: a length stops at that many bytes, a
 * close-delimited body ends with the connection, chunked coding is decoded across any split of
 * the bytes (sizes, extensions, trailers), and malformed chunking throws.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BodyDecoder } from '../../../src/upstream/body-decoder.ts';
import type { BodyFraming } from '../../../src/upstream/response-head.ts';

/** Feeds `text` in pieces of `step` bytes; returns the body and whether it completed. */
function decode(framing: BodyFraming, text: string, step = text.length): { body: string; done: boolean } {
  const decoder = new BodyDecoder(framing);
  const bytes = Buffer.from(text, 'latin1');
  const parts: Buffer[] = [];
  for (let at = 0; at < bytes.length; at += step) parts.push(...decoder.push(bytes.subarray(at, at + step)));
  return { body: Buffer.concat(parts).toString('latin1'), done: decoder.done };
}

test('length: exactly that many bytes, done at the last one, extra bytes ignored', () => {
  assert.deepEqual(decode({ kind: 'length', bytes: 5 }, 'hello, more'), { body: 'hello', done: true });
  assert.deepEqual(decode({ kind: 'length', bytes: 5 }, 'hel'), { body: 'hel', done: false });
  assert.equal(new BodyDecoder({ kind: 'length', bytes: 0 }).done, true);
  assert.equal(new BodyDecoder({ kind: 'none' }).done, true);
  const cut = new BodyDecoder({ kind: 'length', bytes: 5 });
  cut.push(Buffer.from('he'));
  assert.equal(cut.end(), false, 'a connection ending early cuts the body short');
});

test('close-delimited: everything until the end of the connection', () => {
  const decoder = new BodyDecoder({ kind: 'close' });
  assert.deepEqual(decoder.push(Buffer.from('abc')).map(String), ['abc']);
  assert.equal(decoder.done, false);
  assert.equal(decoder.end(), true);
});

test('chunked: decoded whatever the split, extensions and trailers skipped', () => {
  const text = '5;name=value\r\nhello\r\n7\r\n, world\r\nA\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n';
  for (const step of [1, 2, 3, 7, text.length]) {
    assert.deepEqual(
      decode({ kind: 'chunked' }, text, step),
      { body: 'hello, world0123456789', done: true },
      `step ${step}`,
    );
  }
  assert.deepEqual(decode({ kind: 'chunked' }, '3\r\nabc\r\n'), { body: 'abc', done: false });
  assert.deepEqual(decode({ kind: 'chunked' }, '0\r\n\r\n'), { body: '', done: true });
});

test('malformed chunking throws: bad size, bare LF, data longer than its size, an endless line', () => {
  const cases: Record<string, string> = {
    'a size that is not hex': 'z\r\nabc\r\n',
    'a negative size': '-1\r\n',
    'a bare LF': '3\nabc\r\n',
    'data longer than its size': '3\r\nabcd\r\n',
    'an endless size line': `1;${'x'.repeat(5000)}`,
  };
  for (const [what, text] of Object.entries(cases)) {
    assert.throws(() => decode({ kind: 'chunked' }, text), /chunked body/, what);
  }
});
