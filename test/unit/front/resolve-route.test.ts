/**
 * The route resolution both passes share: a request gets its route with that route's pool and
 * frozen policy, a target read two ways is malformed, and no match is "not found".
 */
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { test } from 'node:test';
import type { RequestStage } from '../../../src/front/request-stage.ts';
import { type RouteTable, resolveRoute } from '../../../src/front/resolve-route.ts';
import { resolvePolicies } from '../../../src/policy/route-policy.ts';
import { RouteLookup } from '../../../src/routing/route-lookup.ts';
import { Pool } from '../../../src/upstream/pool.ts';
import { testConfig } from '../../helpers/gateway.ts';

const config = testConfig({
  routes: {
    chat: { pool: 'chat', path: '/chat', websocket: { maxMessageSize: { clientToBackend: '1MiB' } } },
    rest: { pool: 'other', path: '/' },
  },
  pools: { chat: { backends: ['http://127.0.0.1:1'] }, other: { backends: ['http://127.0.0.1:2'] } },
});
const STAGE: RequestStage = { name: 'test', appliesTo: 'both', run: () => undefined };
const table: RouteTable = {
  routes: new RouteLookup(config.routes),
  pools: new Map(Object.entries(config.pools).map(([name, pool]) => [name, new Pool(name, pool)])),
  policies: resolvePolicies(config),
  stages: new Map([['chat', [STAGE]]]),
};
const request = (url: string, host = 'app.example') =>
  ({ url, headers: { host } }) as unknown as IncomingMessage;

test('a request gets its route, with the pool and the policy of that route', () => {
  const resolved = resolveRoute(request('/chat/socket.io/?EIO=4'), table);
  assert.ok(resolved.ok);
  assert.equal(resolved.route.name, 'chat');
  assert.equal(resolved.pool.name, 'chat');
  assert.equal(resolved.policy, table.policies.get('chat'), 'the frozen policy object itself');
  assert.equal(resolved.policy.tunnel.limits.client_to_backend.maxMessageBytes, 1024 * 1024);
  assert.deepEqual(resolved.stages, [STAGE], "and the route's own stages");
  const other = resolveRoute(request('/api'), table);
  assert.ok(other.ok && other.route.name === 'rest' && other.pool.name === 'other');
  assert.deepEqual(other.stages, [], 'a route without stages has none');
});

test('a target a backend could read as another route is malformed; no match is not found', () => {
  // As written it is under /chat; to a backend that decodes %2F and the dot segment it is /api.
  const encoded = resolveRoute(request('/chat%2F..%2Fapi'), table);
  assert.equal(encoded.ok ? 'resolved' : encoded.code, 'REQUEST_MALFORMED', JSON.stringify(encoded));
  const none = resolveRoute(request('/x'), {
    ...table,
    routes: new RouteLookup({ only: { pool: 'chat', path: '/only', hosts: [] } }),
  });
  assert.deepEqual(none, { ok: false, code: 'ROUTE_NOT_FOUND' });
});
