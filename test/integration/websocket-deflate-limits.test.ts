/**
 * The message size limit under permessage-deflate counts the inflated size, on real sockets (`ws`
 * client and backend, both negotiating compression):
 * - a small compressed message that inflates past the limit: the client gets 1009, the backend
 *   1001, and the backend never receives it; messages under the limit arrive intact, with the
 *   compression context carried from message to message and without it;
 * - a compressed message over the limit across fragments;
 * - the same from backend to client;
 * - a decompression bomb (64 MiB of zeros in about 64 KiB) is stopped without inflating it all.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { PerMessageDeflateOptions, WebSocket } from 'ws';
import { closeOf, openClient } from '../helpers/clients.ts';
import { eventually } from '../helpers/eventually.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import { policyGateway, recordingBackend, tunnelEnded } from '../helpers/recording.ts';

const KIB = 1024;
const MIB = 1024 * KIB;

function compressingClient(gw: TestGateway, deflate: PerMessageDeflateOptions = {}): Promise<WebSocket> {
  return openClient(gw.wsUrl('/'), undefined, {
    perMessageDeflate: { threshold: 0, ...deflate },
    maxPayload: 1 << 30,
  });
}

test('a small compressed message that inflates past the limit: 1009 to the client, never delivered', async (t) => {
  const backend = await recordingBackend(t, { ws: { perMessageDeflate: { threshold: 0 } } });
  const gw = await policyGateway(t, backend.url, { maxMessageSize: { clientToBackend: '1MiB' } });
  const ws = await compressingClient(gw);
  assert.match(ws.extensions, /permessage-deflate/);
  const clientClosed = closeOf(ws);
  const underLimit = Buffer.alloc(MIB, 'a'); // about 1 KiB on the wire
  ws.send(underLimit);
  ws.send(Buffer.alloc(MIB + 1, 'b'));
  assert.deepEqual(await clientClosed, { code: 1009, reason: 'message too big' });
  assert.deepEqual(await backend.closed, { code: 1001, reason: 'client message too big' });
  assert.equal(backend.received.length, 1, 'only the message at the limit arrived');
  assert.ok(backend.received[0]?.equals(underLimit), 'and it arrived intact');
  const line = await tunnelEnded(gw);
  assert.equal(line.code, 'CLIENT_MESSAGE_TOO_BIG');
  assert.equal(await gw.metric('wsgate_limit_hits_total', { limit: 'message_size', action: 'close' }), 1);
});

for (const contextTakeover of [true, false]) {
  test(`messages under the limit arrive intact (context takeover ${contextTakeover ? 'on' : 'off'})`, async (t) => {
    const deflate = { clientNoContextTakeover: !contextTakeover, serverNoContextTakeover: !contextTakeover };
    const backend = await recordingBackend(t, { ws: { perMessageDeflate: { threshold: 0, ...deflate } } });
    const gw = await policyGateway(t, backend.url, { maxMessageSize: { clientToBackend: '64KiB' } });
    const ws = await compressingClient(gw, deflate);
    // The same text again and again: with context takeover the later ones are a few bytes each.
    const sent: Buffer[] = [];
    for (let i = 0; i < 30; i++) {
      const message = Buffer.from(`${'the same words again and again '.repeat(2_000)}${i}`).subarray(
        0,
        60 * KIB,
      );
      sent.push(message);
      ws.send(message);
    }
    await eventually(() => backend.received.length === sent.length, 'every message to arrive', 10_000);
    assert.ok(backend.received.every((message, i) => message.equals(sent[i] as Buffer)));
    ws.send(Buffer.alloc(65 * KIB, 'x'));
    assert.equal((await closeOf(ws)).code, 1009, 'and the next one over the limit is still caught');
    const negotiated = String((await tunnelEnded(gw)).extensions);
    assert.equal(negotiated.includes('client_no_context_takeover'), !contextTakeover, negotiated);
  });
}

test('a compressed message over the limit across fragments is caught and never delivered', async (t) => {
  const backend = await recordingBackend(t, { ws: { perMessageDeflate: { threshold: 0 } } });
  const gw = await policyGateway(t, backend.url, { maxMessageSize: { clientToBackend: '1MiB' } });
  const ws = await compressingClient(gw);
  const clientClosed = closeOf(ws);
  for (const fin of [false, false, false, true])
    ws.send(Buffer.alloc(300 * KIB, 'c'), { fin, compress: true });
  assert.equal((await clientClosed).code, 1009);
  assert.equal((await backend.closed).code, 1001);
  assert.deepEqual(backend.received, []);
});

test('from backend to client: the backend gets 1009, the client 1014 and never the message', async (t) => {
  const backend = await recordingBackend(t, { ws: { perMessageDeflate: { threshold: 0 } } });
  const gw = await policyGateway(t, backend.url, { maxMessageSize: { backendToClient: '256KiB' } });
  const ws = await compressingClient(gw);
  const got: Buffer[] = [];
  ws.on('message', (data: Buffer) => got.push(data));
  const clientClosed = closeOf(ws);
  ws.send('hello');
  await eventually(() => backend.received.length === 1, 'the backend to be connected');
  backend.socket().send(Buffer.alloc(256 * KIB, 'd'));
  backend.socket().send(Buffer.alloc(256 * KIB + 1, 'e'));
  assert.deepEqual(await clientClosed, { code: 1014, reason: 'backend message too big' });
  assert.equal((await backend.closed).code, 1009);
  assert.equal(got.length, 1);
  assert.equal((await tunnelEnded(gw)).code, 'BACKEND_MESSAGE_TOO_BIG');
});

test('a decompression bomb is stopped at the limit without inflating all of it', async (t) => {
  const backend = await recordingBackend(t, { ws: { perMessageDeflate: { threshold: 0 } } });
  const gw = await policyGateway(t, backend.url, {}); // the default limit: 16 MiB
  const ws = await compressingClient(gw);
  const clientClosed = closeOf(ws, 15_000);
  ws.send(Buffer.alloc(64 * MIB)); // 64 MiB of zeros: about 64 KiB compressed
  assert.equal((await clientClosed).code, 1009);
  assert.equal((await backend.closed).code, 1001);
  assert.deepEqual(backend.received, []);
  const line = await tunnelEnded(gw);
  assert.equal(line.code, 'CLIENT_MESSAGE_TOO_BIG');
  const verdict = gw.logs.find((record) => record.msg === 'limit exceeded');
  const inflated = Number(/inflating to (\d+)/.exec(String(verdict?.detail))?.[1]);
  assert.ok(inflated > 16 * MIB, `over the limit (${inflated} bytes)`);
  assert.ok(
    inflated <= 17 * MIB,
    `the inflater stopped right after the limit, not at 64 MiB (${inflated} bytes)`,
  );
});
