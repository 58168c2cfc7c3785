/**
 * Every route gets one resolved, frozen policy per configuration, so that what a tunnel was given
 * when it opened cannot change under it: the top-level `websocket` block with the route's own
 * fields on top, one field at a time.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { policyDeadlines, resolvePolicies } from '../../../src/policy/route-policy.ts';
import { testConfig } from '../../helpers/gateway.ts';

const POOLS = { p: { backends: ['http://127.0.0.1:1'] } };

test('each route has a frozen policy with the tunnel deadlines and the documented defaults', () => {
  const config = testConfig({
    routes: { a: { pool: 'p' }, b: { pool: 'p', path: '/b' } },
    pools: POOLS,
    tunnel: { closeTimeout: '3s', sendTimeout: '45s' },
  });
  const policies = resolvePolicies(config);
  assert.deepEqual([...policies.keys()].sort(), ['a', 'b']);
  const none = { maxFrameBytes: undefined, messageRate: undefined, byteRate: undefined };
  for (const [name, policy] of policies) {
    assert.deepEqual(
      policy,
      {
        tunnel: {
          closeTimeoutMs: 3_000,
          sendTimeoutMs: 45_000,
          limits: {
            client_to_backend: { maxMessageBytes: 16 * 1024 * 1024, ...none },
            backend_to_client: { maxMessageBytes: undefined, ...none },
          },
          idleTimeoutMs: undefined,
          pingsCountAsActivity: false,
          pingIntervalMs: { client: 30_000, backend: undefined },
          pongTimeoutMs: 30_000,
          maxLifetimeMs: undefined,
          lifetimeJitter: 0.1,
        },
        origin: { allow: [], missing: 'allow', plainHttp: true },
        auth: undefined,
      },
      name,
    );
    assert.ok(Object.isFrozen(policy) && Object.isFrozen(policy.tunnel), `${name}: frozen`);
    assert.ok(Object.isFrozen(policy.tunnel.limits.client_to_backend), `${name}: limits frozen`);
  }
});

test("a route's websocket block replaces the defaults field by field", () => {
  const config = testConfig({
    websocket: {
      maxMessageSize: { backendToClient: '1MiB' },
      messageRate: { clientToBackend: { perSecond: 10, burst: 20 } },
      idleTimeout: '5m',
      keepalive: { backend: '1m' },
    },
    routes: {
      plain: { pool: 'p' },
      strict: {
        pool: 'p',
        path: '/strict',
        websocket: {
          maxMessageSize: { clientToBackend: '64KiB' },
          messageRate: { clientToBackend: { perSecond: 1, burst: 1, action: 'close' } },
          idleTimeout: 'off',
          keepalive: { client: 'off' },
          maxLifetime: '1h',
        },
      },
    },
    pools: POOLS,
  });
  const policies = resolvePolicies(config);
  const plain = policies.get('plain')?.tunnel;
  const strict = policies.get('strict')?.tunnel;
  assert.ok(plain && strict);
  assert.equal(plain.limits.client_to_backend.maxMessageBytes, 16 * 1024 * 1024);
  assert.equal(plain.limits.backend_to_client.maxMessageBytes, 1024 * 1024);
  assert.deepEqual(plain.limits.client_to_backend.messageRate, {
    perSecond: 10,
    burst: 20,
    action: 'throttle',
  });
  assert.equal(plain.idleTimeoutMs, 300_000);
  assert.deepEqual(plain.pingIntervalMs, { client: 30_000, backend: 60_000 });
  assert.equal(plain.maxLifetimeMs, undefined);

  assert.equal(strict.limits.client_to_backend.maxMessageBytes, 64 * 1024, 'the route sets it');
  assert.equal(strict.limits.backend_to_client.maxMessageBytes, 1024 * 1024, 'inherited beside it');
  assert.deepEqual(strict.limits.client_to_backend.messageRate, { perSecond: 1, burst: 1, action: 'close' });
  assert.equal(strict.idleTimeoutMs, undefined, '"off" turns an inherited limit off');
  assert.deepEqual(strict.pingIntervalMs, { client: undefined, backend: 60_000 });
  assert.equal(strict.maxLifetimeMs, 3_600_000);
});

test('the sweeper resolves every deadline a policy sets, and the pong timeout only when pinging', () => {
  const config = testConfig({
    websocket: { keepalive: { client: 'off', timeout: '2s' }, idleTimeout: '10s' },
    routes: { a: { pool: 'p' }, b: { pool: 'p', path: '/b', websocket: { keepalive: { client: '5s' } } } },
    pools: POOLS,
  });
  const policies = resolvePolicies(config);
  const deadlines = (name: string) => {
    const policy = policies.get(name);
    assert.ok(policy);
    return policyDeadlines(policy.tunnel).sort((x, y) => x - y);
  };
  assert.deepEqual(deadlines('a'), [10_000, 30_000]);
  assert.deepEqual(deadlines('b'), [2_000, 5_000, 10_000, 30_000]);
});

test("a route's origins replace the defaults field by field, the allow list as a whole", () => {
  const config = testConfig({
    origins: { allow: ['https://app.example.com'], missing: 'refuse' },
    routes: {
      plain: { pool: 'p' },
      partner: { pool: 'p', path: '/partner', origins: { allow: ['https://*.partner.example'] } },
    },
    pools: POOLS,
  });
  const policies = resolvePolicies(config);
  const hosts = (name: string) =>
    policies.get(name)?.origin.allow.map((pattern) => (pattern.kind === 'origin' ? pattern.host : 'null'));
  assert.deepEqual(hosts('plain'), ['app.example.com']);
  assert.deepEqual(hosts('partner'), ['partner.example'], 'the whole list replaced');
  assert.equal(policies.get('partner')?.origin.missing, 'refuse', 'inherited beside it');
  assert.ok(Object.isFrozen(policies.get('partner')?.origin));
});
