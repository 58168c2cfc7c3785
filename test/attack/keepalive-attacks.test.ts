/**
 * Peers that play games with the gateway's keepalive (FakeClock; the sweeper ticks every 750 ms
 * with a 3 s timeout):
 * - answering the gateway's ping with a wrong payload, or twice, or with a pong over 125 bytes;
 * - flooding unsolicited pongs (some split byte by byte) while the gateway awaits its own;
 * - a client that cannot answer because the gateway's ping is stuck behind a large frame the
 *   backend is still sending (the ping waits for a frame boundary).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { openClient } from '../helpers/clients.ts';
import { eventually } from '../helpers/eventually.ts';
import { FakeClock } from '../helpers/fake-clock.ts';
import { encodeFrame } from '../helpers/frames.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import { policyGateway, recordingBackend, tunnelEnded } from '../helpers/recording.ts';
import { KIB, MIB, rawBackend, rawClient, serverFrame, sleep } from './peers.ts';

/** Moves the clock in 250 ms steps, letting sockets work between steps. */
async function advance(clock: FakeClock, ms: number): Promise<void> {
  for (let moved = 0; moved < ms; moved += 250) {
    clock.advance(Math.min(250, ms - moved));
    await sleep(3);
  }
}

async function rttCount(gw: TestGateway): Promise<number> {
  const histogram = await gw.gateway.metrics.registry.getSingleMetric('wsgate_ping_rtt_seconds')?.get();
  const count = histogram?.values.find(
    (sample) =>
      (sample as { metricName?: string }).metricName === 'wsgate_ping_rtt_seconds_count' &&
      sample.labels.side === 'client',
  );
  return count?.value ?? 0;
}

const KEEPALIVE = { keepalive: { client: '5s', timeout: '3s' } };

test('a client answering the ping with a wrong payload: its pongs pass on, no round trip is counted, it is alive while it talks, and the pings go on', async (t) => {
  const clock = new FakeClock();
  const backend = await recordingBackend(t);
  const gw = await policyGateway(t, backend.url, KEEPALIVE, clock);
  const client = await rawClient(t, gw);
  await eventually(() => gw.gateway.registry.tunnelCount === 1, 'the tunnel');
  await advance(clock, 5_250);
  await eventually(() => client.reader.controls(9).length === 1, 'the gateway ping');
  const ping = client.reader.controls(9)[0] as Buffer;
  const wrong = Buffer.from(ping);
  wrong[0] = (wrong[0] ?? 0) ^ 0xff;
  for (let i = 0; i < 8; i++) {
    client.send({ opcode: 10, payload: wrong });
    client.send({ opcode: 10, payload: Buffer.concat([ping, Buffer.from('x')]) }); // a longer one
    client.send({ opcode: 10, payload: ping.subarray(0, 7) }); // a shorter one
    await advance(clock, 1_000);
  }
  await eventually(() => backend.pongs.length === 24, 'every wrong pong to reach the backend');
  // A peer may answer only the latest ping (RFC 6455 §5.5.3): the pings go on at their interval.
  assert.equal(client.reader.controls(9).length, 2, 'the next ping came at its interval, unanswered or not');
  assert.equal(await rttCount(gw), 0, 'no round trip counted for a wrong pong');
  assert.equal(gw.gateway.registry.tunnelCount, 1, 'alive while it sends something');
  // It answers right at last, twice: the first is the gateway's, the second passes on.
  client.send({ opcode: 10, payload: ping });
  client.send({ opcode: 10, payload: ping });
  await eventually(async () => (await rttCount(gw)) === 1, 'the right pong to be taken');
  await eventually(() => backend.pongs.length === 25, 'the duplicate to pass on');
  assert.ok(backend.pongs[24]?.equals(ping));
  // Then it falls silent (the second ping still owed): dead after the timeout, pings or not.
  await advance(clock, 6_000);
  await eventually(() => client.reader.controls(9).length >= 3, 'the next ping');
  await advance(clock, 4_000);
  assert.deepEqual(await backend.closed, { code: 1001, reason: 'client not responding' });
  await eventually(() => client.reader.closeCode !== undefined, 'the close frame');
  assert.equal(client.reader.closeCode, 1001);
  client.socket.destroy();
  assert.equal((await tunnelEnded(gw)).code, 'CLIENT_UNRESPONSIVE');
});

test('a pong over 125 bytes while the gateway awaits one: 1002, nothing crashes', async (t) => {
  const clock = new FakeClock();
  const backend = await recordingBackend(t);
  const gw = await policyGateway(t, backend.url, KEEPALIVE, clock);
  const client = await rawClient(t, gw);
  client.send({ opcode: 1, payload: 'hi' });
  await eventually(() => backend.received.length === 1, 'the backend');
  await advance(clock, 5_250);
  await eventually(() => client.reader.controls(9).length === 1, 'the gateway ping');
  client.send({ opcode: 10, payload: Buffer.alloc(126, 1), lengthBits: 16 });
  await client.closed;
  assert.equal(client.reader.closeCode, 1002);
  assert.equal((await backend.closed).code, 1002);
  assert.deepEqual(backend.pongs, []);
  assert.equal((await tunnelEnded(gw)).code, 'CLIENT_PROTOCOL_ERROR');
});

test('a flood of unsolicited pongs, some split byte by byte, around the gateway pong: all pass but that one', async (t) => {
  const clock = new FakeClock();
  const backend = await recordingBackend(t);
  const gw = await policyGateway(
    t,
    backend.url,
    { ...KEEPALIVE, messageRate: { clientToBackend: { perSecond: 1_000, burst: 1_000 } } },
    clock,
  );
  const client = await rawClient(t, gw);
  await advance(clock, 5_250);
  await eventually(() => client.reader.controls(9).length === 1, 'the gateway ping');
  const ping = client.reader.controls(9)[0] as Buffer;
  const pong = (i: number): Buffer =>
    encodeFrame({ opcode: 10, masked: true, payload: Buffer.from(`p${i}`.padEnd(8 + (i % 100), '.')) });
  const before = Buffer.concat(Array.from({ length: 2_000 }, (_, i) => pong(i)));
  const answer = encodeFrame({ opcode: 10, masked: true, payload: ping });
  const after = Buffer.concat(Array.from({ length: 2_000 }, (_, i) => pong(2_000 + i)));
  client.socket.write(before);
  // The gateway's own pong, byte by byte, among a few split pongs and a message.
  const split = Buffer.concat([
    pong(9_000),
    answer,
    pong(9_001),
    encodeFrame({ opcode: 1, masked: true, payload: 'msg' }),
  ]);
  for (const byte of split) {
    client.socket.write(Buffer.of(byte));
    await sleep(0);
  }
  client.socket.write(after);
  await eventually(
    () => backend.pongs.length === 4_002 && backend.received.length === 1,
    'every pong',
    10_000,
  );
  const expected = [
    ...Array.from({ length: 2_000 }, (_, i) => i),
    9_000,
    9_001,
    ...Array.from({ length: 2_000 }, (_, i) => 2_000 + i),
  ];
  assert.deepEqual(
    backend.pongs.map((p) => Number(/^p(\d+)/.exec(String(p))?.[1])),
    expected,
    'in order, whole, the gateway pong left out',
  );
  assert.equal(await rttCount(gw), 1);
  client.send({ opcode: 8, payload: Buffer.from([0x03, 0xe8]) });
  await tunnelEnded(gw);
});

test('regression: a client is not declared dead for a ping it never got (stuck behind a large frame from the backend)', async (t) => {
  const clock = new FakeClock();
  const backend = await rawBackend(t);
  const gw = await policyGateway(t, backend.url, KEEPALIVE, clock);
  const ws = await openClient(gw.wsUrl('/'), undefined, { maxPayload: 0 });
  const pings: Buffer[] = [];
  ws.on('ping', (data: Buffer) => pings.push(data));
  const socket = await backend.connected;
  // A 1 MiB frame, streamed at 8 KiB per (fake) second: the client is busy receiving, not silent.
  const frame = serverFrame({ opcode: 2, payload: Buffer.alloc(MIB, 3) });
  let at = 8 * KIB;
  socket.write(frame.subarray(0, at));
  for (let second = 0; second < 15; second++) {
    await advance(clock, 1_000);
    socket.write(frame.subarray(at, at + 8 * KIB));
    at += 8 * KIB;
  }
  const dead = await gw.metric('wsgate_dead_peers_total', { side: 'client' });
  const pinged = pings.length;
  t.diagnostic(`after 15 s inside one frame: pings that reached the client ${pinged}, dead peers ${dead}`);
  // Let the frame finish: the ping goes out at its end and the client answers it.
  socket.write(frame.subarray(at));
  await sleep(50);
  await advance(clock, 1_000);
  ws.terminate();
  socket.destroy();
  await eventually(() => gw.gateway.registry.tunnelCount === 0, 'the tunnel to end');
  assert.equal(
    dead,
    0,
    `the client was declared dead (CLIENT_UNRESPONSIVE) though the gateway's ping never reached it (${pinged} pings received by then): the ping waits for the end of the backend's frame, the deadline does not`,
  );
});

test('regression: a backend is not declared dead because the gateway throttles the client in the middle of a frame', async (t) => {
  const clock = new FakeClock();
  const backend = await recordingBackend(t); // a ws backend: it answers every ping at once
  const gw = await policyGateway(
    t,
    backend.url,
    {
      keepalive: { client: 'off', backend: '2s', timeout: '3s' },
      messageRate: { clientToBackend: { perSecond: 0.01, burst: 1 } }, // one message per 100 s
    },
    clock,
  );
  const client = await rawClient(t, gw);
  client.send({ opcode: 1, payload: 'A' }); // takes the only token
  await eventually(() => backend.received.length === 1, 'A');
  // B goes on into debt: the gateway stops reading the client with B's frame unfinished.
  const b = encodeFrame({ opcode: 2, masked: true, payload: Buffer.alloc(1_000, 2) });
  client.socket.write(b.subarray(0, 20));
  await sleep(30);
  client.socket.write(b.subarray(20)); // the rest sits unread until the debt is paid (100 s)
  await sleep(30);
  assert.equal(backend.received.length, 1, 'B is held mid-frame by the throttle');
  await advance(clock, 8_000); // the ping to the backend is due at 2 s; the timeout is 3 s
  const dead = await gw.metric('wsgate_dead_peers_total', { side: 'backend' });
  const line = gw.logs.find((record) => record.msg === 'websocket closed' || record.msg === 'limit exceeded');
  t.diagnostic(
    `backend pings ${backend.pings.length}, backend declared dead ${dead}, ${String(line?.code)}, received ${backend.received.length}`,
  );
  for (const tunnel of gw.gateway.registry.tunnels()) tunnel.destroy();
  await eventually(() => gw.gateway.registry.tunnelCount === 0, 'the tunnel to end');
  assert.equal(
    dead,
    0,
    `the idle, answering backend was declared dead (${backend.pings.length} pings reached it): the ping waits for the end of the throttled client's frame, its deadline runs`,
  );
});

test('regression: a gateway ping that waited for the end of a client frame goes out when that frame ends, even if a later one is throttled', async (t) => {
  const clock = new FakeClock();
  const backend = await recordingBackend(t); // a ws backend: it answers every ping
  const gw = await policyGateway(
    t,
    backend.url,
    {
      keepalive: { client: 'off', backend: '2s', timeout: '3s' },
      messageRate: { clientToBackend: { perSecond: 0.01, burst: 2 } },
    },
    clock,
  );
  const client = await rawClient(t, gw);
  client.send({ opcode: 1, payload: 'A' }); // 2 tokens -> 1
  const b = encodeFrame({ opcode: 2, masked: true, payload: Buffer.alloc(1_000, 2) });
  client.socket.write(b.subarray(0, 20)); // B: 1 -> 0, not in debt, left mid-frame
  await eventually(() => backend.received.length === 1, 'A');
  await sleep(30);
  await advance(clock, 2_250); // the ping to the backend is due: it waits for the end of B
  assert.equal(backend.pings.length, 0, 'not inside B');
  // In one read: the rest of B (a frame boundary), C (0 -> -1) and D, which waits for the bucket.
  const c = encodeFrame({ opcode: 1, masked: true, payload: 'C' });
  const d = encodeFrame({ opcode: 1, masked: true, payload: 'D' });
  client.socket.write(Buffer.concat([b.subarray(20), c, d]));
  await eventually(() => backend.received.length === 3, 'B and C');
  await sleep(30);
  await advance(clock, 500);
  const pings = backend.pings.length;
  await advance(clock, 4_000);
  const dead = await gw.metric('wsgate_dead_peers_total', { side: 'backend' });
  t.diagnostic(`backend pings ${pings}, backend declared dead ${dead}`);
  for (const tunnel of gw.gateway.registry.tunnels()) tunnel.destroy();
  await eventually(() => gw.gateway.registry.tunnelCount === 0, 'the tunnel to end');
  assert.ok(
    pings >= 1,
    'the pending ping did not go out at the frame boundary the read reached before D waited',
  );
  assert.equal(dead, 0, 'a backend that answers every ping was declared dead');
});

test('regression: the maximum lifetime ends a client throttled in the middle of a frame with close frames, not by the close timeout', async (t) => {
  const clock = new FakeClock();
  const backend = await recordingBackend(t);
  const gw = await policyGateway(
    t,
    backend.url,
    {
      keepalive: { client: 'off' },
      maxLifetime: '10s',
      lifetimeJitter: 0,
      messageRate: { clientToBackend: { perSecond: 0.01, burst: 1 } }, // one message per 100 s
    },
    clock,
  );
  const client = await rawClient(t, gw);
  client.send({ opcode: 1, payload: 'A' });
  await eventually(() => backend.received.length === 1, 'A');
  const b = encodeFrame({ opcode: 2, masked: true, payload: Buffer.alloc(1_000, 2) });
  client.socket.write(b.subarray(0, 20)); // B goes on into debt: the client is paused mid-frame
  await sleep(30);
  client.socket.write(b.subarray(20));
  await sleep(30);
  assert.equal(backend.received.length, 1, 'B is held mid-frame by the throttle');
  await advance(clock, 11_000);
  // The client answers the gateway's close at once, as a client should.
  await eventually(() => client.reader.closeCode !== undefined, 'the close frame to the client');
  assert.equal(client.reader.closeCode, 1001);
  client.send({ opcode: 8, payload: Buffer.from([0x03, 0xe9]) });
  const closed = await backend.closed;
  const line = await tunnelEnded(gw);
  assert.deepEqual(
    { backend: closed, code: line.code },
    { backend: { code: 1001, reason: 'max lifetime reached' }, code: 'LIFETIME_EXCEEDED' },
    'the backend got a close frame and the tunnel ended by its closing handshake',
  );
});
