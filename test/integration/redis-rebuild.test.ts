/**
 * A Redis that lost its counts (flushed, restarted empty, or never counted before): the gateways
 * do not decide on counts they know are short. For the rebuild window (a third of leaseTtl, or the
 * longest reconnection delay, plus a timeout) upgrades are decided as whenUnreachable says while
 * every gateway adds its leases back; then the caps hold as before, on a real redis-server.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startEchoBackend } from '../helpers/backends.ts';
import { handshakeHeaders, rawRequest } from '../helpers/clients.ts';
import { eventually } from '../helpers/eventually.ts';
import { fleetGateway, fleetOfTwo, leases } from '../helpers/fleet.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import { redisMissing, startRedis } from '../helpers/redis.ts';

const skip = redisMissing();

/** An upgrade from `client` through `gw`: its status, and the socket (open on 101). */
async function upgrade(gw: TestGateway, client: string): Promise<{ status: number; close: () => void }> {
  const response = await rawRequest(gw.port(), {
    headers: { ...handshakeHeaders(), 'X-Forwarded-For': client },
  });
  return { status: response.status, close: () => response.socket.destroy() };
}

const up = (gw: TestGateway) => async (): Promise<boolean> =>
  (await gw.metric('wsgate_limit_store_up')) === 1;

test('regression: a Redis that lost its leases admitted over the cap before the gateways added them back', {
  skip,
}, async (t) => {
  const redis = await startRedis(t);
  const backend = await startEchoBackend(t);
  const settings = { url: redis.url, whenUnreachable: 'closed', leaseTtl: '3s' };
  const limits = { perClient: { maxConnections: 2 } };
  const [a, b] = await fleetOfTwo(t, backend.url, settings, limits);
  const held = [await upgrade(a, '192.0.2.50'), await upgrade(b, '192.0.2.50')];
  t.after(() => {
    for (const { close } of held) close();
  });
  assert.deepEqual(
    held.map(({ status }) => status),
    [101, 101],
  );
  await redis.command(['FLUSHALL']);
  // Redis holds no lease now, yet the client holds two connections: nothing may be admitted.
  const during = await upgrade(a, '192.0.2.50');
  during.close();
  assert.equal(during.status, 503, 'closed while the counts are rebuilt');
  assert.equal(await a.metric('wsgate_limit_store_up'), 0, 'not up while rebuilding');
  assert.ok(
    a.logs.some((line) => String(line.msg).includes('lost its counts')),
    'the rebuild is logged',
  );
  await eventually(up(a), 'the rebuild to end', 8_000);
  assert.equal(await leases(redis), 2, "both gateways' leases are back");
  for (const gw of [a, b]) {
    const over = await upgrade(gw, '192.0.2.50');
    over.close();
    assert.equal(over.status, 429, 'the cap holds after the rebuild');
  }
  const unreachable = await a.metric('wsgate_limit_store_unreachable_total', {
    limit: 'client',
    action: 'refused',
  });
  assert.ok(unreachable >= 1, 'the upgrade decided without Redis is counted');
});

test("a Redis that never counted: with whenUnreachable open this process's counts decide until it has", {
  skip,
}, async (t) => {
  const redis = await startRedis(t, { fresh: true });
  const backend = await startEchoBackend(t);
  const settings = { url: redis.url, leaseTtl: '3s' };
  const limits = { perClient: { maxConnections: 1 } };
  const gw = await fleetGateway(t, backend.url, settings, limits);
  const first = await upgrade(gw, '192.0.2.60');
  t.after(() => first.close());
  assert.equal(first.status, 101, 'admitted by the counts of this process');
  const second = await upgrade(gw, '192.0.2.60');
  second.close();
  assert.equal(second.status, 429, 'refused by the counts of this process');
  assert.ok(
    (await gw.metric('wsgate_limit_store_unreachable_total', { limit: 'client', action: 'admitted' })) >= 1,
  );
  // The lease admitted during the rebuild reaches Redis with the next refresh.
  await eventually(async () => (await leases(redis)) === 1, 'the lease in Redis', 5_000);
  await eventually(up(gw), 'the rebuild to end', 8_000);
  const other = await fleetGateway(t, backend.url, settings, limits);
  const elsewhere = await upgrade(other, '192.0.2.60');
  elsewhere.close();
  assert.equal(elsewhere.status, 429, 'another gateway sees the lease once the counts are whole');
});
