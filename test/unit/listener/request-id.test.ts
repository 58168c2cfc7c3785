/** Request ids: a trusted proxy's is kept, anyone else's replaced by a fresh random UUID. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RequestIds, requestIdFor } from '../../../src/listener/request-id.ts';

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

test('new request ids are version 4 UUIDs, all different, past several refills of the random pool', () => {
  const ids = new RequestIds();
  const seen = new Set<string>();
  for (let i = 0; i < 2000; i++) {
    const id = ids.next();
    assert.match(id, UUID_V4);
    seen.add(id);
  }
  assert.equal(seen.size, 2000);
});

test('the digits of new request ids are spread evenly (every hex digit in every free position)', () => {
  const ids = new RequestIds();
  const digitsAt = Array.from({ length: 36 }, () => new Set<string>());
  for (let i = 0; i < 3000; i++) {
    const id = ids.next();
    for (let at = 0; at < id.length; at++) digitsAt[at]?.add(id.charAt(at));
  }
  for (const at of [0, 7, 9, 15, 20, 35]) assert.equal(digitsAt[at]?.size, 16, `position ${at}`);
  assert.deepEqual([...(digitsAt[14] ?? [])], ['4']);
  assert.deepEqual([...(digitsAt[19] ?? [])].sort(), ['8', '9', 'a', 'b']);
});

test("a trusted proxy's request id is kept; a client's is replaced", () => {
  const ids = new RequestIds();
  const headers = { 'x-request-id': 'edge-42' };
  assert.equal(requestIdFor(headers, true, ids), 'edge-42');
  assert.match(requestIdFor(headers, false, ids), UUID_V4);
  assert.match(requestIdFor({ 'x-request-id': 'bad id' }, true, ids), UUID_V4);
});
