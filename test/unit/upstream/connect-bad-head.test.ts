/**
 * An upgrade request head that cannot be written (a header value with a line break, which only a
 * defect upstream of the attempt could produce) is refused before any backend socket is opened:
 * a socket opened first would stay open with no listener, and a refused connect would then be an
 * uncaught error.
 */
import assert from 'node:assert/strict';
import { type AddressInfo, createServer } from 'node:net';
import { test } from 'node:test';
import { createBackend } from '../../../src/upstream/backend.ts';
import { attemptUpgrade } from '../../../src/upstream/connect.ts';

test('regression: a request head that cannot be written opens no backend connection', async (t) => {
  let connections = 0;
  const server = createServer((socket) => {
    connections++;
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
  await new Promise((resolve) => setTimeout(resolve, 200));
  assert.equal(connections, 0, 'no connection to the backend');
});
