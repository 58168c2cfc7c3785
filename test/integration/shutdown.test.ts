/**
 * Graceful shutdown of an in-process gateway: readiness turns 503, live WebSockets receive close
 * 1001 from the gateway (both the client and the backend), a new upgrade on a kept-alive
 * connection gets 503, and everything is closed at the end, including tunnels whose peers do not
 * cooperate (destroyed at the drain deadline).
 */
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { connect } from 'node:net';
import { test } from 'node:test';
import { startEchoBackend } from '../helpers/backends.ts';
import { closeOf, openClient, openStubbornClient } from '../helpers/clients.ts';
import { eventually, within } from '../helpers/eventually.ts';
import { startGateway } from '../helpers/gateway.ts';
import { assertElapsedAbout } from '../helpers/timing.ts';

const echoConfig = (url: string) => ({
  routes: { echo: { pool: 'echo' } },
  pools: { echo: { backends: [url] } },
});

function getStatus(port: number, path: string): Promise<number> {
  return within(
    new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path, agent: false }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end();
    }),
    `GET ${path}`,
  );
}

test('shutdown sends 1001 to every client and backend, fails readiness, then closes', async (t) => {
  const backend = await startEchoBackend(t);
  const gw = await startGateway(t, echoConfig(backend.url), { skipLeakCheck: true });
  assert.equal(await getStatus(gw.adminPort(), '/readyz'), 200);
  const clients = await Promise.all([1, 2, 3].map(() => openClient(gw.wsUrl('/chat'))));
  await eventually(() => backend.sockets.length === 3, 'three backend sockets');
  const backendCloses = backend.sockets.map(
    (socket) => new Promise<number>((resolve) => socket.once('close', (code) => resolve(code))),
  );
  const clientCloses = clients.map((ws) => closeOf(ws));
  const adminPort = gw.adminPort();
  const done = gw.gateway.shutdown();
  assert.equal(gw.gateway.isReady(), false);
  for (const [index, closed] of (await Promise.all(clientCloses)).entries()) {
    assert.equal(closed.code, 1001, `client ${index}: close code`);
    assert.equal(closed.reason, 'gateway shutting down', `client ${index}: close reason`);
  }
  assert.deepEqual(await within(Promise.all(backendCloses), 'backend closes'), [1001, 1001, 1001]);
  await within(done, 'shutdown to finish');
  assert.equal(gw.gateway.registry.tunnelCount, 0);
  assert.equal(await gw.metric('wsgate_connections_active'), 0);
  assert.equal(await gw.metric('wsgate_closes_total', { initiator: 'gateway', code: '1001' }), 3);
  assert.equal(await gw.metric('wsgate_tunnel_errors_total', { code: 'GATEWAY_SHUTDOWN' }), 3);
  // The admin server is its owner's (the command closes it once the gateway has stopped).
  assert.equal(await getStatus(adminPort, '/readyz'), 503, 'not ready once stopped');
});

test('while draining, /readyz is 503 and an upgrade on a kept-alive connection gets 503', async (t) => {
  const backend = await startEchoBackend(t);
  const gw = await startGateway(
    t,
    { ...echoConfig(backend.url), shutdown: { drainTimeout: '10s' } },
    { skipLeakCheck: true },
  );
  // A tunnel whose client never answers the close (and never closes its half) keeps the gateway draining.
  const stubborn = openStubbornClient(gw.port());
  await eventually(() => gw.gateway.registry.tunnelCount === 1, 'the stubborn tunnel is open');
  // A keep-alive HTTP connection opened before the drain.
  const keepAlive = connect(gw.port(), '127.0.0.1');
  keepAlive.on('error', () => {});
  const responses: string[] = [];
  keepAlive.on('data', (chunk: Buffer) => responses.push(chunk.toString('latin1')));
  keepAlive.write('GET /page HTTP/1.1\r\nHost: x\r\n\r\n');
  await eventually(() => responses.join('').includes('echo backend'), 'the first response');
  const adminPort = gw.adminPort();
  const done = gw.gateway.shutdown();
  assert.equal(await getStatus(adminPort, '/readyz'), 503);
  assert.equal(await getStatus(adminPort, '/healthz'), 200);
  keepAlive.write(
    'GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
  );
  await eventually(() => responses.join('').includes('503 Service Unavailable'), 'a 503 for the upgrade');
  assert.equal(await gw.metric('wsgate_upgrades_total', { code: 'GATEWAY_DRAINING' }), 1);
  assert.equal(await gw.metric('wsgate_draining'), 1);
  stubborn.destroy();
  keepAlive.destroy();
  await within(done, 'shutdown to finish', 10_000);
  assert.equal(gw.gateway.registry.tunnelCount, 0);
});

test('tunnels still open at the drain deadline are destroyed and shutdown completes', async (t) => {
  const backend = await startEchoBackend(t);
  const gw = await startGateway(
    t,
    { ...echoConfig(backend.url), shutdown: { drainTimeout: '300ms' }, tunnel: { closeTimeout: '60s' } },
    { skipLeakCheck: true },
  );
  const stubborn = openStubbornClient(gw.port());
  await eventually(() => gw.gateway.registry.tunnelCount === 1, 'the tunnel is open');
  // Half-open by choice, the client sees the gateway's side end (FIN) but keeps its own open.
  const closed = new Promise<void>((resolve) => stubborn.once('end', () => resolve()));
  const startedAt = performance.now();
  const done = within(gw.gateway.shutdown(), 'shutdown despite a client that never closes');
  // The stubborn tunnel outlives the drain (its closeTimeout is far longer) and goes at the deadline.
  await eventually(() => gw.gateway.registry.tunnelCount === 0, 'the stubborn tunnel to be destroyed');
  assertElapsedAbout(startedAt, 300, 'the stubborn tunnel destroyed');
  await done;
  assertElapsedAbout(startedAt, 300, 'shutdown finished');
  await within(closed, 'the gateway closes its side of the stubborn connection');
  stubborn.destroy();
  assert.equal(gw.gateway.registry.tunnelCount, 0);
  assert.equal(await gw.metric('wsgate_connections_active'), 0);
});
