/**
 * Route meters: the cells a route's upgrades and tunnels count in, bound once per route object,
 * land in the same series as any other route object of that name (a reload's), per listener and
 * per backend.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GatewayMetrics } from '../../../src/observability/metrics.ts';
import type { TunnelSummary } from '../../../src/tunnel/tunnel.ts';
import { RouteMeters } from '../../../src/upgrade/route-meters.ts';

async function series(metrics: GatewayMetrics, name: string): Promise<Record<string, number>> {
  const metric = metrics.registry.getSingleMetric(name);
  assert.ok(metric, name);
  const { values } = await metric.get();
  return Object.fromEntries(
    values.map((v) => [
      Object.entries(v.labels)
        .map(([k, l]) => `${k}=${l}`)
        .join(','),
      v.value,
    ]),
  );
}

const summary = (initiator: TunnelSummary['initiator'], closeCode: number | undefined): TunnelSummary => ({
  id: 't',
  durationSeconds: 2,
  messages: { client_to_backend: 1, backend_to_client: 1 },
  bytes: { client_to_backend: 10, backend_to_client: 10 },
  closeCode,
  closeReason: '',
  initiator,
  errorCode: undefined,
});

test('two route objects of one name count in the same series, by listener and backend', async () => {
  const metrics = new GatewayMetrics('test');
  const before = new RouteMeters(metrics, 'chat', 'p');
  const reloaded = new RouteMeters(metrics, 'chat', 'p');
  before.upgraded('public').value++;
  reloaded.upgraded('public').value++;
  reloaded.upgraded('internal').value++;
  assert.equal(reloaded.upgraded('public'), reloaded.upgraded('public'), 'found once per listener');
  const upgrades = await series(metrics, 'wsgate_upgrades_total');
  assert.equal(upgrades['listener=public,route=chat,code=UPGRADED'], 2);
  assert.equal(upgrades['listener=internal,route=chat,code=UPGRADED'], 1);

  const one = { label: 'http://a:1' };
  const two = { label: 'http://b:1' };
  before.openOn(one).value++;
  reloaded.openOn(one).value++;
  reloaded.openOn(two).value++;
  reloaded.open.value += 3;
  const onBackend = await series(metrics, 'wsgate_backend_connections_active');
  assert.equal(onBackend['pool=p,backend=http://a:1'], 2);
  assert.equal(onBackend['pool=p,backend=http://b:1'], 1);
  assert.equal((await series(metrics, 'wsgate_connections_active'))['route=chat,pool=p'], 3);
});

test('an ended tunnel is counted by who closed it and its close code, and timed', async () => {
  const metrics = new GatewayMetrics('test');
  const meters = new RouteMeters(metrics, 'chat', 'p');
  meters.ended(summary('client', 1000));
  meters.ended(summary('client', 1000));
  meters.ended(summary('backend', undefined));
  const closes = await series(metrics, 'wsgate_closes_total');
  assert.equal(closes['route=chat,initiator=client,code=1000'], 2);
  assert.equal(closes['route=chat,initiator=backend,code=1006'], 1);
  const count = (await metrics.registry.getSingleMetricAsString('wsgate_connection_duration_seconds'))
    .split('\n')
    .find((line) => line.startsWith('wsgate_connection_duration_seconds_count'));
  assert.equal(count, 'wsgate_connection_duration_seconds_count{route="chat"} 3');
});
