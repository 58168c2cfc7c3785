/**
 * Attacks on the configuration hot reload, on real sockets, as a hostile client or a careless
 * operator would make them: a flood of upgrades and plain requests while the routes flip back and
 * forth; hundreds of reloads asked for at once, in code and over `POST /reload`; a backend removed
 * while its clients are in the middle of large messages sent slowly (fragmented, or one frame
 * trickled); and reloads racing a shutdown. Every client gets a clean answer, bursts fold into a
 * bounded number of reloads, and nothing outlives the gateway.
 */
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { type TestContext, test } from 'node:test';
import type { WebSocket } from 'ws';
import { createGateway } from '../../src/gateway.ts';
import { createLogger } from '../../src/observability/logger.ts';
import type { Resolver } from '../../src/upstream/discovery.ts';
import { closedPort, type EchoBackend, startEchoBackend } from '../helpers/backends.ts';
import {
  closeOf,
  handshakeHeaders,
  nextMessage,
  openClient,
  plainGet,
  plainRequest,
  rawRequest,
} from '../helpers/clients.ts';
import { eventually, within } from '../helpers/eventually.ts';
import { FakeClock } from '../helpers/fake-clock.ts';
import { encodeFrame } from '../helpers/frames.ts';
import { startGateway, testConfig } from '../helpers/gateway.ts';
import { echoes, pool, reloadTo, twoBackendChat } from '../helpers/reload.ts';

/** The status a raw upgrade to `path` gets; the socket is destroyed at once (101 included). */
async function upgradeStatus(port: number, path: string): Promise<number> {
  const answer = await rawRequest(port, { path, headers: handshakeHeaders() });
  answer.socket.destroy();
  return answer.status;
}

/** Tallies of what a list of outcomes was: a status, or the error that came instead. */
function tally(outcomes: readonly PromiseSettledResult<number>[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const outcome of outcomes) {
    const key =
      outcome.status === 'fulfilled'
        ? String(outcome.value)
        : String(outcome.reason instanceof Error ? outcome.reason.message : outcome.reason);
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return counts;
}

test('a flood of upgrades and GETs while the routes and pools flip 20 times: each gets 101 or a clean status, never a reset or a hang', async (t: TestContext) => {
  const [a, b] = [await startEchoBackend(t), await startEchoBackend(t)];
  assert.ok(a && b);
  // The two configurations share no route, and the pool behind them changes its backend: every
  // reload retires a pool and drains a backend while handshakes to it are connecting.
  const chatOnA = { routes: { chat: { path: '/chat', pool: 'echo' } }, pools: { echo: pool([a]) } };
  const newsOnB = { routes: { news: { path: '/news', pool: 'echo' } }, pools: { echo: pool([b]) } };
  const gw = await startGateway(t, chatOnA);
  const port = gw.port();
  const upgrades: Promise<number>[] = [];
  const gets: Promise<number>[] = [];
  let flooding = true;
  let answered = 0;
  const IN_FLIGHT = 100;
  const MAX_REQUESTS = 1_500;
  // Keeps IN_FLIGHT requests under way (one GET in five), each answered one replaced by another.
  const launch = (): void => {
    const n = upgrades.length + gets.length;
    if (!flooding || n >= MAX_REQUESTS) return;
    const path = n % 2 === 0 ? '/chat' : '/news';
    const sent =
      n % 5 === 4 ? plainGet(port, path).then((answer) => answer.status) : upgradeStatus(port, path);
    (n % 5 === 4 ? gets : upgrades).push(sent);
    sent
      .finally(() => {
        answered++;
        launch();
      })
      .catch(() => {});
  };
  for (let i = 0; i < IN_FLIGHT; i++) launch();
  const outcomes: string[] = [];
  for (let turn = 0; turn < 20; turn++) {
    // Let part of the flood be answered between two reloads, so each lands among live handshakes.
    const mark = answered;
    await eventually(
      () => answered >= mark + 20 || answered === upgrades.length + gets.length,
      'part of the flood answered',
      3_000,
    );
    outcomes.push((await reloadTo(gw, turn % 2 === 0 ? newsOnB : chatOnA)).result);
  }
  flooding = false;
  const upgraded = tally(await Promise.allSettled(upgrades));
  const got = tally(await Promise.allSettled(gets));
  t.diagnostic(
    `${upgrades.length} upgrades: ${JSON.stringify([...upgraded])}; ${gets.length} GETs: ${JSON.stringify([...got])}`,
  );
  assert.deepEqual(
    outcomes,
    Array.from({ length: 20 }, () => 'ok'),
    'every reload put its routes in force',
  );
  for (const key of upgraded.keys()) assert.ok(key === '101' || key === '404', `an upgrade got ${key}`);
  for (const key of got.keys()) assert.ok(key === '200' || key === '404', `a GET got ${key}`);
  assert.ok((upgraded.get('101') ?? 0) > 0 && (upgraded.get('404') ?? 0) > 0, 'both answers were seen');
  // The last configuration (chat on A) is the one in force.
  assert.equal(await upgradeStatus(port, '/chat'), 101);
  assert.equal(await upgradeStatus(port, '/news'), 404);
  await eventually(() => gw.gateway.registry.tunnelCount === 0, 'every tunnel of the flood ended');
  assert.equal(await gw.metric('wsgate_tunnel_errors_total', { code: 'INTERNAL_ERROR' }), 0);
});

test('200 reloads asked for at once, or while one runs, fold into one more: all resolve, the last loader wins', async (t: TestContext) => {
  const backend = await startEchoBackend(t);
  const base = { routes: { chat: { path: '/chat', pool: 'echo' } }, pools: { echo: pool([backend]) } };
  const gw = await startGateway(t, base);
  const withRoute = (path: string) => ({
    ...base,
    routes: { ...base.routes, extra: { path, pool: 'echo' } },
  });
  const before = await gw.metric('wsgate_config_reloads_total');

  // A burst in one tick: the first call has not started yet, so the others fold into it.
  let loads = 0;
  const burst = await Promise.all(
    Array.from({ length: 200 }, (_, i) =>
      gw.gateway.reload(() => {
        loads++;
        return testConfig(withRoute(`/burst${i}`));
      }),
    ),
  );
  assert.equal(loads, 1, 'one loader ran for the whole burst');
  assert.ok(burst.every((outcome) => outcome.result === 'ok' && outcome.hash === burst[0]?.hash));
  assert.equal(await gw.metric('wsgate_config_reloads_total'), before + 1);
  assert.equal(await upgradeStatus(gw.port(), '/burst199'), 101, 'the last request’s loader was used');
  assert.equal(await upgradeStatus(gw.port(), '/burst0'), 404);

  // A burst while a reload runs (asked from inside its loader): one more reload, with the last loader.
  loads = 0;
  let during: Promise<Awaited<ReturnType<typeof gw.gateway.reload>>[]> | undefined;
  const first = gw.gateway.reload(() => {
    loads++;
    during = Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        gw.gateway.reload(() => {
          loads++;
          return testConfig(withRoute(`/during${i}`));
        }),
      ),
    );
    return testConfig(withRoute('/first'));
  });
  assert.equal((await first).result, 'ok');
  assert.ok(during);
  const folded = await within(during, 'the folded reloads');
  assert.equal(loads, 2, 'the running reload and one more');
  assert.ok(folded.every((outcome) => outcome.result === 'ok' && outcome.hash === folded[0]?.hash));
  assert.notEqual(folded[0]?.hash, (await first).hash);
  assert.equal(await gw.metric('wsgate_config_reloads_total'), before + 3, 'at most 2 more per burst');
  assert.equal(await upgradeStatus(gw.port(), '/during199'), 101);
  assert.equal(await upgradeStatus(gw.port(), '/first'), 404);
  const ws = await openClient(gw.wsUrl('/chat'));
  await echoes(ws, 'still serving');
  const closed = closeOf(ws);
  ws.close();
  await closed;
});

/** `POST /reload` on a fresh connection from loopback; resolves with status and body. */
function postReload(port: number): Promise<{ status: number; body: string }> {
  return plainRequest(port, '/reload', { method: 'POST' });
}

test('100 POST /reload at once from loopback: all answered 200, one reload does the work, the metrics stay bounded', async (t: TestContext) => {
  const backend = await startEchoBackend(t);
  const first = { routes: { chat: { path: '/chat', pool: 'echo' } }, pools: { echo: pool([backend]) } };
  const gw = await startGateway(t, first);
  // Drift from the file: POST /reload puts the test's (first) configuration back.
  const drifted = await reloadTo(gw, {
    ...first,
    routes: { ...first.routes, news: { path: '/news', pool: 'echo' } },
  });
  assert.equal(drifted.result, 'ok');
  const answers = await Promise.all(Array.from({ length: 100 }, () => postReload(gw.adminPort())));
  assert.ok(
    answers.every((answer) => answer.status === 200),
    `statuses: ${answers.map((a) => a.status).join(',')}`,
  );
  const results = answers.map((answer) => (JSON.parse(answer.body) as { result: string }).result);
  assert.ok(results.every((result) => result === 'ok' || result === 'unchanged'));
  assert.equal(
    await gw.metric('wsgate_config_reloads_total', { result: 'ok' }),
    2,
    'one reload changed it back',
  );
  const total = await gw.metric('wsgate_config_reloads_total');
  assert.ok(total <= 101, `reloads counted: ${total}`);
  t.diagnostic(`100 requests ran ${total - 1} reloads`);
  // One configuration shown, not one series per reload.
  const info = await gw.gateway.metrics.registry.getSingleMetric('wsgate_config_info')?.get();
  assert.equal(info?.values.filter((sample) => sample.value === 1).length, 1);
  assert.equal(await upgradeStatus(gw.port(), '/news'), 404, 'the file’s routes are back');
  const ws = await openClient(gw.wsUrl('/chat'));
  await echoes(ws, 'after the flood');
  const closed = closeOf(ws);
  ws.close();
  await closed;
  assert.equal((await plainGet(gw.adminPort(), '/metrics')).status, 200);
});

/** A raw WebSocket client that has had its 101, and what the gateway has sent it since. */
interface RawClient {
  readonly socket: Socket;
  received: Buffer;
}

async function rawClient(port: number): Promise<RawClient> {
  const answer = await rawRequest(port, { path: '/chat', headers: handshakeHeaders() });
  assert.equal(answer.status, 101);
  const client: RawClient = { socket: answer.socket, received: answer.rest };
  answer.socket.on('data', (chunk: Buffer) => {
    client.received = Buffer.concat([client.received, chunk]);
  });
  answer.socket.resume();
  return client;
}

/** The code of the close frame the gateway sent first, if its first frame is one. */
function closeCodeOf(received: Buffer): number | undefined {
  if (received.length < 4 || received[0] !== 0x88) return undefined;
  return received.readUInt16BE(2);
}

test('a backend removed while its clients send large messages slowly: they get 1001, the others finish theirs', async (t: TestContext) => {
  const { a, b, first, gw } = await twoBackendChat(t);
  // ws clients that will send a fragmented message, and raw clients that will trickle one frame.
  const wsOn = { a: [] as WebSocket[], b: [] as WebSocket[] };
  const rawOn = { a: [] as RawClient[], b: [] as RawClient[] };
  for (let i = 0; i < 6; i++) {
    const count = a.upgrades.length;
    const ws = await openClient(gw.wsUrl('/chat'));
    ws.on('error', () => {});
    (a.upgrades.length > count ? wsOn.a : wsOn.b).push(ws);
  }
  for (let i = 0; i < 6; i++) {
    const count = a.upgrades.length;
    const client = await rawClient(gw.port());
    await eventually(() => a.upgrades.length + b.upgrades.length >= 7 + i, 'the backend took the upgrade');
    (a.upgrades.length > count ? rawOn.a : rawOn.b).push(client);
  }
  t.after(() => {
    for (const client of [...rawOn.a, ...rawOn.b]) client.socket.destroy();
  });
  assert.ok(wsOn.a.length > 0 && wsOn.b.length > 0, 'ws clients on both backends');
  assert.ok(rawOn.a.length > 0 && rawOn.b.length > 0, 'raw clients on both backends');

  // 16 fragments of 16 KiB, one every 30 ms (about half a second per message).
  const fragment = Buffer.alloc(16 * 1024, 0x61);
  const FRAGMENTS = 16;
  const wsReplies = wsOn.a.map((ws) => nextMessage(ws));
  const wsCloses = wsOn.b.map((ws) => closeOf(ws));
  let step = 0;
  let closedAtStep: number | undefined;
  for (const ws of wsOn.b)
    ws.once('close', () => {
      closedAtStep ??= step;
    });
  // One 60,000-byte masked binary frame, written in 4 KiB pieces, one every 30 ms.
  const payload = Buffer.alloc(60_000, 0x62);
  const frame = encodeFrame({ opcode: 0x2, masked: true, payload });
  const timer = setInterval(() => {
    step++;
    for (const ws of [...wsOn.a, ...wsOn.b]) {
      if (ws.readyState !== ws.OPEN || step > FRAGMENTS) continue;
      ws.send(fragment, { binary: true, fin: step === FRAGMENTS });
    }
    for (const client of [...rawOn.a, ...rawOn.b]) {
      const piece = frame.subarray((step - 1) * 4096, step * 4096);
      if (piece.length > 0 && !client.socket.destroyed) client.socket.write(piece);
    }
  }, 30);
  t.after(() => clearInterval(timer));
  await eventually(() => step >= 3, 'the messages are under way');
  const outcome = await reloadTo(gw, { ...first, pools: { echo: pool([a]) } });
  assert.equal(outcome.result, 'ok');
  for (const closed of await Promise.all(wsCloses)) assert.equal(closed.code, 1001);
  await eventually(
    () => rawOn.b.every((client) => closeCodeOf(client.received) === 1001),
    'the raw clients of the removed backend got a 1001 close frame',
  );
  assert.ok(
    (closedAtStep ?? FRAGMENTS) < FRAGMENTS,
    'the removed backend’s clients were closed in the middle of their messages',
  );
  for (const reply of await Promise.all(wsReplies))
    assert.equal(reply.data.length, FRAGMENTS * fragment.length);
  const echoHead = Buffer.from([0x82, 0x7e, 0xea, 0x60]); // binary, 16-bit length 60,000
  await eventually(
    () => rawOn.a.every((client) => client.received.length >= 4 + 60_000),
    'the raw clients of the kept backend got their frame back',
  );
  for (const client of rawOn.a) assert.deepEqual(client.received.subarray(0, 4), echoHead);
  clearInterval(timer);
  for (const ws of wsOn.a) await echoes(ws, 'kept');
  assert.equal(
    await gw.metric('wsgate_tunnel_errors_total', { code: 'BACKEND_REMOVED' }),
    wsOn.b.length + rawOn.b.length,
  );
  assert.equal(await gw.metric('wsgate_tunnel_errors_total', { code: 'INTERNAL_ERROR' }), 0);
  for (const ws of wsOn.a) ws.close();
  for (const client of rawOn.a) client.socket.destroy();
});

/** A resolver whose SRV answers wait until `release` is called. */
function heldResolver(backend: EchoBackend): Resolver & { lookups: number; release: () => void } {
  let release = (): void => {};
  const held = new Promise<void>((resolve) => {
    release = resolve;
  });
  const resolver = {
    lookups: 0,
    release: () => release(),
    resolveSrv: async (_name: string) => {
      resolver.lookups++;
      await held;
      return [{ name: '127.0.0.1', port: backend.port, priority: 1, weight: 1 }];
    },
    resolve4: async (_name: string): Promise<string[]> => [],
    resolve6: async (_name: string): Promise<string[]> => [],
  };
  return resolver;
}

/** Whether something accepts TCP connections on 127.0.0.1:`port`. */
function accepts(port: number): Promise<boolean> {
  return within(
    new Promise((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    }),
    `a connection to port ${port}`,
  );
}

async function reloadAskedDuringShutdown(t: TestContext): Promise<void> {
  const backend = await startEchoBackend(t);
  const first = {
    routes: { chat: { path: '/chat', pool: 'echo' } },
    pools: { echo: pool([backend]) },
    shutdown: { drainDelay: '300ms' },
  };
  const gw = await startGateway(t, first, { skipLeakCheck: true });
  const withExtra = {
    ...first,
    listeners: { public: { address: '127.0.0.1', port: 0 }, extra: { address: '127.0.0.1', port: 0 } },
  };
  const down = gw.gateway.shutdown();
  assert.equal(gw.gateway.phase(), 'stopping');
  const inDelay = await reloadTo(gw, withExtra);
  assert.equal(inDelay.result, 'failed');
  assert.match(inDelay.error ?? '', /stopping/);
  await down;
  const after = await reloadTo(gw, withExtra);
  assert.equal(after.result, 'failed');
  assert.deepEqual(Object.keys(gw.gateway.addresses()).sort(), ['public']);
  assert.equal(gw.gateway.addresses().extra, undefined, 'no listener opened');
}

/**
 * Regression: a reload whose new pool was still in its first lookup when the shutdown began used
 * to end 'ok' after it, binding its listener and leaving its pool looking up. The drain now waits
 * for it, and it gives up once its pools have started.
 */
async function reloadUnderWayAtShutdown(t: TestContext): Promise<void> {
  const backend = await startEchoBackend(t);
  const resolver = heldResolver(backend);
  t.after(() => resolver.release());
  const first = { routes: { chat: { path: '/chat', pool: 'echo' } }, pools: { echo: pool([backend]) } };
  // The lookups' timers are on the gateway's clock: this test moves it by hand.
  const clock = new FakeClock();
  const gw = await startGateway(t, first, { resolver, clock, skipLeakCheck: true });
  const publicPort = gw.port();
  // The reload waits in its new pool's first lookup while the shutdown runs to its end.
  const reloading = reloadTo(gw, {
    ...first,
    listeners: { public: { address: '127.0.0.1', port: 0 }, extra: { address: '127.0.0.1', port: 0 } },
    routes: { ...first.routes, found: { path: '/found', pool: 'found' } },
    pools: {
      ...first.pools,
      found: {
        backends: [{ url: 'http://_ws._tcp.found.test', discover: 'srv' }],
        discovery: { interval: '20ms', timeout: '3s' },
      },
    },
  });
  await eventually(() => resolver.lookups > 0, 'the reload is in its first lookup');
  // The shutdown waits for the reload, which gives up when its first lookup times out.
  const down = gw.gateway.shutdown();
  clock.advance(3_100);
  await within(down, 'the shutdown');
  assert.equal(await accepts(publicPort), false, 'the listener closed with the shutdown');
  resolver.release();
  const outcome = await within(reloading, 'the reload under way');
  const lookupsAfter = resolver.lookups;
  // Ten lookup intervals later on the gateway's clock: a pool still looking up would have.
  clock.advance(200);
  await new Promise((resolve) => setImmediate(resolve));
  const lookupsLater = resolver.lookups;
  const extraPort = gw.gateway.addresses().extra?.port;
  const extraAccepts = extraPort === undefined ? false : await accepts(extraPort);
  assert.equal(outcome.result, 'failed', 'a reload that ends after the shutdown is not in force');
  assert.equal(extraAccepts, false, 'no listener is opened after the shutdown');
  assert.equal(lookupsLater, lookupsAfter, 'no lookups go on after the shutdown');
}

test('reloads racing a shutdown', async (t: TestContext) => {
  await t.test('a reload asked for during the shutdown fails and opens nothing', reloadAskedDuringShutdown);
  await t.test(
    'regression: a reload under way when the shutdown starts does not put its configuration in force after it',
    reloadUnderWayAtShutdown,
  );
});

test('regression: a shutdown while the gateway starts (its pools still in their first lookups) binds no listener', async (t: TestContext) => {
  const backend = await startEchoBackend(t);
  const resolver = heldResolver(backend);
  t.after(() => resolver.release());
  const port = await closedPort();
  const config = testConfig({
    listeners: { public: { address: '127.0.0.1', port } },
    routes: { chat: { path: '/chat', pool: 'found' } },
    pools: {
      found: {
        backends: [{ url: 'http://_ws._tcp.found.test', discover: 'srv' }],
        discovery: { interval: '1h', timeout: '3s' },
      },
    },
  });
  const gateway = createGateway(config, {
    log: createLogger({ level: 'silent', format: 'json' }),
    version: '0.0.0-test',
    resolver,
  });
  const starting = gateway.start();
  await eventually(() => resolver.lookups > 0, 'the first lookup under way');
  const stopping = gateway.shutdown({ immediate: true });
  resolver.release();
  await within(starting, 'the start to end');
  await within(stopping, 'the shutdown to end');
  assert.deepEqual(gateway.addresses(), {}, 'no listener was bound');
  assert.equal(await accepts(port), false, 'nothing listens on the port');
});
