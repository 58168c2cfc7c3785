/**
 * Configuration reloads on real sockets: a new route is served at once while a WebSocket opened
 * before keeps working; an invalid configuration changes nothing and says why (file, line,
 * field), in the metrics and on the status page; a removed backend's WebSockets get 1001 while the
 * others' stay; an unchanged pool keeps its state (sticky keys stay where they are); a changed
 * limit applies to new WebSockets only; listeners open and close without touching the others; a
 * swapped certificate is served to new connections while a live wss stays up.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { networkInterfaces, tmpdir } from 'node:os';
import { resolve } from 'node:path';
import { type TestContext, test } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import { WebSocket } from 'ws';
import { ConfigError } from '../../src/config/config-error.ts';
import { parseConfigText } from '../../src/config/load.ts';
import { startEchoBackend } from '../helpers/backends.ts';
import { issueCertificate, opensslMissing } from '../helpers/certificates.ts';
import { closeOf, openClient, plainGet, plainRequest } from '../helpers/clients.ts';
import { eventually, within } from '../helpers/eventually.ts';
import { FakeClock } from '../helpers/fake-clock.ts';
import { startGateway, type TestGateway } from '../helpers/gateway.ts';
import { echoes, pool, reloadTo, twoBackendChat } from '../helpers/reload.ts';

const TLS_DIR = resolve(import.meta.dirname, '../fixtures/tls');

function statusJson(gw: TestGateway): Promise<Record<string, unknown>> {
  return plainGet(gw.adminPort(), '/status.json').then(
    (answer) => JSON.parse(answer.body) as Record<string, unknown>,
  );
}

/** A gateway with one route, /chat, to one echo backend; `first` is its configuration. */
async function chatGateway(t: TestContext) {
  const backend = await startEchoBackend(t);
  const first = { routes: { chat: { path: '/chat', pool: 'echo' } }, pools: { echo: pool([backend]) } };
  return { backend, first, gw: await startGateway(t, first) };
}

test('a route added by a reload is served at once; a WebSocket opened before keeps working', async (t) => {
  const { first, gw } = await chatGateway(t);
  const before = await openClient(gw.wsUrl('/chat'));
  await assert.rejects(openClient(gw.wsUrl('/news')), /unexpected response 404/);
  const hashBefore = (await statusJson(gw)).configuration as { hash: string };
  const outcome = await reloadTo(gw, {
    ...first,
    routes: { ...first.routes, news: { path: '/news', pool: 'echo' } },
  });
  assert.equal(outcome.result, 'ok');
  assert.notEqual(outcome.hash, hashBefore.hash);
  const after = await openClient(gw.wsUrl('/news'));
  await echoes(after, 'new route');
  await echoes(before, 'still here');
  assert.equal(await gw.metric('wsgate_config_reloads_total', { result: 'ok' }), 1);
  assert.equal(await gw.metric('wsgate_config_info', { hash: outcome.hash }), 1);
  assert.equal(await gw.metric('wsgate_config_info', { hash: hashBefore.hash }), 0);
  // The same settings again: nothing to do, and said so.
  assert.equal(
    (await reloadTo(gw, { ...first, routes: { ...first.routes, news: { path: '/news', pool: 'echo' } } }))
      .result,
    'unchanged',
  );
  before.close();
  after.close();
});

test('an invalid configuration changes nothing: the error names file, line and field, is counted and shown', async (t) => {
  const { gw } = await chatGateway(t);
  const ws = await openClient(gw.wsUrl('/chat'));
  const broken =
    'listeners:\n  public: { address: 127.0.0.1, port: 0 }\nroutes:\n  chat: { path: /chat, pool: nowhere }\npools: {}\n';
  const outcome = await gw.gateway.reload(() =>
    parseConfigText(broken, { file: 'broken.yaml', baseDir: '.', env: {} }),
  );
  assert.equal(outcome.result, 'invalid');
  assert.match(outcome.error ?? '', /broken\.yaml:4:\d+ routes\.chat\.pool/);
  assert.equal(await gw.metric('wsgate_config_reloads_total', { result: 'invalid' }), 1);
  const status = (await statusJson(gw)).configuration as {
    hash: string;
    lastReload: { result: string; error: string };
  };
  assert.equal(status.lastReload.result, 'invalid');
  assert.match(status.lastReload.error, /routes\.chat\.pool/);
  assert.equal(status.hash, outcome.hash, 'the previous configuration is still in force');
  await echoes(ws, 'untouched');
  const again = await openClient(gw.wsUrl('/chat'));
  await echoes(again, 'routes as before');
  assert.ok(
    gw.logs.some(
      (line) => line.msg?.includes('reload refused') && String(line.err).includes('broken.yaml:4'),
    ),
    'the refusal is logged with its place',
  );
  // A loader that throws something else is refused the same way.
  const thrown = await gw.gateway.reload(() => {
    throw new ConfigError('other.yaml', [
      { file: 'other.yaml', path: 'x', message: 'bad', line: 1, column: 1 },
    ]);
  });
  assert.equal(thrown.result, 'invalid');
  ws.close();
  again.close();
});

test('a backend removed by a reload: its WebSockets get 1001, the others stay, new ones go to those left', async (t) => {
  const { a, b, first, gw } = await twoBackendChat(t);
  const onA: WebSocket[] = [];
  const onB: WebSocket[] = [];
  for (let i = 0; i < 6; i++) {
    const countA = a.upgrades.length;
    const ws = await openClient(gw.wsUrl('/chat'));
    (a.upgrades.length > countA ? onA : onB).push(ws);
  }
  assert.ok(onA.length > 0 && onB.length > 0, 'both backends have WebSockets');
  const closes = onB.map((ws) => closeOf(ws));
  const outcome = await reloadTo(gw, { ...first, pools: { echo: pool([a]) } });
  assert.equal(outcome.result, 'ok');
  for (const closed of await Promise.all(closes)) assert.equal(closed.code, 1001);
  for (const ws of onA) await echoes(ws, 'kept');
  const countB = b.upgrades.length;
  const fresh = await Promise.all([1, 2, 3].map(() => openClient(gw.wsUrl('/chat'))));
  assert.equal(b.upgrades.length, countB, 'no new WebSocket goes to the removed backend');
  assert.equal(await gw.metric('wsgate_tunnel_errors_total', { code: 'BACKEND_REMOVED' }), onB.length);
  for (const ws of [...onA, ...fresh]) ws.close();
});

test('an unchanged pool keeps its state across a reload: a sticky key stays on its backend', async (t) => {
  const backends = await Promise.all([1, 2, 3, 4].map(() => startEchoBackend(t)));
  const first = {
    routes: { chat: { path: '/chat', pool: 'echo' } },
    pools: { echo: pool(backends, { sticky: { from: [{ query: 'room' }] } }) },
  };
  const gw = await startGateway(t, first);
  const home = async (room: string): Promise<number> => {
    const counts = backends.map((backend) => backend.upgrades.length);
    const ws = await openClient(gw.wsUrl(`/chat?room=${room}`));
    ws.close();
    return backends.findIndex((backend, index) => backend.upgrades.length > (counts[index] ?? 0));
  };
  const rooms = ['a', 'b', 'c', 'd', 'e', 'f'];
  const before = await Promise.all(rooms.map(home));
  const picks = async () =>
    ((await statusJson(gw)).pools as { backends: { picks: number }[] }[])[0]?.backends.reduce(
      (sum, backend) => sum + backend.picks,
      0,
    ) ?? 0;
  const picked = await picks();
  const outcome = await reloadTo(gw, {
    ...first,
    routes: { ...first.routes, other: { path: '/other', pool: 'echo' } },
  });
  assert.equal(outcome.result, 'ok');
  assert.equal(await picks(), picked, 'the same pool, its counters untouched');
  assert.deepEqual(await Promise.all(rooms.map(home)), before, 'every room on the backend it had');
  await eventually(async () => (await gw.metric('wsgate_connections_active')) === 0, 'the clients closed');
});

test('a changed limit applies to WebSockets opened after the reload; those open keep theirs', async (t) => {
  const backend = await startEchoBackend(t);
  const first = {
    routes: { chat: { path: '/chat', pool: 'echo' } },
    pools: { echo: pool([backend]) },
    websocket: { maxMessageSize: { clientToBackend: '64KiB' } },
  };
  const gw = await startGateway(t, first);
  const old = await openClient(gw.wsUrl('/chat'));
  assert.equal(
    (await reloadTo(gw, { ...first, websocket: { maxMessageSize: { clientToBackend: '1KiB' } } })).result,
    'ok',
  );
  const young = await openClient(gw.wsUrl('/chat'));
  const big = 'x'.repeat(4096);
  await echoes(old, big);
  const closed = closeOf(young);
  young.send(big);
  assert.equal((await closed).code, 1009);
  old.close();
});

test('listeners added and removed by a reload open and close without touching the others', async (t) => {
  const { first, gw } = await chatGateway(t);
  const onPublic = await openClient(gw.wsUrl('/chat'));
  const outcome = await reloadTo(gw, {
    ...first,
    listeners: { public: { address: '127.0.0.1', port: 0 }, extra: { address: '127.0.0.1', port: 0 } },
  });
  assert.equal(outcome.result, 'ok');
  assert.deepEqual(outcome.listeners, { opened: ['extra'] });
  const extraPort = gw.port('extra');
  const onExtra = await openClient(`ws://127.0.0.1:${extraPort}/chat`);
  await echoes(onExtra, 'through the new listener');
  await echoes(onPublic, 'the first one untouched');
  assert.deepEqual((await reloadTo(gw, first)).listeners, { closed: ['extra'] });
  await echoes(onExtra, 'a closed listener keeps its WebSockets');
  await assert.rejects(openClient(`ws://127.0.0.1:${extraPort}/chat`), /ECONNREFUSED/);
  await echoes(onPublic, 'still untouched');
  onPublic.close();
  onExtra.close();
});

test('a listener that cannot bind fails the reload and changes nothing', async (t) => {
  const { first, gw } = await chatGateway(t);
  const outcome = await reloadTo(gw, {
    ...first,
    routes: { moved: { path: '/moved', pool: 'echo' } },
    listeners: {
      public: { address: '127.0.0.1', port: 0 },
      taken: { address: '127.0.0.1', port: gw.port() },
    },
  });
  assert.equal(outcome.result, 'failed');
  assert.match(outcome.error ?? '', /listener "taken" cannot listen on 127\.0\.0\.1:\d+: EADDRINUSE/);
  assert.equal(await gw.metric('wsgate_config_reloads_total', { result: 'failed' }), 1);
  const ws = await openClient(gw.wsUrl('/chat'));
  await echoes(ws, 'the old routes are in force');
  ws.close();
});

test('a certificate swapped by a reload is served to new connections; a live wss stays up', {
  skip: opensslMissing(),
}, async (t) => {
  const backend = await startEchoBackend(t);
  const issued = issueCertificate('swapped.test', ['localhost']);
  const dir = mkdtempSync(resolve(tmpdir(), 'wsgate-reload-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(resolve(dir, 'swapped.pem'), issued.cert);
  writeFileSync(resolve(dir, 'swapped-key.pem'), issued.key);
  const tls = (cert: string, key: string) => ({
    listeners: { public: { address: '127.0.0.1', port: 0, tls: { cert, key } } },
  });
  const first = {
    ...tls(resolve(TLS_DIR, 'server.pem'), resolve(TLS_DIR, 'server-key.pem')),
    routes: { chat: { path: '/chat', pool: 'echo' } },
    pools: { echo: pool([backend]) },
  };
  const gw = await startGateway(t, first);
  const ca = readFileSync(resolve(TLS_DIR, 'ca.pem'));
  const served = () =>
    within(
      new Promise<string>((done, fail) => {
        const socket = tlsConnect({ host: '127.0.0.1', port: gw.port(), servername: 'localhost', ca }, () => {
          done(socket.getPeerCertificate().fingerprint256);
          socket.destroy();
        });
        socket.once('error', fail);
      }),
      'a TLS handshake',
    );
  const live = await openClient(`wss://localhost:${gw.port()}/chat`, undefined, { ca });
  const before = await served();
  const outcome = await reloadTo(gw, {
    ...first,
    ...tls(resolve(dir, 'swapped.pem'), resolve(dir, 'swapped-key.pem')),
  });
  assert.equal(outcome.result, 'ok');
  assert.deepEqual(outcome.listeners, { changed: ['public'] });
  const after = await served();
  assert.notEqual(after, before);
  assert.equal(after, issued.fingerprint);
  await echoes(live, 'the wss opened before the swap');
  const fresh = new WebSocket(`wss://localhost:${gw.port()}/chat`, { ca });
  await within(new Promise((done) => fresh.once('open', done)), 'a wss on the new certificate');
  await echoes(fresh, 'on the new certificate');
  live.close();
  fresh.close();
});

test('a changed pool carries over the backends it still lists: their WebSockets, counts and health state', async (t) => {
  const [a, b] = [await startEchoBackend(t), await startEchoBackend(t)];
  assert.ok(a && b);
  const health = {
    active: { type: 'tcp', interval: '50ms', timeout: '200ms', unhealthyAfter: 1, healthyAfter: 2 },
  };
  const first = {
    routes: { chat: { path: '/chat', pool: 'echo' } },
    pools: { echo: pool([a, b], { balance: 'least_connections', health }) },
  };
  const gw = await startGateway(t, first);
  const clients = await Promise.all([1, 2, 3, 4].map(() => openClient(gw.wsUrl('/chat'))));
  const closes = clients.map((ws) => closeOf(ws, 10_000));
  const backendsOf = async () =>
    ((await statusJson(gw)).pools as { backends: { url: string; state: string; websockets: number }[] }[])[0]
      ?.backends ?? [];
  // One backend goes away: its checks take it down (its WebSockets end with it).
  const onA = a.sockets.length;
  b.server.closeAllConnections();
  b.server.close();
  for (const socket of b.sockets) socket.terminate();
  await eventually(
    async () => (await backendsOf()).find((entry) => entry.url === b.url)?.state === 'down',
    'b is down',
  );
  const outcome = await reloadTo(gw, {
    ...first,
    pools: { echo: pool([a, b], { balance: 'least_connections', health, retries: 0 }) },
  });
  assert.equal(outcome.result, 'ok');
  const after = await backendsOf();
  assert.equal(after.find((entry) => entry.url === b.url)?.state, 'down', 'a down backend stays down');
  assert.equal(
    after.find((entry) => entry.url === a.url)?.websockets,
    onA,
    'the WebSockets are counted where they were',
  );
  const kept = clients.filter((client) => client.readyState === WebSocket.OPEN);
  assert.equal(kept.length, onA, 'the WebSockets on the backend that stayed are all open');
  for (const ws of kept) await echoes(ws, 'carried');
  const fresh = await openClient(gw.wsUrl('/chat'));
  await echoes(fresh, 'the new pool serves');
  for (const ws of [...clients, fresh]) ws.close();
  await Promise.all(closes);
});

test('POST /reload on the admin server: from this machine it reloads, from elsewhere it is refused', async (t) => {
  const backend = await startEchoBackend(t);
  const external = Object.values(networkInterfaces())
    .flat()
    .find((entry) => entry?.family === 'IPv4' && !entry.internal)?.address;
  const gw = await startGateway(t, {
    admin: { address: '0.0.0.0', port: 0 },
    routes: { chat: { path: '/chat', pool: 'echo' } },
    pools: { echo: pool([backend]) },
  });
  const post = (host: string) => plainRequest(gw.adminPort(), '/reload', { method: 'POST', host });
  const local = await post('127.0.0.1');
  assert.equal(local.status, 200);
  assert.equal((JSON.parse(local.body) as { result: string }).result, 'unchanged');
  assert.equal((await plainGet(gw.adminPort(), '/reload')).status, 405);
  if (external === undefined) {
    t.diagnostic('no non-loopback IPv4 address here: the refusal from elsewhere is not exercised');
    return;
  }
  const remote = await post(external);
  assert.equal(remote.status, 403);
  assert.equal(await gw.metric('wsgate_config_reloads_total'), 1, 'the refused request reloaded nothing');
});

test('a listener turned to TLS on the same port is replaced: its open WebSocket stays, new connections speak TLS', async (t) => {
  const { first, gw } = await chatGateway(t);
  const port = gw.port();
  const plain = await openClient(gw.wsUrl('/chat'));
  const outcome = await reloadTo(gw, {
    ...first,
    listeners: {
      public: {
        address: '127.0.0.1',
        port,
        tls: { cert: resolve(TLS_DIR, 'server.pem'), key: resolve(TLS_DIR, 'server-key.pem') },
      },
    },
  });
  assert.equal(outcome.result, 'ok', outcome.error);
  assert.deepEqual(outcome.listeners, { replaced: ['public'] });
  assert.equal(gw.port(), port, 'the same port');
  const ca = readFileSync(resolve(TLS_DIR, 'ca.pem'));
  const secure = await openClient(`wss://localhost:${port}/chat`, undefined, { ca });
  await echoes(secure, 'over TLS now');
  await echoes(plain, 'the plain one opened before goes on');
  secure.close();
  plain.close();
});

test('regression: a backend removed and added back before its drain ends keeps its WebSockets', async (t) => {
  const [a, b] = [await startEchoBackend(t), await startEchoBackend(t)];
  assert.ok(a && b);
  const both = {
    routes: { chat: { path: '/chat', pool: 'echo' } },
    pools: { echo: pool([a, b], { drainTimeout: '400ms' }) },
    shutdown: { closeSpread: '0s' },
  };
  // The drain's deadline is on the gateway's clock: this test moves it by hand.
  const clock = new FakeClock();
  const gw = await startGateway(t, both, { clock });
  const clients = await Promise.all([1, 2, 3, 4].map(() => openClient(gw.wsUrl('/chat'))));
  assert.ok(b.sockets.length > 0, 'b has WebSockets');
  assert.equal(
    (await reloadTo(gw, { ...both, pools: { echo: pool([a], { drainTimeout: '400ms' }) } })).result,
    'ok',
  );
  assert.equal((await reloadTo(gw, both)).result, 'ok');
  // Past the deadline the removal had set: nothing was closed.
  clock.advance(600);
  for (const ws of clients) await echoes(ws, 'still here');
  assert.equal(await gw.metric('wsgate_tunnel_errors_total', { code: 'BACKEND_REMOVED' }), 0);
  const counts = ((await statusJson(gw)).pools as { backends: { url: string; websockets: number }[] }[])[0]
    ?.backends;
  assert.equal(
    counts?.find((entry) => entry.url === b.url)?.websockets,
    b.sockets.length,
    'b is the same backend, its WebSockets counted',
  );
  for (const ws of clients) ws.close();
});
