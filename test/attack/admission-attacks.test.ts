/**
 * Admission under attack: a client that resets while its upgrade waits behind a pipelined request
 * must not keep its slot; long-lived connections of the oldest addresses must not lock new
 * addresses out while other remembered addresses are idle.
 */
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { connect, type Socket } from 'node:net';
import { test } from 'node:test';
import type { AdmissionSettings } from '../../src/config/admission-schema.ts';
import { MemoryLimits } from '../../src/limits/memory-store.ts';
import type { UpgradeContext } from '../../src/upgrade/context.ts';
import { Admission } from '../../src/upgrade/stages/admission.ts';
import { startEchoBackend } from '../helpers/backends.ts';
import { handshakeHeaders, handshakeLines, rawRequest } from '../helpers/clients.ts';
import { eventually } from '../helpers/eventually.ts';
import { FakeClock } from '../helpers/fake-clock.ts';
import { startGateway } from '../helpers/gateway.ts';

test('regression: an upgrade pipelined behind a slow request, its client reset first, gives its slot back', async (t) => {
  let answered = 0;
  const backend = await startEchoBackend(t, {
    onRequest: (_req, res) =>
      void setTimeout(() => {
        answered++;
        res.end('slow');
      }, 300),
  });
  const gw = await startGateway(t, {
    admission: { maxConnections: 1 },
    routes: { app: { pool: 'app' } },
    pools: { app: { backends: [backend.url] } },
  });
  const socket = connect(gw.port(), '127.0.0.1');
  socket.on('error', () => {});
  await new Promise((resolve) => socket.once('connect', resolve));
  socket.write(`GET /slow HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nGET / HTTP/1.1\r\n${handshakeLines()}\r\n`);
  await eventually(() => gw.gateway.registry.requestCount === 1, 'the slow request to be in flight');
  socket.resetAndDestroy();
  await eventually(() => answered === 1, 'the backend to answer the slow request');
  await eventually(() => gw.gateway.registry.requestCount === 0, 'the request to end');
  const later = await rawRequest(gw.port(), { headers: handshakeHeaders() });
  later.socket.destroy();
  assert.equal(later.status, 101, 'the only connection left long ago: its slot is free');
});

/** A context with a socket that closes when told. */
function context(address: string): { ctx: UpgradeContext; close: () => void } {
  const socket = Object.assign(new EventEmitter(), { closed: false });
  const ctx = {
    socket: socket as unknown as Socket,
    forwarded: { clientAddress: address },
  } as unknown as UpgradeContext;
  return {
    ctx,
    close: () => {
      socket.closed = true;
      socket.emit('close');
    },
  };
}

test('regression: long-lived connections of the oldest addresses do not lock new addresses out', async () => {
  const settings: AdmissionSettings = {
    maxConnections: 'off',
    perClient: { maxConnections: 100, handshakeRate: 'off' },
    perSubject: { maxConnections: 'off' },
    maxTrackedClients: 1_000,
    store: 'memory',
  };
  const admission = new Admission(settings, new MemoryLimits(settings, new FakeClock()));
  const held = [];
  for (let i = 0; i < 20; i++) {
    const client = context(`10.0.0.${i}`);
    assert.equal(await admission.stage.run(client.ctx), undefined);
    held.push(client);
  }
  for (let i = 0; i < 980; i++) {
    const client = context(`10.1.${i >> 8}.${i & 255}`);
    assert.equal(await admission.stage.run(client.ctx), undefined);
    client.close(); // idle from now on
  }
  assert.equal(admission.tracked, 1_000);
  assert.equal(
    await admission.stage.run(context('203.0.113.9').ctx),
    undefined,
    '980 of 1,000 remembered addresses are idle',
  );
  assert.equal(admission.tracked, 1_000, 'one idle address was forgotten for it');
  // Only when every remembered address is busy is a new one refused.
  const busy = [];
  for (let i = 0; i < 980; i++) {
    const client = context(`10.2.${i >> 8}.${i & 255}`);
    const result = await admission.stage.run(client.ctx);
    if (result !== undefined) break;
    busy.push(client);
  }
  const refused = await admission.stage.run(context('198.51.100.200').ctx);
  assert.equal(refused?.code, 'CLIENT_TRACKING_FULL');
  for (const client of [...held, ...busy]) client.close();
  assert.equal(admission.open, 1, 'every slot given back but the one still open');
});
