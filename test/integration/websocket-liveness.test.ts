/**
 * The time-based policy on real sockets, with the gateway's clock in the test's hands (FakeClock):
 * - an idle pair is closed with 1001 on both legs, a chatty one is kept;
 * - the gateway pings the client; a `ws` client answers, its pong never reaches the backend, the
 *   round trip is measured, and the peers' own pings and pongs still pass both ways;
 * - a client that answers nothing is closed as dead (the backend gets 1001), but not one whose
 *   answer sits unread because the gateway throttles it;
 * - backend keepalive: the backend's pong never reaches the client;
 * - a connection is closed with 1001 at its maximum lifetime.
 */
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { test } from 'node:test';
import type { WebSocket } from 'ws';
import { closeOf, handshakeHeaders, openClient } from '../helpers/clients.ts';
import { eventually } from '../helpers/eventually.ts';
import { FakeClock } from '../helpers/fake-clock.ts';
import type { LogRecord, TestGateway } from '../helpers/gateway.ts';
import { policyGateway, recordingBackend } from '../helpers/recording.ts';

function closedLine(gw: TestGateway): LogRecord | undefined {
  return gw.logs.find((line) => line.msg === 'websocket closed');
}

/** Moves the clock in 1 s steps (the sweeper's tick here), letting sockets work between steps. */
async function advance(clock: FakeClock, ms: number): Promise<void> {
  for (let moved = 0; moved < ms; moved += 1_000) {
    clock.advance(Math.min(1_000, ms - moved));
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Gateway pings answered by `side` so far (the RTT histogram's count). */
async function rttCount(gw: TestGateway, side: string): Promise<number> {
  const histogram = await gw.gateway.metrics.registry.getSingleMetric('wsgate_ping_rtt_seconds')?.get();
  const count = histogram?.values.find(
    (sample) =>
      (sample as { metricName?: string }).metricName === 'wsgate_ping_rtt_seconds_count' &&
      sample.labels.side === side,
  );
  return count?.value ?? 0;
}

/** Sends `text` and waits for the echo. */
async function roundTrip(ws: WebSocket, text: string): Promise<void> {
  const echoed = new Promise<void>((resolve) => {
    const onMessage = (data: Buffer): void => {
      if (String(data) !== text) return;
      ws.off('message', onMessage);
      resolve();
    };
    ws.on('message', onMessage);
  });
  ws.send(text);
  await echoed;
}

test('an idle pair is closed with 1001 on both legs; a chatty one stays', async (t) => {
  const clock = new FakeClock();
  const backend = await recordingBackend(t, { echo: true });
  const gw = await policyGateway(t, backend.url, { idleTimeout: '10s', keepalive: { client: 'off' } }, clock);

  const chatty = await openClient(gw.wsUrl('/chatty'));
  for (let i = 0; i < 6; i++) {
    await advance(clock, 4_000);
    await roundTrip(chatty, `still here ${i}`);
  }
  assert.equal(chatty.readyState, chatty.OPEN, '24 s of fake time with a message every 4 s: kept');

  const idle = await openClient(gw.wsUrl('/idle'));
  const idleClosed = closeOf(idle);
  const chattyClosed = closeOf(chatty);
  await roundTrip(idle, 'hello');
  await advance(clock, 11_000);
  assert.deepEqual(await idleClosed, { code: 1001, reason: 'idle timeout' });
  assert.deepEqual(await chattyClosed, { code: 1001, reason: 'idle timeout' }, 'quiet for 11 s now too');
  assert.deepEqual(await backend.closed, { code: 1001, reason: 'idle timeout' });
  await eventually(() => gw.gateway.registry.tunnelCount === 0, 'both tunnels to end');
  assert.equal(closedLine(gw)?.code, 'IDLE_TIMEOUT');
  assert.equal(await gw.metric('wsgate_limit_hits_total', { limit: 'idle_timeout', action: 'close' }), 2);
});

test("the gateway's pings reach the client, their pongs never reach the backend, and the peers' own pass", async (t) => {
  const clock = new FakeClock();
  const backend = await recordingBackend(t, { echo: true });
  const gw = await policyGateway(t, backend.url, { keepalive: { client: '5s', timeout: '5s' } }, clock);
  const ws = await openClient(gw.wsUrl('/'));
  const clientPings: Buffer[] = [];
  const clientPongs: Buffer[] = [];
  ws.on('ping', (data: Buffer) => clientPings.push(data));
  ws.on('pong', (data: Buffer) => clientPongs.push(data));
  await roundTrip(ws, 'hello');

  for (let i = 0; i < 4; i++) {
    await advance(clock, 5_000);
    await eventually(() => clientPings.length === i + 1, `gateway ping ${i + 1} to reach the client`);
    await eventually(async () => (await rttCount(gw, 'client')) === i + 1, `pong ${i + 1} to be read`);
  }
  assert.equal(clientPings.length, 4);
  assert.ok(
    clientPings.every((payload) => payload.length === 8),
    'an 8-byte payload each',
  );
  assert.equal(new Set(clientPings.map((p) => p.toString('hex'))).size, 4, 'a fresh payload each time');

  // The peers' own pings and pongs still pass, both ways.
  ws.ping('from the client');
  backend.socket().ping('from the backend');
  await eventually(
    () => backend.pings.length === 1 && clientPongs.length === 1 && clientPings.length === 5,
    'the peers to ping each other',
  );
  assert.equal(String(backend.pings[0]), 'from the client');
  assert.equal(String(clientPongs[0]), 'from the client', "the backend's pong reached the client");
  await eventually(() => backend.pongs.length === 1, "the client's pong to reach the backend");
  assert.equal(String(backend.pongs[0]), 'from the backend');

  await advance(clock, 20_000);
  assert.equal(ws.readyState, ws.OPEN, 'a client that answers stays');
  assert.deepEqual(
    backend.pongs.map(String),
    ['from the backend'],
    "the gateway's pongs never reached the backend",
  );
  assert.ok((await rttCount(gw, 'client')) >= 8, 'every round trip measured');
  ws.close();
  await eventually(() => gw.gateway.registry.tunnelCount === 0, 'the tunnel to end');
});

/** A WebSocket on a raw socket that reads what it gets and never answers anything. */
async function silentClient(gw: TestGateway): Promise<Socket> {
  const socket = connect(gw.port(), '127.0.0.1');
  socket.on('error', () => {});
  const lines = Object.entries(handshakeHeaders()).map(([name, value]) => `${name}: ${value}`);
  socket.write(`GET / HTTP/1.1\r\n${lines.join('\r\n')}\r\n\r\n`);
  let received = '';
  await new Promise<void>((resolve) => {
    const onData = (chunk: Buffer): void => {
      received += chunk.toString('latin1');
      if (!received.includes('\r\n\r\n')) return;
      socket.off('data', onData);
      resolve();
    };
    socket.on('data', onData);
  });
  assert.match(received, /^HTTP\/1.1 101/);
  socket.resume();
  return socket;
}

test('a client that answers nothing is closed as dead; the backend gets 1001', async (t) => {
  const clock = new FakeClock();
  const backend = await recordingBackend(t, { echo: true });
  const gw = await policyGateway(t, backend.url, { keepalive: { client: '5s', timeout: '3s' } }, clock);
  const socket = await silentClient(gw);
  t.after(() => socket.destroy());
  await eventually(() => gw.gateway.registry.tunnelCount === 1, 'the tunnel');
  await advance(clock, 5_000); // the ping goes out
  await advance(clock, 2_000);
  assert.equal(gw.gateway.registry.tunnelCount, 1, 'not before the timeout');
  await advance(clock, 2_000);
  assert.deepEqual(await backend.closed, { code: 1001, reason: 'client not responding' });
  await advance(clock, 3_000); // the close timeout destroys the silent client's socket
  await eventually(() => gw.gateway.registry.tunnelCount === 0, 'the tunnel to end', 5_000);
  assert.equal(closedLine(gw)?.code, 'CLIENT_UNRESPONSIVE');
  assert.equal(await gw.metric('wsgate_dead_peers_total', { side: 'client' }), 1);
});

test('regression: a client throttled by the gateway is not declared dead while its pong sits unread', async (t) => {
  const clock = new FakeClock();
  const backend = await recordingBackend(t, { echo: true });
  const gw = await policyGateway(
    t,
    backend.url,
    {
      keepalive: { client: '5s', timeout: '3s' },
      messageRate: { clientToBackend: { perSecond: 0.02, burst: 1 } }, // one message per 50 s
    },
    clock,
  );
  const ws = await openClient(gw.wsUrl('/'));
  const pinged = new Promise<void>((resolve) => ws.once('ping', () => resolve()));
  await roundTrip(ws, 'first'); // takes the only token
  await roundTrip(ws, 'second');
  ws.send('third');
  await new Promise((resolve) => setTimeout(resolve, 50));
  await advance(clock, 6_000); // the sweeper ticks every 750 ms here: the ping goes out at 5.25 s
  await pinged; // the client answered at once, but the gateway is not reading it
  await advance(clock, 20_000);
  assert.equal(ws.readyState, ws.OPEN, 'throttled, not dead');
  assert.deepEqual(backend.received.map(String), ['first', 'second']);
  await advance(clock, 30_000);
  await eventually(() => backend.received.length === 3, 'the held message to go through after the throttle');
  assert.equal(ws.readyState, ws.OPEN);
  assert.equal(await gw.metric('wsgate_dead_peers_total'), 0);
  await advance(clock, 50_000); // "third" went into debt again: its throttle ends, the close can be read
  assert.equal(await gw.metric('wsgate_dead_peers_total'), 0);
  ws.close();
  await eventually(() => gw.gateway.registry.tunnelCount === 0, 'the tunnel to end');
});

test("backend keepalive: the gateway pings the backend and the backend's pong never reaches the client", async (t) => {
  const clock = new FakeClock();
  const backend = await recordingBackend(t, { echo: true });
  const gw = await policyGateway(t, backend.url, { keepalive: { client: 'off', backend: '5s' } }, clock);
  const ws = await openClient(gw.wsUrl('/'));
  const clientPongs: Buffer[] = [];
  ws.on('pong', (data: Buffer) => clientPongs.push(data));
  await roundTrip(ws, 'hello');
  const backendPings = () => backend.pings.length;
  for (let i = 1; i <= 3; i++) {
    await advance(clock, 5_000);
    await eventually(() => backendPings() === i, `gateway ping ${i} to reach the backend`);
    await eventually(async () => (await rttCount(gw, 'backend')) === i, `pong ${i} to be read`);
  }
  await roundTrip(ws, 'after the pings'); // anything the backend sent before this has arrived
  assert.deepEqual(clientPongs, [], "the backend's pongs stayed in the gateway");
  assert.equal(ws.readyState, ws.OPEN);
  ws.close();
  await eventually(() => gw.gateway.registry.tunnelCount === 0, 'the tunnel to end');
});

test('a connection is closed with 1001 at its maximum lifetime', async (t) => {
  const clock = new FakeClock();
  const backend = await recordingBackend(t, { echo: true });
  const gw = await policyGateway(
    t,
    backend.url,
    { maxLifetime: '1m', lifetimeJitter: 0, keepalive: { client: 'off' } },
    clock,
  );
  const ws = await openClient(gw.wsUrl('/'));
  const closed = closeOf(ws);
  await roundTrip(ws, 'hello');
  await advance(clock, 59_000);
  assert.equal(ws.readyState, ws.OPEN, 'alive before its lifetime');
  await advance(clock, 2_000);
  assert.deepEqual(await closed, { code: 1001, reason: 'max lifetime reached' });
  assert.deepEqual(await backend.closed, { code: 1001, reason: 'max lifetime reached' });
  await eventually(() => closedLine(gw) !== undefined, 'the access line');
  assert.equal(closedLine(gw)?.code, 'LIFETIME_EXCEEDED');
});

test("pingsCountAsActivity: the peers' own pings keep a connection, the gateway's keepalive never does", async (t) => {
  const clock = new FakeClock();
  const backend = await recordingBackend(t, { echo: true });
  const gw = await policyGateway(
    t,
    backend.url,
    { idleTimeout: '10s', pingsCountAsActivity: true, keepalive: { client: '3s', timeout: '30s' } },
    clock,
  );
  const pinging = await openClient(gw.wsUrl('/pinging'));
  const quiet = await openClient(gw.wsUrl('/quiet')); // answers the gateway's pings, nothing else
  const quietClosed = closeOf(quiet);
  for (let i = 0; i < 6; i++) {
    pinging.ping(`keep me ${i}`);
    await advance(clock, 3_000);
  }
  assert.deepEqual(
    await quietClosed,
    { code: 1001, reason: 'idle timeout' },
    'pongs to the gateway are not activity',
  );
  assert.equal(pinging.readyState, pinging.OPEN, '18 s of its own pings every 3 s: kept');
  assert.ok((await rttCount(gw, 'client')) >= 2, 'the quiet one did answer the gateway');
  pinging.close();
  await eventually(() => gw.gateway.registry.tunnelCount === 0, 'both tunnels to end');
});

test('pings do not count as activity by default: a client that only pings is idle', async (t) => {
  const clock = new FakeClock();
  const backend = await recordingBackend(t, { echo: true });
  const gw = await policyGateway(t, backend.url, { idleTimeout: '10s' }, clock);
  const ws = await openClient(gw.wsUrl('/'));
  const closed = closeOf(ws);
  for (let i = 0; i < 4; i++) {
    ws.ping(`ping ${i}`);
    await advance(clock, 3_000);
  }
  assert.deepEqual(await closed, { code: 1001, reason: 'idle timeout' });
});

test('a backend that answers nothing is closed as dead: the client gets 1014', async (t) => {
  const clock = new FakeClock();
  const backend = await recordingBackend(t, { echo: true, ws: { autoPong: false } });
  const gw = await policyGateway(
    t,
    backend.url,
    { keepalive: { client: 'off', backend: '5s', timeout: '3s' } },
    clock,
  );
  const ws = await openClient(gw.wsUrl('/'));
  const closed = closeOf(ws);
  await roundTrip(ws, 'hello');
  await advance(clock, 10_000);
  assert.deepEqual(await closed, { code: 1014, reason: 'backend not responding' });
  assert.equal((await backend.closed).code, 1001);
  await eventually(() => closedLine(gw) !== undefined, 'the access line');
  assert.equal(closedLine(gw)?.code, 'BACKEND_UNRESPONSIVE');
  assert.equal(await gw.metric('wsgate_dead_peers_total', { side: 'backend' }), 1);
});
