/**
 * Peers that vanish while the gateway is not reading them:
 * - a client that resets (RST) during a throttle pause, with a little or a lot queued;
 * - a client that resets while a read waits for the inflater's verdict;
 * - a client that resets in the middle of a frame whose header the gateway holds back.
 * Each time the process must not throw, the backend must be told (1001 "client went away"), and
 * every socket must be released.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { eventually } from '../helpers/eventually.ts';
import { encodeFrame } from '../helpers/frames.ts';
import { policyGateway, recordingBackend, tunnelEnded } from '../helpers/recording.ts';
import { deflateMessage, MIB, rawClient, sleep } from './peers.ts';

test('a client that resets with a few messages queued behind a throttle pause is released', async (t) => {
  const backend = await recordingBackend(t);
  const gw = await policyGateway(t, backend.url, {
    messageRate: { clientToBackend: { perSecond: 20, burst: 2 } },
  });
  const client = await rawClient(t, gw);
  for (let i = 0; i < 10; i++) client.send({ opcode: 1, payload: `m${i}` });
  await eventually(() => backend.received.length >= 3, 'the burst');
  client.socket.resetAndDestroy();
  assert.deepEqual(await backend.closed, { code: 1001, reason: 'client went away' });
  const line = await tunnelEnded(gw);
  assert.equal(line.code, 'CLIENT_LOST');
  // Whatever went through arrived in order and whole.
  assert.deepEqual(
    backend.received.map(String),
    Array.from({ length: backend.received.length }, (_, i) => `m${i}`),
  );
});

test('regression: a client that fills its buffers with tiny messages and resets during the throttle is released promptly', async (t) => {
  const backend = await recordingBackend(t);
  const gw = await policyGateway(t, backend.url, {
    messageRate: { clientToBackend: { perSecond: 200, burst: 2 } },
  });
  const client = await rawClient(t, gw);
  const one = encodeFrame({ opcode: 1, masked: true, payload: 'a' });
  const chunk = Buffer.concat(Array.from({ length: 9_362 }, () => one));
  // Write until the kernel and the gateway's read buffer are full, and the gateway is throttling.
  for (let i = 0; i < 200 && client.socket.write(chunk); i++);
  await eventually(
    async () =>
      (await gw.metric('wsgate_limit_hits_total', { limit: 'message_rate', action: 'throttle' })) >= 1,
    'the gateway to throttle the client',
  );
  const before = backend.received.length;
  client.socket.resetAndDestroy();
  const resetAt = performance.now();
  const ended = await eventually(
    () => gw.gateway.registry.tunnelCount === 0,
    'the tunnel to end',
    5_000,
  ).then(
    () => true,
    () => false,
  );
  const after = backend.received.length;
  t.diagnostic(
    `after the reset: tunnel ended ${ended} (${Math.round(performance.now() - resetAt)} ms), ` +
      `${after - before} messages of the vanished client delivered meanwhile`,
  );
  if (!ended) for (const tunnel of gw.gateway.registry.tunnels()) tunnel.destroy(); // release for teardown
  assert.ok(
    ended,
    `a reset client was still tunnelled 5 s later, its buffered messages trickling to the backend at the throttled rate (${after - before} delivered after the reset)`,
  );
});

test('a client that resets while a read waits for the inflate verdict: no crash, all released', async (t) => {
  const backend = await recordingBackend(t, { ws: { perMessageDeflate: { threshold: 0 } } });
  const gw = await policyGateway(t, backend.url, { maxMessageSize: { clientToBackend: '1MiB' } });
  for (let round = 0; round < 10; round++) {
    const client = await rawClient(t, gw, { extensions: 'permessage-deflate', path: `/r${round}` });
    assert.match(client.head, /permessage-deflate/i);
    // Several compressed messages and a bomb in one write, then a reset while zlib works.
    const small = deflateMessage(Buffer.alloc(512 * 1024, 'x'));
    const bomb = deflateMessage(Buffer.alloc(32 * MIB));
    const frames = [
      encodeFrame({ opcode: 2, rsv: 0x40, masked: true, payload: small }),
      encodeFrame({ opcode: 2, rsv: 0x40, masked: true, payload: small }),
      encodeFrame({ opcode: 2, rsv: 0x40, masked: true, payload: bomb }),
    ];
    client.socket.write(Buffer.concat(frames));
    if (round % 2 === 0) await new Promise((resolve) => setImmediate(resolve));
    else await sleep(round);
    client.socket.resetAndDestroy();
  }
  await eventually(() => gw.gateway.registry.tunnelCount === 0, 'every tunnel to end', 10_000);
  assert.ok(
    backend.received.every((m) => m.length === 512 * 1024),
    'no bomb was delivered',
  );
  assert.equal(
    gw.logs.filter((line) => line.msg === 'tunnel failed unexpectedly').length,
    0,
    'no tunnel failed with a bug',
  );
});

test('a client that resets in the middle of a held frame header: the backend never sees a partial header', async (t) => {
  const backend = await recordingBackend(t);
  const gw = await policyGateway(t, backend.url, {});
  const client = await rawClient(t, gw);
  client.send({ opcode: 1, payload: 'whole' });
  const frame = encodeFrame({ opcode: 2, masked: true, payload: Buffer.alloc(70_000, 1) });
  client.socket.write(frame.subarray(0, 5)); // 2 + 8-byte length + mask: 5 of 14 header bytes
  await eventually(() => backend.received.length === 1, 'the first message');
  await sleep(50);
  client.socket.resetAndDestroy();
  // A partial header reaching the backend followed by a close frame would make ws fail with 1002.
  assert.deepEqual(await backend.closed, { code: 1001, reason: 'client went away' });
  await tunnelEnded(gw);
});
