/**
 * Admission on real sockets: the global cap answers 503 with Retry-After and frees its slot when a
 * connection ends; one address over its connection cap or its handshake rate gets 429 with
 * Retry-After while another address is still served; what is remembered per address stays within
 * `maxTrackedClients` under a flood of addresses (X-Forwarded-For from a trusted proxy), idle
 * addresses are forgotten first, and a flood of busy ones is refused rather than remembered.
 */
import assert from 'node:assert/strict';
import { type TestContext, test } from 'node:test';
import type { WebSocket } from 'ws';
import { startEchoBackend } from '../helpers/backends.ts';
import { closeOf, handshakeHeaders, openClient, rawRequest } from '../helpers/clients.ts';
import { eventually } from '../helpers/eventually.ts';
import { startGateway, type TestGateway } from '../helpers/gateway.ts';

async function admissionGateway(t: TestContext, admission: Record<string, unknown>): Promise<TestGateway> {
  const backend = await startEchoBackend(t);
  return startGateway(t, {
    admission,
    forwarding: { trustedProxies: ['127.0.0.1'] },
    routes: { app: { pool: 'app' } },
    pools: { app: { backends: [backend.url] } },
  });
}

/** An upgrade from `client` (sent as X-Forwarded-For by the trusted local proxy). */
async function upgrade(gw: TestGateway, client: string) {
  const headers = { ...handshakeHeaders(), 'X-Forwarded-For': client };
  return rawRequest(gw.port(), { headers });
}

test('the global cap answers 503 with Retry-After and frees the slot when a connection ends', async (t) => {
  const gw = await admissionGateway(t, { maxConnections: 2 });
  const first = await openClient(gw.wsUrl('/'));
  const second = await openClient(gw.wsUrl('/'));
  const refused = await upgrade(gw, '192.0.2.7');
  refused.socket.destroy();
  assert.equal(refused.status, 503);
  assert.ok(Number(refused.headers['retry-after']) >= 1);
  assert.equal(await gw.metric('wsgate_upgrades_total', { code: 'GATEWAY_FULL' }), 1);
  const closed = closeOf(first);
  first.close();
  await closed;
  await eventually(async () => (await gw.metric('wsgate_connections_active')) === 1, 'the slot to be free');
  const third = await openClient(gw.wsUrl('/'));
  for (const ws of [second, third] as WebSocket[]) ws.close();
});

test('one address over its connection cap or handshake rate gets 429; another is still served', async (t) => {
  const gw = await admissionGateway(t, {
    perClient: { maxConnections: 2, handshakeRate: { perSecond: 0.5, burst: 4 } },
  });
  const held = [await upgrade(gw, '198.51.100.1'), await upgrade(gw, '198.51.100.1')];
  assert.deepEqual(
    held.map((r) => r.status),
    [101, 101],
  );
  const third = await upgrade(gw, '198.51.100.1');
  third.socket.destroy();
  assert.equal(third.status, 429, 'a third connection from the same address');
  assert.equal(third.headers['retry-after'], '1');
  const other = await upgrade(gw, '198.51.100.2');
  assert.equal(other.status, 101, 'another address is served');
  for (const response of held) response.socket.destroy();
  await eventually(() => gw.gateway.registry.tunnelCount === 1, 'the held tunnels to end');
  // The address spent 2 of its 4 tokens (a refusal for its connection cap spends none): two more
  // handshakes, then the rate refuses it.
  for (let i = 0; i < 2; i++) {
    const next = await upgrade(gw, '198.51.100.1');
    assert.equal(next.status, 101);
    next.socket.destroy();
    await eventually(() => gw.gateway.registry.tunnelCount === 1, 'that tunnel to end');
  }
  const over = await upgrade(gw, '198.51.100.1');
  over.socket.destroy();
  assert.equal(over.status, 429);
  assert.ok(Number(over.headers['retry-after']) >= 1, 'the seconds until the next token');
  assert.equal(await gw.metric('wsgate_upgrades_total', { code: 'HANDSHAKE_RATE_LIMITED' }), 1);
  assert.equal(await gw.metric('wsgate_upgrades_total', { code: 'CLIENT_CONNECTIONS_EXCEEDED' }), 1);
  other.socket.destroy();
});

test('a flood of addresses stays within maxTrackedClients: idle ones are forgotten, busy ones refused', async (t) => {
  const gw = await admissionGateway(t, { perClient: { maxConnections: 5 }, maxTrackedClients: 4 });
  // 40 addresses one after the other, each closing before the next: idle ones make room.
  for (let i = 0; i < 40; i++) {
    const response = await upgrade(gw, `203.0.113.${i}`);
    assert.equal(response.status, 101, `address ${i}`);
    response.socket.destroy();
    await eventually(() => gw.gateway.registry.tunnelCount === 0, 'the tunnel to end');
    assert.ok((await gw.metric('wsgate_admission_tracked_clients')) <= 4);
  }
  // Four addresses that stay connected fill the table: a fifth is refused, not remembered.
  const busy = [];
  for (let i = 0; i < 4; i++) busy.push(await upgrade(gw, `2001:db8::${i + 1}`));
  assert.deepEqual(
    busy.map((r) => r.status),
    [101, 101, 101, 101],
  );
  const flood = await upgrade(gw, '2001:db8::99');
  flood.socket.destroy();
  assert.equal(flood.status, 429);
  assert.equal(await gw.metric('wsgate_upgrades_total', { code: 'CLIENT_TRACKING_FULL' }), 1);
  assert.equal(await gw.metric('wsgate_admission_tracked_clients'), 4);
  for (const response of busy) response.socket.destroy();
});
