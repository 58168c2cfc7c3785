/**
 * Discovery under a DNS that misbehaves while clients hold WebSockets: an answer that flaps every
 * lookup (an address leaving and coming back), a flood of upgrades while the set changes, answers
 * that are not lists or throw at once, and a shutdown in the middle of drains. The gateway stays
 * up, loses no tunnel to an address that is back, piles up no drain, and ends with nothing left.
 */
import assert from 'node:assert/strict';
import { type TestContext, test } from 'node:test';
import type { WebSocket } from 'ws';
import type { Resolver } from '../../src/upstream/discovery.ts';
import { type EchoBackend, startEchoBackend } from '../helpers/backends.ts';
import { closeOf, nextMessage, openClient } from '../helpers/clients.ts';
import { eventually } from '../helpers/eventually.ts';
import { startGateway } from '../helpers/gateway.ts';

type Srv = { name: string; port: number; priority: number; weight: number };

/** A resolver whose SRV answer is whatever `answer` returns at each lookup. */
function scripted(answer: () => Srv[]): Resolver & { lookups: number } {
  const resolver = {
    lookups: 0,
    resolveSrv: async (_name: string) => {
      resolver.lookups++;
      return answer();
    },
    resolve4: async (_name: string): Promise<string[]> => [],
    resolve6: async (_name: string): Promise<string[]> => [],
  };
  return resolver;
}

const record = (backend: EchoBackend): Srv => ({
  name: '127.0.0.1',
  port: backend.port,
  priority: 1,
  weight: 1,
});

function pool(drainTimeout: string) {
  return {
    routes: { chat: { pool: 'chat' } },
    pools: {
      chat: {
        backends: [{ url: 'http://_ws._tcp.chat.test', discover: 'srv' }],
        discovery: { interval: '20ms', timeout: '1s' },
        drainTimeout,
      },
    },
  };
}

async function echoes(ws: WebSocket, text: string): Promise<void> {
  const reply = nextMessage(ws);
  ws.send(text);
  assert.equal((await reply).data.toString(), text);
}

test('an address that flaps at every lookup keeps its WebSockets while it keeps coming back', async (t: TestContext) => {
  const [steady, flapping] = await Promise.all([startEchoBackend(t), startEchoBackend(t)]);
  assert.ok(steady && flapping);
  // Both addresses answer until the clients are placed, so the flapping one surely holds some of
  // them; only then does it start leaving and coming back at every lookup.
  let flaps = false;
  let turn = 0;
  const resolver = scripted(() =>
    !flaps || turn++ % 2 === 0 ? [record(steady), record(flapping)] : [record(steady)],
  );
  // The drain is far longer than a flap: a tunnel is never closed while its address returns.
  const gw = await startGateway(t, pool('2s'), { resolver });
  const clients = await Promise.all(Array.from({ length: 10 }, () => openClient(gw.wsUrl('/'))));
  t.after(() => {
    for (const ws of clients) ws.terminate();
  });
  await eventually(() => flapping.sockets.length > 0, 'the flapping address took some of the clients');
  const placedOnFlapping = flapping.sockets.length;
  flaps = true;
  const start = resolver.lookups;
  await eventually(() => resolver.lookups >= start + 40, 'forty flaps', 10_000);
  for (const ws of clients) await echoes(ws, 'still here');
  const stillOpen = flapping.sockets.filter((ws) => ws.readyState === ws.OPEN).length;
  assert.equal(stillOpen, placedOnFlapping, 'no tunnel to the flapping address was closed');
  assert.equal(gw.gateway.registry.tunnelCount, 10);
});

test('a flood of upgrades while the set changes every lookup: every one is served', async (t: TestContext) => {
  const backends = await Promise.all([startEchoBackend(t), startEchoBackend(t), startEchoBackend(t)]);
  let turn = 0;
  const resolver = scripted(() => {
    turn++;
    return backends.filter((_, i) => (turn + i) % 3 !== 0).map(record);
  });
  const gw = await startGateway(t, pool('5s'), { resolver });
  const results = await Promise.allSettled(
    Array.from({ length: 150 }, async () => {
      const ws = await openClient(gw.wsUrl('/'));
      await echoes(ws, 'flood');
      const closed = closeOf(ws, 10_000);
      ws.close();
      return (await closed).code;
    }),
  );
  const served = results.filter((result) => result.status === 'fulfilled').length;
  assert.equal(served, 150, 'every upgrade reached a backend that was in the set');
  await eventually(() => gw.gateway.registry.tunnelCount === 0, 'every tunnel ended', 10_000);
});

test('answers that are not lists, or a resolver that throws at once, keep the last set', async (t: TestContext) => {
  const a = await startEchoBackend(t);
  let mode = 0;
  const resolver = scripted(() => {
    if (mode === 1) return 'junk' as unknown as Srv[];
    if (mode === 2) return [null, { name: 42 }] as unknown as Srv[];
    if (mode === 3) throw new TypeError('resolver bug');
    return [record(a)];
  });
  const gw = await startGateway(t, pool('1s'), { resolver });
  for (mode = 1; mode <= 3; mode++) {
    const start = resolver.lookups;
    await eventually(() => resolver.lookups >= start + 3, 'three lookups');
    const ws = await openClient(gw.wsUrl('/'));
    await echoes(ws, `mode ${mode}`);
    const closed = closeOf(ws);
    ws.close();
    await closed;
  }
  assert.ok((await gw.metric('wsgate_discovery_lookups_total', { result: 'failed' })) >= 9);
});

test('a shutdown while backends drain ends every tunnel with 1001 and leaves nothing behind', async (t: TestContext) => {
  const [a, b] = await Promise.all([startEchoBackend(t), startEchoBackend(t)]);
  assert.ok(a && b);
  let members = [a, b];
  const resolver = scripted(() => members.map(record));
  const gw = await startGateway(t, pool('1h'), { resolver, skipLeakCheck: true });
  const clients = await Promise.all(Array.from({ length: 6 }, () => openClient(gw.wsUrl('/'))));
  members = [b];
  await eventually(
    () => gw.logs.some((line) => line.msg === 'discovered backends changed'),
    'A left and is draining',
  );
  const closes = clients.map((ws) => closeOf(ws, 10_000));
  await gw.gateway.shutdown();
  for (const closed of await Promise.all(closes)) assert.equal(closed.code, 1001);
  assert.equal(gw.gateway.registry.tunnelCount, 0);
});
