/**
 * The listener's own deadlines, on clients that send too little: a TCP client that never starts
 * its TLS handshake is disconnected at `handshakeTimeout` (not before it) and does not hold up
 * shutdown, and a request head that never completes gets 408 at `handshakeTimeout`, no later than
 * the next of Node's sweeps (every `connectionsCheckingInterval`, not at its 30 s default). Every
 * wait is bounded at 5 s, far below the defaults these deadlines replace.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { resolve } from 'node:path';
import { type TestContext, test } from 'node:test';
import { startEchoBackend } from '../helpers/backends.ts';
import { nextMessage, openClient } from '../helpers/clients.ts';
import { within } from '../helpers/eventually.ts';
import { startGateway, type TestGateway } from '../helpers/gateway.ts';
import { assertElapsedAbout } from '../helpers/timing.ts';

const TLS_DIR = resolve(import.meta.dirname, '../fixtures/tls');
const CA = readFileSync(resolve(TLS_DIR, 'ca.pem'));

async function gatewayWithListener(
  t: TestContext,
  listener: Record<string, unknown>,
  extra: Record<string, unknown> = {},
): Promise<TestGateway> {
  const backend = await startEchoBackend(t);
  return startGateway(
    t,
    {
      listeners: { public: listener },
      routes: { echo: { pool: 'echo' } },
      pools: { echo: { backends: [backend.url] } },
      ...extra,
    },
    { baseDir: TLS_DIR },
  );
}

/** A TCP client that connects and then sends nothing at all. */
function silentClient(port: number): Socket {
  const socket = connect(port, '127.0.0.1');
  socket.on('error', () => {});
  socket.resume();
  return socket;
}

function closed(socket: Socket, what: string): Promise<void> {
  return within(
    new Promise<void>((resolveClose) => {
      if (socket.destroyed) resolveClose();
      else socket.once('close', () => resolveClose());
    }),
    what,
  );
}

const TLS = { tls: { cert: 'server.pem', key: 'server-key.pem' } };

test('a TCP client that never starts its TLS handshake is disconnected at handshakeTimeout', async (t) => {
  const gw = await gatewayWithListener(t, { ...TLS, handshakeTimeout: '300ms' });
  // Taken before the connection exists, so never later than the moment the listener accepts it.
  const startedAt = performance.now();
  const socket = silentClient(gw.port());
  try {
    await closed(socket, 'the gateway to disconnect the silent TLS client');
    assertElapsedAbout(startedAt, 300, 'the silent TLS client disconnected');
  } finally {
    socket.destroy();
  }
});

test('a TCP client stuck before its TLS handshake does not hold up shutdown', async (t) => {
  // handshakeTimeout is long here: shutdown itself must cut the client.
  const gw = await gatewayWithListener(
    t,
    { ...TLS, handshakeTimeout: '60s' },
    { shutdown: { drainTimeout: '500ms' } },
  );
  const socket = silentClient(gw.port());
  try {
    // A complete exchange on a later connection: by then the gateway has accepted the silent one.
    const ws = await openClient(`wss://127.0.0.1:${gw.port()}/`, undefined, { ca: CA });
    ws.send('accepted');
    assert.equal((await nextMessage(ws)).data.toString(), 'accepted');
    ws.close();
    assert.equal(socket.destroyed, false, 'the silent client is still connected before shutdown');
    await within(gw.gateway.shutdown(), 'the gateway to shut down');
    await closed(socket, 'the silent client to be disconnected by shutdown');
  } finally {
    socket.destroy();
  }
});

test('a request head that never completes gets 408 at handshakeTimeout', async (t) => {
  const gw = await gatewayWithListener(t, { handshakeTimeout: '500ms' });
  // Node looks for expired heads every connectionsCheckingInterval, which the listener sets to
  // half of handshakeTimeout (at least 250 ms): the 408 may wait for the next look.
  const sweepMs = 250;
  const startedAt = performance.now();
  const socket = connect(gw.port(), '127.0.0.1');
  socket.on('error', () => {});
  try {
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.write('GET /chat HTTP/1.1\r\nHost: 127.0.0.1\r\n');
    await closed(socket, 'the gateway to answer the partial head and close');
    assertElapsedAbout(startedAt, 500, 'the 408 for the partial head', { sweepMs });
    assert.match(Buffer.concat(chunks).toString('latin1'), /^HTTP\/1\.1 408 Request Timeout\r\n/);
  } finally {
    socket.destroy();
  }
});
