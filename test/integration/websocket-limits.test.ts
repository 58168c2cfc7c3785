/**
 * Message limits on real sockets (a `ws` client, a `ws` backend that records every message it got):
 * - a message over maxMessageSize, whole or across fragments, or a frame over maxFrameSize: the
 *   sender gets 1009, the other side a close, and the receiver never gets that message;
 * - the same limit from backend to client: the backend gets 1009, the client 1014;
 * - a rate limit with action close: exactly the burst gets through, then 1008;
 * - a rate limit with action throttle: every message arrives, in order, about as slowly as the
 *   rate says (loose bounds: this machine is shared), and the pause is counted.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { closeOf, openClient } from '../helpers/clients.ts';
import { eventually } from '../helpers/eventually.ts';
import { policyGateway, recordingBackend, tunnelEnded } from '../helpers/recording.ts';

const KIB = 1024;

test('a message over maxMessageSize: the client gets 1009, the backend 1001 and never the message', async (t) => {
  const backend = await recordingBackend(t);
  const gw = await policyGateway(t, backend.url, { maxMessageSize: { clientToBackend: '64KiB' } });
  const ws = await openClient(gw.wsUrl('/'), undefined, { maxPayload: 0 });
  const clientClosed = closeOf(ws);
  ws.send(Buffer.alloc(64 * KIB, 1)); // exactly the limit: allowed
  ws.send(Buffer.alloc(64 * KIB + 1, 2));
  ws.send('after');
  assert.deepEqual(await clientClosed, { code: 1009, reason: 'message too big' });
  assert.deepEqual(await backend.closed, { code: 1001, reason: 'client message too big' });
  assert.deepEqual(
    backend.received.map((m) => m.length),
    [64 * KIB],
    'only the message at the limit arrived',
  );
  const line = await tunnelEnded(gw);
  assert.equal(line.code, 'CLIENT_MESSAGE_TOO_BIG');
  assert.equal(line.initiator, 'gateway');
  assert.equal(await gw.metric('wsgate_limit_hits_total', { limit: 'message_size', action: 'close' }), 1);
  assert.equal(await gw.metric('wsgate_tunnel_errors_total', { code: 'CLIENT_MESSAGE_TOO_BIG' }), 1);
});

test('the size limit counts a message across its fragments', async (t) => {
  const backend = await recordingBackend(t);
  const gw = await policyGateway(t, backend.url, { maxMessageSize: { clientToBackend: '64KiB' } });
  const ws = await openClient(gw.wsUrl('/'));
  const clientClosed = closeOf(ws);
  // 3 fragments of 20 KiB: 60 KiB, under the limit.
  for (const fin of [false, false, true]) ws.send(Buffer.alloc(20 * KIB, 3), { fin });
  // 4 fragments of 20 KiB: the fourth takes the message to 80 KiB.
  for (const fin of [false, false, false, true]) ws.send(Buffer.alloc(20 * KIB, 4), { fin });
  assert.equal((await clientClosed).code, 1009);
  assert.equal((await backend.closed).code, 1001);
  assert.deepEqual(
    backend.received.map((m) => m.length),
    [60 * KIB],
    'the fragmented message over the limit never arrived whole',
  );
});

test('a frame over maxFrameSize closes with 1009, while a message of smaller frames passes', async (t) => {
  const backend = await recordingBackend(t);
  const gw = await policyGateway(t, backend.url, {
    maxMessageSize: { clientToBackend: 'off' },
    maxFrameSize: { clientToBackend: '1KiB' },
  });
  const ws = await openClient(gw.wsUrl('/'));
  const clientClosed = closeOf(ws);
  ws.send(Buffer.alloc(800, 1), { fin: false });
  ws.send(Buffer.alloc(800, 1), { fin: true });
  ws.send(Buffer.alloc(2 * KIB, 2));
  assert.equal((await clientClosed).code, 1009);
  assert.equal((await backend.closed).code, 1001);
  assert.deepEqual(
    backend.received.map((m) => m.length),
    [1600],
  );
  assert.equal(await gw.metric('wsgate_limit_hits_total', { limit: 'frame_size' }), 1);
});

test('a backend message over the backend-to-client limit: the backend gets 1009, the client 1014', async (t) => {
  const backend = await recordingBackend(t);
  const gw = await policyGateway(t, backend.url, { maxMessageSize: { backendToClient: '4KiB' } });
  const ws = await openClient(gw.wsUrl('/'));
  const got: number[] = [];
  ws.on('message', (data: Buffer) => got.push(data.length));
  const clientClosed = closeOf(ws);
  await eventually(
    () => backend.received.length === 0 && gw.gateway.registry.tunnelCount === 1,
    'the tunnel',
  );
  ws.send('hello'); // so that the backend has accepted the connection
  await eventually(() => backend.received.length === 1, 'the backend to get the first message');
  backend.socket().send(Buffer.alloc(4 * KIB, 1));
  backend.socket().send(Buffer.alloc(4 * KIB + 1, 2));
  assert.deepEqual(await clientClosed, { code: 1014, reason: 'backend message too big' });
  assert.deepEqual(await backend.closed, { code: 1009, reason: 'message too big' });
  assert.deepEqual(got, [4 * KIB]);
  assert.equal((await tunnelEnded(gw)).code, 'BACKEND_MESSAGE_TOO_BIG');
});

test('a message rate with action close lets the burst through, then closes with 1008', async (t) => {
  const backend = await recordingBackend(t);
  const gw = await policyGateway(t, backend.url, {
    messageRate: { clientToBackend: { perSecond: 0.1, burst: 3, action: 'close' } },
  });
  const ws = await openClient(gw.wsUrl('/'));
  const clientClosed = closeOf(ws);
  for (let i = 0; i < 6; i++) ws.send(`m${i}`);
  ws.ping('pings are not messages');
  assert.deepEqual(await clientClosed, { code: 1008, reason: 'rate limit exceeded' });
  assert.deepEqual(await backend.closed, { code: 1001, reason: 'client rate limited' });
  assert.deepEqual(backend.received.map(String), ['m0', 'm1', 'm2']);
  assert.equal((await tunnelEnded(gw)).code, 'CLIENT_RATE_LIMITED');
  assert.equal(await gw.metric('wsgate_limit_hits_total', { limit: 'message_rate', action: 'close' }), 1);
});

test('a byte rate with action close closes with 1008 on the frame that goes over', async (t) => {
  const backend = await recordingBackend(t);
  const gw = await policyGateway(t, backend.url, {
    byteRate: { clientToBackend: { perSecond: '1KiB', burst: '10KiB', action: 'close' } },
  });
  const ws = await openClient(gw.wsUrl('/'));
  const clientClosed = closeOf(ws);
  for (let i = 0; i < 4; i++) ws.send(Buffer.alloc(3 * KIB, i));
  assert.equal((await clientClosed).code, 1008);
  assert.deepEqual(
    backend.received.map((m) => m.length),
    [3 * KIB, 3 * KIB, 3 * KIB],
  );
  assert.equal(await gw.metric('wsgate_limit_hits_total', { limit: 'byte_rate', action: 'close' }), 1);
});

test('a throttled sender is slowed to about the message rate, and every message arrives in order', async (t) => {
  const backend = await recordingBackend(t);
  const gw = await policyGateway(t, backend.url, {
    messageRate: { clientToBackend: { perSecond: 20, burst: 5 } },
  });
  const ws = await openClient(gw.wsUrl('/'));
  const count = 35;
  const startedAt = performance.now();
  for (let i = 0; i < count; i++) ws.send(`m${i}`);
  await eventually(() => backend.received.length === count, 'every message to arrive', 15_000);
  const elapsedMs = performance.now() - startedAt;
  // 30 messages over the burst at 20/s: 1.5 s. Loose bounds for a busy machine.
  assert.ok(elapsedMs >= 1_200, `throttled: ${Math.round(elapsedMs)} ms for ${count} messages`);
  assert.ok(elapsedMs < 10_000, `but not stalled: ${Math.round(elapsedMs)} ms`);
  assert.deepEqual(
    backend.received.map(String),
    Array.from({ length: count }, (_, i) => `m${i}`),
    'all delivered, in order',
  );
  ws.close();
  await tunnelEnded(gw);
  assert.ok((await gw.metric('wsgate_limit_hits_total', { limit: 'message_rate', action: 'throttle' })) > 0);
  const throttled = await gw.metric('wsgate_throttled_seconds_total', { direction: 'client_to_backend' });
  assert.ok(throttled >= 1 && throttled < 10, `time throttled counted: ${throttled} s`);
});

test('a throttled byte rate slows a large upload without losing a byte', async (t) => {
  const backend = await recordingBackend(t);
  const gw = await policyGateway(t, backend.url, {
    byteRate: { clientToBackend: { perSecond: '200KiB', burst: '50KiB' } },
  });
  const ws = await openClient(gw.wsUrl('/'));
  const startedAt = performance.now();
  for (let i = 0; i < 20; i++) ws.send(Buffer.alloc(16 * KIB, i));
  await eventually(() => backend.received.length === 20, 'every message to arrive', 15_000);
  const elapsedMs = performance.now() - startedAt;
  // 320 KiB, 50 KiB of burst, 200 KiB/s: about 1.35 s.
  assert.ok(elapsedMs >= 1_000, `throttled: ${Math.round(elapsedMs)} ms`);
  assert.deepEqual(
    backend.received.map((m) => m[0]),
    Array.from({ length: 20 }, (_, i) => i),
  );
  assert.ok(backend.received.every((m) => m.length === 16 * KIB));
  ws.close();
  await tunnelEnded(gw);
});

test('pings do not count as messages: the burst is of data messages only', async (t) => {
  const backend = await recordingBackend(t);
  const gw = await policyGateway(t, backend.url, {
    messageRate: { clientToBackend: { perSecond: 0.1, burst: 3, action: 'close' } },
  });
  const ws = await openClient(gw.wsUrl('/'));
  const clientClosed = closeOf(ws);
  for (let i = 0; i < 5; i++) ws.ping(`p${i}`);
  ws.send('m0');
  ws.ping('between');
  ws.send('m1');
  ws.send('m2');
  await eventually(() => backend.received.length === 3, 'the three messages of the burst');
  assert.equal(ws.readyState, ws.OPEN, 'six pings and three messages: within a burst of three');
  ws.send('m3');
  assert.equal((await clientClosed).code, 1008);
  assert.deepEqual(backend.received.map(String), ['m0', 'm1', 'm2']);
});

test('a backend over its message rate (action close): the backend gets 1008, the client 1014', async (t) => {
  const backend = await recordingBackend(t);
  const gw = await policyGateway(t, backend.url, {
    messageRate: { backendToClient: { perSecond: 0.1, burst: 2, action: 'close' } },
  });
  const ws = await openClient(gw.wsUrl('/'));
  const got: string[] = [];
  ws.on('message', (data: Buffer) => got.push(String(data)));
  const clientClosed = closeOf(ws);
  ws.send('hello');
  await eventually(() => backend.received.length === 1, 'the backend to be connected');
  for (let i = 0; i < 4; i++) backend.socket().send(`b${i}`);
  assert.deepEqual(await clientClosed, { code: 1014, reason: 'backend rate limited' });
  assert.deepEqual(await backend.closed, { code: 1008, reason: 'rate limit exceeded' });
  assert.deepEqual(got, ['b0', 'b1']);
  assert.equal((await tunnelEnded(gw)).code, 'BACKEND_RATE_LIMITED');
});

test('backend-to-client frame size and throttling byte rate: 1009 to the backend for a frame over it', async (t) => {
  const backend = await recordingBackend(t);
  const gw = await policyGateway(t, backend.url, {
    maxFrameSize: { backendToClient: '8KiB' },
    byteRate: { backendToClient: { perSecond: '64KiB', burst: '16KiB' } },
  });
  const ws = await openClient(gw.wsUrl('/'));
  const got: number[] = [];
  ws.on('message', (data: Buffer) => got.push(data.length));
  const clientClosed = closeOf(ws, 10_000);
  ws.send('hello');
  await eventually(() => backend.received.length === 1, 'the backend to be connected');
  const startedAt = performance.now();
  for (let i = 0; i < 10; i++) backend.socket().send(Buffer.alloc(8 * KIB, i)); // 80 KiB: throttled
  await eventually(() => got.length === 10, 'every frame at the limit, throttled', 10_000);
  assert.ok(performance.now() - startedAt >= 700, 'about 1 s: 64 KiB over the burst at 64 KiB/s');
  backend.socket().send(Buffer.alloc(8 * KIB + 1));
  assert.equal((await clientClosed).code, 1014);
  assert.deepEqual(await backend.closed, { code: 1009, reason: 'message too big' });
  assert.equal(got.length, 10);
});
