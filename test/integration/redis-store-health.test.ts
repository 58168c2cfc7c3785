/**
 * How the Redis limit store follows Redis's health, on a real redis-server: a hung Redis keeps
 * `wsgate_limit_store_up` at 0 until it answers again, and the outage and its end are logged once
 * each (regression: `up` went back to 1 a second after each failure, so an alert could not hold,
 * and the end of a hang was never logged); a Redis that turned replica is dropped and connected
 * again, and decides again once it is a primary; a handshake token this process spent on an
 * upgrade the fleet refused is given back (regression: retries at a replica while the fleet's cap
 * was full used up its own bucket, and the next upgrade got 429 for its rate).
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

async function upgrade(gw: TestGateway, client: string): Promise<{ status: number; close: () => void }> {
  const response = await rawRequest(gw.port(), {
    headers: { ...handshakeHeaders(), 'X-Forwarded-For': client },
  });
  return { status: response.status, close: () => response.socket.destroy() };
}

const said = (gw: TestGateway, text: string): number =>
  gw.logs.filter((line) => String(line.msg).includes(text)).length;

test('regression: a hung Redis keeps the store down until it answers, logged once each way', {
  skip,
}, async (t) => {
  const redis = await startRedis(t);
  const backend = await startEchoBackend(t);
  const gw = await fleetGateway(
    t,
    backend.url,
    { url: redis.url, leaseTtl: '1500ms', timeout: '200ms', whenUnreachable: 'closed' },
    { perClient: { maxConnections: 5 } },
    'info',
  );
  gw.logs.length = 0;
  redis.freeze();
  const refused = [await upgrade(gw, '192.0.2.1'), await upgrade(gw, '192.0.2.1')];
  for (const response of refused) response.close();
  assert.deepEqual(
    refused.map((response) => response.status),
    [503, 503],
  );
  // Two PINGs of the keeper (every 500 ms) time out meanwhile: still down, and said once.
  const pings = async (): Promise<number> => {
    const { values } = await gw.gateway.metrics.limitStoreSeconds.get();
    const count = values.find(
      (value) => value.metricName === 'wsgate_limit_store_seconds_count' && value.labels.operation === 'ping',
    );
    return count?.value ?? 0;
  };
  const before = await pings();
  await eventually(async () => (await pings()) >= before + 2, 'two PINGs to time out');
  assert.equal(await gw.metric('wsgate_limit_store_up'), 0, 'down through the hang');
  assert.equal(said(gw, 'does not answer'), 1, 'the outage is logged once');
  redis.thaw();
  await eventually(async () => (await gw.metric('wsgate_limit_store_up')) === 1, 'the store to be up again');
  assert.equal(said(gw, 'answers again'), 1, 'its end is logged once');
  const admitted = await upgrade(gw, '192.0.2.1');
  assert.equal(admitted.status, 101);
  assert.equal(await leases(redis), 1, 'decided by Redis again');
  admitted.close();
});

test('a Redis that turned replica is connected again, and decides once it is a primary', {
  skip,
}, async (t) => {
  const [redis, primary] = [await startRedis(t), await startRedis(t)];
  const backend = await startEchoBackend(t);
  const gw = await fleetGateway(
    t,
    backend.url,
    { url: redis.url, whenUnreachable: 'closed' },
    { perClient: { maxConnections: 5 } },
  );
  await redis.command(['REPLICAOF', '127.0.0.1', String(primary.port)]);
  const refused = await upgrade(gw, '192.0.2.2');
  refused.close();
  assert.equal(refused.status, 503, 'a replica cannot take the lease');
  await eventually(() => said(gw, 'cannot take writes') >= 1, 'the gateway to connect again');
  await redis.command(['REPLICAOF', 'NO', 'ONE']);
  await eventually(async () => {
    const next = await upgrade(gw, '192.0.2.2');
    next.close();
    return next.status === 101;
  }, 'upgrades to be decided by the primary again');
});

test('regression: a token spent on an upgrade the fleet refused is given back', { skip }, async (t) => {
  const redis = await startRedis(t);
  const backend = await startEchoBackend(t);
  const limits = { perClient: { maxConnections: 1, handshakeRate: { perSecond: 0.01, burst: 3 } } };
  const [a, b] = await fleetOfTwo(t, backend.url, { url: redis.url }, limits);
  const held = await upgrade(a, '198.51.100.9');
  assert.equal(held.status, 101);
  // Three retries at b: b's own count (nothing open there) lets them through to Redis, which
  // refuses them for the fleet's cap; b's bucket must not pay for them.
  for (let i = 0; i < 3; i++) {
    const retry = await upgrade(b, '198.51.100.9');
    retry.close();
    assert.equal(retry.status, 429);
  }
  assert.equal(await b.metric('wsgate_upgrades_total', { code: 'CLIENT_CONNECTIONS_EXCEEDED' }), 3);
  held.close();
  await eventually(async () => (await leases(redis)) === 0, 'the held lease to be given back');
  const next = await upgrade(b, '198.51.100.9');
  next.close();
  assert.equal(next.status, 101, 'one token of three was spent, at a');
});
