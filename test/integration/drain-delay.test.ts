/**
 * The Kubernetes drain race: from SIGTERM, endpoints take seconds to drop the pod, so for
 * `shutdown.drainDelay` the gateway keeps serving (new upgrades and requests go through, plain
 * HTTP responses close their keep-alive connection) while `/readyz` already answers 503; only
 * then does it refuse (503 with Retry-After) and close tunnels with 1001. An immediate shutdown
 * (SIGINT) skips the delay, and every 503 the gateway sends carries Retry-After.
 */
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { type TestContext, test } from 'node:test';
import { startEchoBackend } from '../helpers/backends.ts';
import { closeOf, handshakeHeaders, openClient, rawRequest } from '../helpers/clients.ts';
import { eventually, within } from '../helpers/eventually.ts';
import { startGateway, type TestGateway } from '../helpers/gateway.ts';
import { assertElapsedAbout } from '../helpers/timing.ts';

const DRAIN_DELAY_MS = 800;

interface Answer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
}

function get(port: number, path: string): Promise<Answer> {
  return within(
    new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path, agent: false }, (res) => {
        res.resume();
        resolve({ status: res.statusCode ?? 0, headers: res.headers });
      });
      req.on('error', reject);
      req.end();
    }),
    `GET ${path}`,
  );
}

async function delayedGateway(t: TestContext, backendUrl: string): Promise<TestGateway> {
  return startGateway(
    t,
    {
      routes: { echo: { pool: 'echo' } },
      pools: { echo: { backends: [backendUrl] } },
      shutdown: { drainDelay: `${DRAIN_DELAY_MS}ms`, drainTimeout: '5s', closeSpread: '0s' },
    },
    { skipLeakCheck: true },
  );
}

test('during the drain delay the gateway is not ready but serves, then drains', async (t) => {
  const backend = await startEchoBackend(t);
  const gw = await delayedGateway(t, backend.url);
  const live = await openClient(gw.wsUrl('/live'));
  const liveClosed = closeOf(live, 10_000);
  const signalledAt = performance.now();
  const stopped = gw.gateway.shutdown();

  const ready = await get(gw.adminPort(), '/readyz');
  assert.equal(ready.status, 503, '/readyz fails at once');
  assert.equal(ready.headers['retry-after'], '1', '/readyz 503 carries Retry-After');
  const plain = await get(gw.port(), '/page');
  assert.equal(plain.status, 200, 'plain HTTP is still served');
  assert.equal(plain.headers.connection, 'close', 'and its keep-alive connection is closed');
  const late = await openClient(gw.wsUrl('/late'));
  const lateClosed = closeOf(late, 10_000);
  assert.ok(performance.now() - signalledAt < DRAIN_DELAY_MS, 'all of this happened within the delay');

  // Then the drain: every tunnel, old and new, gets 1001 at about the end of the delay.
  assert.equal((await liveClosed).code, 1001);
  assertElapsedAbout(signalledAt, DRAIN_DELAY_MS, 'tunnels are closed after the drain delay');
  assert.equal((await lateClosed).code, 1001);
  await within(stopped, 'the shutdown to finish', 10_000);
});

test('after the delay new upgrades and requests get 503 with Retry-After', async (t) => {
  const backend = await startEchoBackend(t);
  const gw = await delayedGateway(t, backend.url);
  // A tunnel that stays open (never answers the close) keeps the gateway draining.
  const stubborn = await openClient(gw.wsUrl('/stubborn'), undefined, { autoPong: false });
  (stubborn as unknown as { _socket: import('node:net').Socket })._socket.pause();
  const port = gw.port();
  const stopped = gw.gateway.shutdown();
  await eventually(
    async () => (await get(port, '/page')).status === 503,
    'plain requests to be refused',
    5_000,
  );
  const refused = await get(port, '/page');
  assert.equal(refused.headers['retry-after'], '1', 'an HTTP 503 carries Retry-After');
  const upgrade = await rawRequest(port, { path: '/ws', headers: handshakeHeaders() });
  assert.equal(upgrade.status, 503, 'a new upgrade is refused');
  assert.equal(upgrade.headers['retry-after'], '1', 'an upgrade 503 carries Retry-After');
  upgrade.socket.destroy();
  stubborn.terminate();
  await within(stopped, 'the shutdown to finish', 10_000);
});

test('an immediate shutdown (SIGINT) skips the drain delay', async (t) => {
  const backend = await startEchoBackend(t);
  const gw = await delayedGateway(t, backend.url);
  const ws = await openClient(gw.wsUrl('/'));
  const closed = closeOf(ws, 10_000);
  const startedAt = performance.now();
  const stopped = gw.gateway.shutdown({ immediate: true });
  assert.equal((await closed).code, 1001);
  const elapsed = performance.now() - startedAt;
  assert.ok(elapsed < DRAIN_DELAY_MS, `closed without waiting for the delay (${Math.round(elapsed)} ms)`);
  await within(stopped, 'the shutdown to finish', 10_000);
});

test('a second, immediate shutdown cuts a running drain delay short', async (t) => {
  const backend = await startEchoBackend(t);
  const gw = await delayedGateway(t, backend.url);
  const ws = await openClient(gw.wsUrl('/'));
  const closed = closeOf(ws, 10_000);
  const first = gw.gateway.shutdown();
  const startedAt = performance.now();
  const second = gw.gateway.shutdown({ immediate: true });
  assert.equal(first, second, 'both calls wait for the same shutdown');
  assert.equal((await closed).code, 1001);
  assert.ok(performance.now() - startedAt < DRAIN_DELAY_MS, 'the delay was cut short');
  await within(second, 'the shutdown to finish', 10_000);
});
