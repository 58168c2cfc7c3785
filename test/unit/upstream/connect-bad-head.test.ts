/**
 * An upgrade request head that cannot be written (a header value with a line break, which only a
 * defect upstream of the attempt could produce) is refused before any backend socket is opened:
 * a socket opened first would stay open with no listener, and a refused connect would then be an
 * uncaught error.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { type AddressInfo, connect, createServer } from 'node:net';
import { test } from 'node:test';
import { createBackend } from '../../../src/upstream/backend.ts';
import { attemptUpgrade } from '../../../src/upstream/connect.ts';
import { eventually } from '../../helpers/eventually.ts';

test('regression: a request head that cannot be written opens no backend connection', async (t) => {
  const accepted: number[] = [];
  const server = createServer((socket) => {
    accepted.push(socket.remotePort ?? 0);
    socket.destroy();
  });
  await new Promise<void>((listening) => server.listen(0, '127.0.0.1', listening));
  t.after(() => new Promise<void>((closed) => server.close(() => closed())));
  const { port } = server.address() as AddressInfo;
  assert.throws(
    () =>
      attemptUpgrade({
        backend: createBackend('main', { url: `http://127.0.0.1:${port}`, weight: 1 }),
        tls: { ca: undefined, servername: undefined, rejectUnauthorized: true },
        path: '/',
        headers: ['Host', 'a', 'X-Bad', 'a\r\nInjected: yes'],
        connectTimeoutMs: 5_000,
        handshakeTimeoutMs: 5_000,
        client: { gone: false, onGone: undefined },
        onConnected: () => {},
      }),
    TypeError,
  );
  // A connection opened by the attempt would be accepted before this later one.
  const probe = connect(port, '127.0.0.1');
  probe.on('error', () => {});
  await once(probe, 'connect');
  await eventually(() => accepted.length > 0, 'the probe accepted');
  assert.deepEqual(accepted, [probe.localPort], 'the probe is the first connection the backend saw');
  probe.destroy();
});
