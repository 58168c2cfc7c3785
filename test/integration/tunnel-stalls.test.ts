/**
 * Tunnels whose data stops flowing because one peer stopped reading. The gateway pauses the
 * sender while the stalled side's buffer is full, and must still end the tunnel when the sender
 * leaves or the stalled side never reads again:
 * - a backend that stops reading while its client fills the pipe and then resets: the reset is
 *   noticed within about a sweep even though the client socket is paused (CLIENT_LOST, the
 *   backend gets 1001), long before the send timeout;
 * - the same client leaving with a FIN queued behind its unread bytes: nothing can see that FIN
 *   before those bytes are read, so the send timeout ends the tunnel (BACKEND_SEND_TIMEOUT), at
 *   about `tunnel.sendTimeout` and not before;
 * - the mirror case, a client that never reads while its backend resets: noticed the same way
 *   (BACKEND_LOST), and a client that never reads while its backend floods it is cut at the send
 *   timeout (CLIENT_SEND_TIMEOUT, the backend gets 1001).
 * The same holds over TLS, for a wss client and for an https backend: an empty write to a TLS
 * socket sends nothing, so the gateway probes the TCP socket under it.
 * In every case the tunnel, the gauges and the backend connection are released.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { type AddressInfo, connect as netConnect, type Socket } from 'node:net';
import { resolve } from 'node:path';
import { type TestContext, test } from 'node:test';
import { type TLSSocket, connect as tlsConnect } from 'node:tls';
import type { WebSocket } from 'ws';
import { startEchoBackend, startHttpBackend, switchingProtocolsHead } from '../helpers/backends.ts';
import { handshakeHeaders, openClient } from '../helpers/clients.ts';
import { eventually, within } from '../helpers/eventually.ts';
import { FakeClock } from '../helpers/fake-clock.ts';
import { encodeFrame } from '../helpers/frames.ts';
import { type LogRecord, startGateway, type TestGateway } from '../helpers/gateway.ts';
import { assertElapsedAbout } from '../helpers/timing.ts';

const SEND_TIMEOUT_MS = 1_500;

/** Asserts that `startedAt` (when the stall began) to now is the send timeout, not less. */
function assertAtSendTimeout(startedAt: number, what: string): void {
  // The sweeper that enforces it ticks every quarter of the send timeout.
  assertElapsedAbout(startedAt, SEND_TIMEOUT_MS, what, { sweepMs: SEND_TIMEOUT_MS / 4 });
}
const MIB = Buffer.alloc(1 << 20, 7);

function rawSocketOf(ws: WebSocket): Socket {
  return (ws as unknown as { _socket: Socket })._socket;
}

function closedLine(gw: TestGateway): LogRecord | undefined {
  return gw.logs.find((line) => line.msg === 'websocket closed');
}

/** A backend that answers the upgrade and then never reads; `sockets` holds its ends. */
async function deafBackend(t: TestContext): Promise<{ url: string; sockets: Socket[] }> {
  const sockets: Socket[] = [];
  const backend = await startHttpBackend(
    t,
    (_req, res) => res.end(),
    (req, socket) => {
      socket.write(switchingProtocolsHead(req));
      socket.pause();
      sockets.push(socket);
    },
  );
  return { url: backend.url, sockets };
}

async function stallGateway(t: TestContext, backendUrl: string): Promise<TestGateway> {
  return startGateway(t, {
    routes: { app: { pool: 'app' } },
    pools: { app: { backends: [backendUrl] } },
    tunnel: { sendTimeout: `${SEND_TIMEOUT_MS}ms`, closeTimeout: '1s' },
  });
}

/** Waits until the gateway holds writes in `direction` back (the sending side is paused). */
async function backedUp(gw: TestGateway, direction: string): Promise<void> {
  await eventually(
    async () => (await gw.metric('wsgate_backpressured_tunnels', { direction })) === 1,
    `the gateway to hold ${direction} back`,
    10_000,
  );
}

/** Sends until the gateway stops taking the client's bytes (its socket paused for backpressure). */
async function fillThePipe(gw: TestGateway, ws: WebSocket): Promise<void> {
  for (let i = 0; i < 24; i++) ws.send(MIB);
  await backedUp(gw, 'client_to_backend');
}

test('regression: a client that resets while paused behind a deaf backend is noticed at once', async (t) => {
  const backend = await deafBackend(t);
  const gw = await stallGateway(t, backend.url);
  const ws = await openClient(gw.wsUrl('/'));
  ws.on('error', () => {});
  await fillThePipe(gw, ws);
  const startedAt = performance.now();
  rawSocketOf(ws).resetAndDestroy();
  await eventually(() => gw.gateway.registry.tunnelCount === 0, 'the tunnel to end', 10_000);
  const elapsed = performance.now() - startedAt;
  assert.ok(elapsed < SEND_TIMEOUT_MS, `noticed before the send timeout (${Math.round(elapsed)} ms)`);
  assert.equal(closedLine(gw)?.code, 'CLIENT_LOST');
  assert.equal(await gw.metric('wsgate_backend_connections_active'), 0, 'the backend connection is released');
});

test('regression: a client that leaves with a FIN behind unread bytes ends at the send timeout', async (t) => {
  const backend = await deafBackend(t);
  const gw = await stallGateway(t, backend.url);
  const ws = await openClient(gw.wsUrl('/'));
  ws.on('error', () => {});
  await fillThePipe(gw, ws);
  const stalledAt = performance.now();
  rawSocketOf(ws).end(); // a FIN, queued behind the bytes the gateway has not read
  await eventually(() => gw.gateway.registry.tunnelCount === 0, 'the tunnel to end', 10_000);
  assertAtSendTimeout(stalledAt, 'the tunnel ends');
  assert.equal(closedLine(gw)?.code, 'BACKEND_SEND_TIMEOUT');
  assert.equal(await gw.metric('wsgate_tunnel_errors_total', { code: 'BACKEND_SEND_TIMEOUT' }), 1);
  assert.equal(await gw.metric('wsgate_backend_connections_active'), 0, 'the backend connection is released');
});

test('regression: a client that never reads notices its backend reset, and is cut at the send timeout', async (t) => {
  const floods: WebSocket[] = [];
  const echo = await startEchoBackend(t, {
    onConnection: (socket) => {
      floods.push(socket);
      socket.on('message', () => {
        for (let i = 0; i < 24; i++) socket.send(MIB);
      });
    },
  });
  const gw = await stallGateway(t, echo.url);

  // A client that stops reading, then its backend resets: noticed before the send timeout.
  const first = await openClient(gw.wsUrl('/first'));
  first.on('error', () => {});
  rawSocketOf(first).pause();
  first.send('flood me');
  await backedUp(gw, 'backend_to_client');
  const resetAt = performance.now();
  rawSocketOf(floods[0] as WebSocket).resetAndDestroy();
  await eventually(() => gw.gateway.registry.tunnelCount === 0, 'the first tunnel to end', 10_000);
  assert.ok(performance.now() - resetAt < SEND_TIMEOUT_MS, 'the reset is noticed before the send timeout');
  assert.equal(closedLine(gw)?.code, 'BACKEND_LOST');
  first.terminate();

  // A client that never reads while its backend keeps sending: cut at the send timeout.
  const second = await openClient(gw.wsUrl('/second'));
  second.on('error', () => {});
  rawSocketOf(second).pause();
  const backendClosed = new Promise<number>((resolve) => {
    const waitForSocket = (): void => {
      const socket = floods[1];
      if (socket) socket.once('close', (code) => resolve(code));
      else setImmediate(waitForSocket);
    };
    waitForSocket();
  });
  second.send('flood me');
  await backedUp(gw, 'backend_to_client');
  const stalledAt = performance.now();
  assert.equal(await within(backendClosed, 'the backend to get a close', 10_000), 1001);
  assertAtSendTimeout(stalledAt, 'the backend gets 1001');
  await eventually(() => gw.gateway.registry.tunnelCount === 0, 'the second tunnel to end', 10_000);
  const lines = gw.logs.filter((line) => line.msg === 'websocket closed');
  assert.equal(lines[1]?.code, 'CLIENT_SEND_TIMEOUT');
  second.terminate();
});

const TLS_DIR = resolve(import.meta.dirname, '../fixtures/tls');
const CA = readFileSync(resolve(TLS_DIR, 'ca.pem'));

/** A wss client on a TCP socket of its own (so the test can reset it), handshake done. */
async function openTlsClient(port: number): Promise<{ raw: Socket; secure: TLSSocket }> {
  const raw = netConnect(port, '127.0.0.1');
  raw.on('error', () => {});
  const secure = tlsConnect({ socket: raw, ca: CA, servername: 'localhost' });
  secure.on('error', () => {});
  await within(once(secure, 'secureConnect'), 'the TLS handshake');
  const lines = Object.entries(handshakeHeaders('localhost')).map(([name, value]) => `${name}: ${value}\r\n`);
  secure.write(`GET / HTTP/1.1\r\n${lines.join('')}\r\n`);
  const head = await within(
    new Promise<string>((resolveHead) => {
      let text = '';
      const onData = (chunk: Buffer): void => {
        text += chunk.toString('latin1');
        if (!text.includes('\r\n\r\n')) return;
        secure.off('data', onData);
        resolveHead(text);
      };
      secure.on('data', onData);
    }),
    'the 101',
  );
  assert.match(head, /^HTTP\/1\.1 101/);
  return { raw, secure };
}

test('regression: a wss client that resets while paused is noticed at once (TLS listener)', async (t) => {
  const backend = await deafBackend(t);
  const gw = await startGateway(
    t,
    {
      listeners: { public: { tls: { cert: 'server.pem', key: 'server-key.pem' } } },
      routes: { app: { pool: 'app' } },
      pools: { app: { backends: [backend.url] } },
      tunnel: { sendTimeout: `${SEND_TIMEOUT_MS}ms`, closeTimeout: '1s' },
    },
    { baseDir: TLS_DIR },
  );
  const { raw, secure } = await openTlsClient(gw.port());
  const frame = encodeFrame({ opcode: 2, payload: MIB, masked: true });
  for (let i = 0; i < 24; i++) secure.write(frame);
  await backedUp(gw, 'client_to_backend');
  const resetAt = performance.now();
  raw.resetAndDestroy();
  await eventually(() => gw.gateway.registry.tunnelCount === 0, 'the tunnel to end', 10_000);
  const elapsed = Math.round(performance.now() - resetAt);
  assert.ok(elapsed < SEND_TIMEOUT_MS, `noticed before the send timeout (${elapsed} ms)`);
  assert.equal(closedLine(gw)?.code, 'CLIENT_LOST');
});

test('regression: an https backend that resets while paused is noticed at once', async (t) => {
  const server = createHttpsServer({
    cert: readFileSync(resolve(TLS_DIR, 'server.pem')),
    key: readFileSync(resolve(TLS_DIR, 'server-key.pem')),
  });
  const sockets: TLSSocket[] = [];
  server.on('upgrade', (req: IncomingMessage, socket: TLSSocket) => {
    socket.on('error', () => {});
    sockets.push(socket);
    socket.write(switchingProtocolsHead(req));
    const frame = encodeFrame({ opcode: 2, payload: MIB });
    for (let i = 0; i < 24; i++) socket.write(frame);
  });
  await new Promise<void>((resolveListen) => server.listen(0, '127.0.0.1', () => resolveListen()));
  t.after(() => {
    for (const socket of sockets) socket.destroy();
    server.close();
  });
  const port = (server.address() as AddressInfo).port;
  const gw = await startGateway(
    t,
    {
      routes: { app: { pool: 'app' } },
      pools: { app: { backends: [`https://localhost:${port}`], tls: { ca: 'ca.pem' } } },
      tunnel: { sendTimeout: `${SEND_TIMEOUT_MS}ms`, closeTimeout: '1s' },
    },
    { baseDir: TLS_DIR },
  );
  const ws = await openClient(gw.wsUrl('/'));
  ws.on('error', () => {});
  rawSocketOf(ws).pause();
  await backedUp(gw, 'backend_to_client');
  const resetAt = performance.now();
  // The backend's end of the TCP connection under its TLS socket is reset.
  const underlying = (sockets[0] as TLSSocket & { _parent?: Socket })._parent;
  assert.ok(underlying, 'the backend TLS socket wraps a TCP socket');
  underlying.resetAndDestroy();
  await eventually(() => gw.gateway.registry.tunnelCount === 0, 'the tunnel to end', 10_000);
  const elapsed = Math.round(performance.now() - resetAt);
  assert.ok(elapsed < SEND_TIMEOUT_MS, `noticed before the send timeout (${elapsed} ms)`);
  assert.equal(closedLine(gw)?.code, 'BACKEND_LOST');
  ws.terminate();
});

test('the send timeout runs on the gateway clock: a stalled tunnel ends when that clock passes it', async (t) => {
  const backend = await deafBackend(t);
  const clock = new FakeClock();
  const gw = await startGateway(
    t,
    {
      routes: { app: { pool: 'app' } },
      pools: { app: { backends: [backend.url] } },
      tunnel: { sendTimeout: '30s', closeTimeout: '1s' },
    },
    { clock },
  );
  const ws = await openClient(gw.wsUrl('/'));
  ws.on('error', () => {});
  await fillThePipe(gw, ws);
  clock.advance(29_000);
  assert.equal(gw.gateway.registry.tunnelCount, 1, 'still open 29 s into the stall');
  clock.advance(2_000);
  await eventually(() => gw.gateway.registry.tunnelCount === 0, 'the tunnel to end', 10_000);
  assert.equal(closedLine(gw)?.code, 'BACKEND_SEND_TIMEOUT');
  ws.terminate();
});
