/**
 * Every route gets one resolved, frozen policy per configuration, so that what a tunnel was given
 * when it opened cannot change under it.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { resolvePolicies } from '../../../src/policy/route-policy.ts';
import { testConfig } from '../../helpers/gateway.ts';

test('each route has a frozen policy with the tunnel deadlines', () => {
  const config = testConfig({
    routes: { a: { pool: 'p' }, b: { pool: 'p', path: '/b' } },
    pools: { p: { backends: ['http://127.0.0.1:1'] } },
    tunnel: { closeTimeout: '3s', sendTimeout: '45s' },
  });
  const policies = resolvePolicies(config);
  assert.deepEqual([...policies.keys()].sort(), ['a', 'b']);
  for (const [name, policy] of policies) {
    assert.deepEqual(policy, { tunnel: { closeTimeoutMs: 3_000, sendTimeoutMs: 45_000 } }, name);
    assert.ok(Object.isFrozen(policy) && Object.isFrozen(policy.tunnel), `${name}: frozen`);
  }
});
