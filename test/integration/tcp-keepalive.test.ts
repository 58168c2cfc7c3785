/**
 * TCP keepalive on a tunnel's sockets, read from the kernel with `ss`: both sides get it, whether
 * the gateway pings them or not. A gateway ping waits for a frame boundary, so a pinged side whose
 * stream stopped mid-frame (and whose peer then vanished) is found only by TCP keepalive.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { type TestContext, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { startEchoBackend } from '../helpers/backends.ts';
import { openClient } from '../helpers/clients.ts';
import { FakeClock } from '../helpers/fake-clock.ts';
import { startGateway } from '../helpers/gateway.ts';

function hasSs(): boolean {
  try {
    execFileSync('ss', ['-V'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
const skip = hasSs() ? false : 'needs `ss` (iproute2) to read socket timers';

/** Whether the one established socket whose local or peer port is given has a keepalive timer. */
function keepaliveOn(port: { local: number } | { peer: number }): boolean {
  const lines = execFileSync('ss', ['-tnoH', 'state', 'established'], { encoding: 'utf8' }).split('\n');
  const matching = lines.filter((entry) => {
    const [, , localAddress, peerAddress] = entry.trim().split(/\s+/);
    return 'local' in port
      ? localAddress?.endsWith(`:${port.local}`)
      : peerAddress?.endsWith(`:${port.peer}`);
  });
  assert.equal(matching.length, 1, `one established socket with ${JSON.stringify(port)}`);
  return (matching[0] ?? '').includes('timer:(keepalive');
}

/** Which of the gateway's two sockets of a tunnel have TCP keepalive, under `keepalive`. */
async function sidesWithKeepalive(
  t: TestContext,
  keepalive: Record<string, string>,
): Promise<{ client: boolean; backend: boolean }> {
  const backend = await startEchoBackend(t);
  const gw = await startGateway(t, {
    routes: { main: { pool: 'main' } },
    pools: { main: { backends: [backend.url] } },
    websocket: { keepalive },
  });
  const ws = await openClient(gw.wsUrl());
  t.after(() => ws.terminate());
  // The gateway's side of the client connection is local on its port; its backend connection
  // is the one whose peer is the backend's port. A swept tunnel turns keepalive on at its first
  // sweep, within a second of opening.
  const sides = () => ({
    client: keepaliveOn({ local: gw.port() }),
    backend: keepaliveOn({ peer: backend.port }),
  });
  const deadline = Date.now() + 3_000;
  while (Date.now() < deadline && !(sides().client && sides().backend)) await sleep(50);
  return sides();
}

test('TCP keepalive waits for the first sweep: a tunnel that ends sooner makes none of its system calls', {
  skip,
}, async (t) => {
  const clock = new FakeClock();
  const backend = await startEchoBackend(t);
  const gw = await startGateway(
    t,
    { routes: { main: { pool: 'main' } }, pools: { main: { backends: [backend.url] } } },
    { clock },
  );
  const ws = await openClient(gw.wsUrl());
  t.after(() => ws.terminate());
  assert.equal(keepaliveOn({ peer: backend.port }), false, 'not before the sweeper ticks');
  assert.equal(keepaliveOn({ local: gw.port() }), false);
  clock.advance(1_000);
  assert.equal(keepaliveOn({ peer: backend.port }), true, 'on at the first sweep');
  assert.equal(keepaliveOn({ local: gw.port() }), true);
});

test('regression: a pinged side had no TCP keepalive, so a peer lost mid-frame was never found', {
  skip,
}, async (t) => {
  assert.deepEqual(
    await sidesWithKeepalive(t, {}),
    { client: true, backend: true },
    'defaults: the client is pinged',
  );
  assert.deepEqual(
    await sidesWithKeepalive(t, { backend: '30s' }),
    { client: true, backend: true },
    'both pinged',
  );
  assert.deepEqual(
    await sidesWithKeepalive(t, { client: 'off' }),
    { client: true, backend: true },
    'neither pinged',
  );
});
