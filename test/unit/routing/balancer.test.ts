/**
 * Smooth weighted round-robin: shares follow weights, picks are interleaved rather than bursty,
 * and the candidate list is the first choice followed by every other backend exactly once.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RoundRobinBalancer } from '../../../src/routing/balancer.ts';

const backend = (name: string, weight = 1) => ({ name, weight });

test('equal weights alternate and every candidate list holds each backend once', () => {
  const balancer = new RoundRobinBalancer([backend('a'), backend('b'), backend('c')]);
  const lists = Array.from({ length: 6 }, () => balancer.candidates().map((b) => b.name));
  assert.deepEqual(
    lists.map((list) => list[0]),
    ['a', 'b', 'c', 'a', 'b', 'c'],
  );
  for (const list of lists) assert.deepEqual([...list].sort(), ['a', 'b', 'c']);
  assert.deepEqual(lists[1], ['b', 'c', 'a'], 'fallbacks follow the rotation');
});

test('weights set the share and picks are spread out', () => {
  const balancer = new RoundRobinBalancer([backend('heavy', 3), backend('light', 1)]);
  const firsts = Array.from({ length: 8 }, () => balancer.candidates()[0]?.name);
  assert.equal(firsts.filter((name) => name === 'heavy').length, 6);
  assert.equal(firsts.filter((name) => name === 'light').length, 2);
  assert.notDeepEqual(
    firsts.slice(0, 4),
    ['heavy', 'heavy', 'heavy', 'light'].reverse(),
    'not a burst of light first',
  );
  for (let i = 1; i < firsts.length; i++) {
    assert.ok(!(firsts[i] === 'light' && firsts[i - 1] === 'light'), 'light is never picked twice in a row');
  }
});

test('an empty pool is refused', () => {
  assert.throws(() => new RoundRobinBalancer([]), RangeError);
});
