/**
 * The liveness checks on their own: a lifetime is shortened by at most its jitter, never
 * lengthened, and without jitter it is exact.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Liveness, type Watched } from '../../../src/tunnel/liveness.ts';
import { tunnelPolicy } from '../../helpers/policy.ts';

const QUIET: Watched = {
  activity: () => 0,
  throttled: () => false,
  heard: () => 0,
  deaf: () => false,
  owesPong: () => false,
  ping: () => {},
};

/** The first sweep time (in 1 ms steps) at which a liveness with this jitter draw ends. */
function lifetimeEnd(jitter: number, draw: number): number {
  const policy = tunnelPolicy({ maxLifetimeMs: 10_000, lifetimeJitter: jitter });
  const liveness = new Liveness(policy, 1_000, () => draw);
  for (let now = 1_000; now < 20_000; now++) {
    if (liveness.sweep(now, QUIET) === 'LIFETIME_EXCEEDED') return now - 1_000;
  }
  return Number.POSITIVE_INFINITY;
}

test('a lifetime is shortened by at most its jitter, never lengthened', () => {
  assert.equal(lifetimeEnd(0, 0.99), 10_000, 'no jitter: exactly maxLifetime');
  assert.equal(lifetimeEnd(0.2, 0), 10_000, 'the smallest draw: the full lifetime');
  assert.equal(lifetimeEnd(0.2, 0.5), 9_000, 'half the jitter');
  const longest = lifetimeEnd(0.2, 0.999_999);
  assert.ok(longest >= 8_000 && longest <= 8_001, `at most 20 % shorter (${longest} ms)`);
});
