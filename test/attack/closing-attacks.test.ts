/**
 * Limits and liveness while a tunnel closes or streams, on raw sockets:
 * - after a peer's close frame, the other side's size limit still holds (only throttling stops);
 * - a gateway close queued in the middle of a frame goes out right after that frame, before any
 *   later frame of the same read;
 * - a veto and the sender's own close frame in one read: the gateway closed, with 1009;
 * - a sender held by a throttle, or streaming one long frame, is not idle;
 * - a peer that answers only the latest ping (another ping came right after the gateway's) is
 *   pinged again and stays.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { eventually } from '../helpers/eventually.ts';
import { FakeClock } from '../helpers/fake-clock.ts';
import { closePayload, encodeFrame } from '../helpers/frames.ts';
import { policyGateway, recordingBackend, tunnelEnded } from '../helpers/recording.ts';
import { KIB, rawBackend, rawClient, serverFrame, sleep } from './peers.ts';

/** Moves the fake clock in 1 s steps, letting sockets work between them. */
async function advance(clock: FakeClock, ms: number): Promise<void> {
  for (let moved = 0; moved < ms; moved += 1_000) {
    clock.advance(Math.min(1_000, ms - moved));
    await sleep(10);
  }
}

test("regression: after the backend's close frame, a client message over the size limit still never reaches it", async (t) => {
  const backend = await rawBackend(t);
  const gw = await policyGateway(t, backend.url, { maxMessageSize: { clientToBackend: '64KiB' } });
  const client = await rawClient(t, gw);
  const socket = await backend.connected;
  socket.write(serverFrame({ opcode: 8, payload: closePayload(1000, 'bye') }));
  await eventually(() => client.reader.closeCode === 1000, 'the client to get the close');
  client.send({ opcode: 2, payload: Buffer.alloc(1024 * KIB, 7) });
  client.send({ opcode: 8, payload: closePayload(1000) });
  await tunnelEnded(gw);
  assert.deepEqual(
    backend.readers[0]?.messages().map((m) => m.length),
    [],
    'the message over the limit never arrived',
  );
});

test("regression: after the client's close frame, a backend message over the limit still never reaches it", async (t) => {
  const backend = await rawBackend(t);
  const gw = await policyGateway(t, backend.url, { maxMessageSize: { backendToClient: '4KiB' } });
  const client = await rawClient(t, gw);
  const socket = await backend.connected;
  client.send({ opcode: 8, payload: closePayload(1000, 'bye') });
  await eventually(() => backend.readers[0]?.closeCode === 1000, 'the backend to get the close');
  socket.write(serverFrame({ opcode: 2, payload: Buffer.alloc(1024 * KIB, 7) }));
  await eventually(
    async () => (await gw.metric('wsgate_limit_hits_total', { limit: 'message_size' })) === 1,
    'the limit to stop the message',
  );
  client.socket.destroy();
  await tunnelEnded(gw);
  assert.deepEqual(
    client.reader.messages().map((m) => m.length),
    [],
  );
});

test('regression: a gateway close queued in the middle of a frame goes out right after it, before later frames of the read', async (t) => {
  const clock = new FakeClock();
  const backend = await rawBackend(t);
  const gw = await policyGateway(
    t,
    backend.url,
    { maxMessageSize: { clientToBackend: '64KiB' }, maxLifetime: '10s', lifetimeJitter: 0 },
    clock,
  );
  const client = await rawClient(t, gw);
  await backend.connected;
  const reader = backend.readers[0];
  assert.ok(reader);
  const big = encodeFrame({ masked: true, opcode: 2, payload: Buffer.alloc(10 * KIB, 1) });
  client.socket.write(big.subarray(0, 5_000));
  await eventually(() => reader.bytes >= 5_000, 'the first half of the frame at the backend');
  await advance(clock, 11_000); // the lifetime ends while the stream to the backend is mid-frame
  await eventually(() => client.reader.closeCode === 1001, 'the client to get 1001');
  const after = encodeFrame({ masked: true, opcode: 1, payload: 'after the close was decided' });
  client.socket.write(Buffer.concat([big.subarray(5_000), after]));
  await eventually(() => reader.closeCode !== undefined, 'the backend to get the close frame');
  assert.deepEqual(
    reader.frames.map((frame) => frame.opcode),
    [2, 8],
    'the close frame follows the frame in progress directly',
  );
  assert.equal(reader.closeCode, 1001);
  await tunnelEnded(gw);
});

test("regression: a message over the limit and the sender's close frame in one read: the gateway closed, with 1009", async (t) => {
  const backend = await recordingBackend(t);
  const gw = await policyGateway(t, backend.url, { maxMessageSize: { clientToBackend: '1KiB' } });
  const client = await rawClient(t, gw);
  const big = encodeFrame({ masked: true, opcode: 2, payload: Buffer.alloc(2 * KIB, 1) });
  const close = encodeFrame({ masked: true, opcode: 8, payload: closePayload(1000, 'done') });
  client.socket.write(Buffer.concat([big, close]));
  assert.equal((await backend.closed).code, 1001);
  const line = await tunnelEnded(gw);
  assert.equal(line.code, 'CLIENT_MESSAGE_TOO_BIG');
  assert.equal(line.initiator, 'gateway');
  assert.equal(line.closeCode, 1009);
  assert.equal(await gw.metric('wsgate_closes_total', { initiator: 'gateway', code: '1009' }), 1);
});

test('regression: a sender the gateway throttles is not idle', async (t) => {
  const clock = new FakeClock();
  const backend = await recordingBackend(t);
  const gw = await policyGateway(
    t,
    backend.url,
    {
      idleTimeout: '5s',
      byteRate: { clientToBackend: { perSecond: '1KiB', burst: '1KiB' } },
      // The ping toward the client is what notices it leave while the gateway does not read it.
      keepalive: { client: '1s', timeout: '30s' },
    },
    clock,
  );
  const client = await rawClient(t, gw);
  client.send({ opcode: 2, payload: Buffer.alloc(20 * KIB, 1) }); // about 19 s of debt
  client.send({ opcode: 2, payload: Buffer.alloc(10, 2) });
  await advance(clock, 8_000);
  assert.equal(client.reader.closeCode, undefined, 'throttled for 8 s of a 5 s idle timeout: kept');
  client.socket.destroy();
  await advance(clock, 3_000); // the next pings toward the gone client fail
  await tunnelEnded(gw);
});

test('regression: one large frame streaming for longer than the idle timeout is not idle', async (t) => {
  const clock = new FakeClock();
  const backend = await recordingBackend(t);
  const gw = await policyGateway(t, backend.url, { idleTimeout: '5s' }, clock);
  const client = await rawClient(t, gw);
  const frame = encodeFrame({ masked: true, opcode: 2, payload: Buffer.alloc(100 * KIB, 1) });
  for (let at = 0; at < 80 * KIB; at += 10 * KIB) {
    client.socket.write(frame.subarray(at, at + 10 * KIB));
    await advance(clock, 1_000);
  }
  assert.equal(client.reader.closeCode, undefined, '8 s into one frame, bytes still coming: kept');
  client.socket.write(frame.subarray(80 * KIB));
  await eventually(() => backend.received.length === 1, 'the frame to arrive whole');
  await advance(clock, 7_000);
  assert.equal(client.reader.closeCode, 1001, 'then quiet: idle');
  await tunnelEnded(gw);
});

test('regression: a client that answers only the latest ping is pinged again and stays', async (t) => {
  const clock = new FakeClock();
  const backend = await rawBackend(t);
  const gw = await policyGateway(t, backend.url, { keepalive: { client: '5s', timeout: '8s' } }, clock);
  const client = await rawClient(t, gw);
  const socket = await backend.connected;
  await advance(clock, 6_000);
  await eventually(() => client.reader.controls(9).length === 1, "the gateway's ping");
  // The backend pings right after: the client answers only that one (RFC 6455 §5.5.3 allows it).
  socket.write(serverFrame({ opcode: 9, payload: 'backend ping' }));
  await eventually(() => client.reader.controls(9).length === 2, "the backend's ping");
  client.send({ opcode: 10, payload: 'backend ping' });
  await advance(clock, 5_000);
  await eventually(
    () => client.reader.controls(9).length === 3,
    'a new gateway ping, the first still unanswered',
  );
  const latest = client.reader.controls(9)[2] as Buffer;
  client.send({ opcode: 10, payload: latest });
  await eventually(async () => (await gw.metric('wsgate_ping_rtt_seconds')) > 0, 'the answer to be taken');
  await advance(clock, 2_000);
  assert.equal(client.reader.closeCode, undefined, 'alive: it answered the latest ping');
  assert.equal(await gw.metric('wsgate_dead_peers_total'), 0);
  client.socket.destroy();
  await tunnelEnded(gw);
});
