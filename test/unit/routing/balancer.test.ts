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
  for (const [round, list] of lists.entries()) {
    assert.deepEqual(
      [...list].sort(),
      ['a', 'b', 'c'],
      `round ${round}: every backend once in ${list.join(',')}`,
    );
  }
  assert.deepEqual(lists[1], ['b', 'c', 'a'], 'fallbacks follow the rotation');
});

/** The first choice of `rounds` successive candidate lists, each checked to hold every backend once. */
function firstChoices(
  balancer: RoundRobinBalancer<{ name: string; weight: number }>,
  names: string[],
  rounds: number,
): string[] {
  return Array.from({ length: rounds }, (_, round) => {
    const list = balancer.candidates().map((b) => b.name);
    assert.deepEqual(
      [...list].sort(),
      [...names].sort(),
      `round ${round}: every backend once in ${list.join(',')}`,
    );
    return list[0] ?? '';
  });
}

test('weights 3:1 give the smooth sequence heavy,heavy,light,heavy, cycle after cycle', () => {
  // Current weights before the pick, the pick (the highest, the first on a tie), then after it
  // (the pick loses the total, 4):
  //   [3,1] heavy [-1,1] | [2,2] heavy [-2,2] | [1,3] light [1,-1] | [4,0] heavy [0,0]
  const balancer = new RoundRobinBalancer([backend('heavy', 3), backend('light', 1)]);
  const cycle = ['heavy', 'heavy', 'light', 'heavy'];
  assert.deepEqual(firstChoices(balancer, ['heavy', 'light'], 8), [...cycle, ...cycle]);
});

test('weights 5:1:1 give the smooth sequence a,a,b,a,c,a,a, cycle after cycle', () => {
  // [5,1,1] a [-2,1,1] | [3,2,2] a [-4,2,2] | [1,3,3] b [1,-4,3] | [6,-3,4] a [-1,-3,4]
  // [4,-2,5] c [4,-2,-2] | [9,-1,-1] a [2,-1,-1] | [7,0,0] a [0,0,0]
  const balancer = new RoundRobinBalancer([backend('a', 5), backend('b', 1), backend('c', 1)]);
  const cycle = ['a', 'a', 'b', 'a', 'c', 'a', 'a'];
  assert.deepEqual(firstChoices(balancer, ['a', 'b', 'c'], 14), [...cycle, ...cycle]);
});

test('an empty pool is refused', () => {
  assert.throws(() => new RoundRobinBalancer([]), RangeError);
});
