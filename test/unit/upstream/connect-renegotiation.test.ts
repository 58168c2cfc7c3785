/**
 * A TLS backend that renegotiates after reading the upgrade request (IIS, SAP, Apache asking for
 * a client certificate on one path) makes Node emit 'secureConnect' again on the same socket: the
 * attempt must still count one connect (one connect-time observation) and keep its deadline.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import { test } from 'node:test';
import { createServer, type TLSSocket } from 'node:tls';
import { createBackend } from '../../../src/upstream/backend.ts';
import { attemptUpgrade } from '../../../src/upstream/connect.ts';

const TLS_DIR = resolve(import.meta.dirname, '../../fixtures/tls');

test('regression: a TLS backend that renegotiates before answering is connected once', async (t) => {
  const server = createServer({
    cert: readFileSync(resolve(TLS_DIR, 'server.pem')),
    key: readFileSync(resolve(TLS_DIR, 'server-key.pem')),
    // Renegotiation exists up to TLS 1.2 only.
    maxVersion: 'TLSv1.2',
  });
  server.on('secureConnection', (socket: TLSSocket) => {
    socket.on('error', () => {});
    socket.once('data', () => {
      socket.renegotiate({ rejectUnauthorized: false }, (error) => {
        if (error) socket.destroy();
        else socket.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n');
      });
    });
  });
  await new Promise<void>((listening) => server.listen(0, '127.0.0.1', listening));
  t.after(() => new Promise<void>((closed) => server.close(() => closed())));
  const { port } = server.address() as AddressInfo;

  const connects: number[] = [];
  const outcome = await attemptUpgrade({
    backend: createBackend('main', { url: `https://localhost:${port}`, weight: 1 }),
    tls: { ca: readFileSync(resolve(TLS_DIR, 'ca.pem')), servername: undefined, rejectUnauthorized: true },
    path: '/',
    headers: ['Host', 'localhost', 'Connection', 'Upgrade', 'Upgrade', 'websocket'],
    connectTimeoutMs: 5_000,
    handshakeTimeoutMs: 5_000,
    client: { gone: false, onGone: undefined },
    onConnected: (seconds) => connects.push(seconds),
  });
  if (outcome.kind !== 'failed') outcome.socket.destroy();
  assert.equal(outcome.kind, 'answered');
  assert.equal(outcome.kind === 'answered' ? outcome.response.status : 0, 403);
  assert.equal(connects.length, 1, 'one connect, however many TLS handshakes the socket saw');
});
