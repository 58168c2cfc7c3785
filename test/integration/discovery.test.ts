/**
 * DNS discovery on real sockets, with an injected resolver whose answer the test changes: the
 * addresses found are the pool; an address that disappears is drained (no new connections, its
 * open WebSockets go on until `drainTimeout`, then both sides get 1001); one that comes back
 * before the deadline keeps its tunnels; a failed or empty lookup keeps the last set; a pool with
 * nothing found yet answers 503; `dns` entries take A and AAAA records on the URL's port and
 * keep the entry's name as the Host header and the metric label.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type TestContext, test } from 'node:test';
import type { WebSocket } from 'ws';
import type { Resolver } from '../../src/upstream/discovery.ts';
import { type EchoBackend, startEchoBackend } from '../helpers/backends.ts';
import {
  closeOf,
  handshakeHeaders,
  nextMessage,
  openClient,
  plainGet,
  rawRequest,
} from '../helpers/clients.ts';
import { eventually } from '../helpers/eventually.ts';
import { FakeClock } from '../helpers/fake-clock.ts';
import { startGateway, type TestGateway, testConfig } from '../helpers/gateway.ts';

const SRV_NAME = '_ws._tcp.chat.test';

type Answer<T> = T | Error;

function dnsError(code: string): Error {
  return Object.assign(new Error(`query failed: ${code}`), { code });
}

/** A resolver that answers whatever the test last set, counting the SRV lookups it served. */
class ScriptedResolver implements Resolver {
  srv: Answer<{ name: string; port: number; priority: number; weight: number }[]> = [];
  four: Answer<string[]> = dnsError('ENODATA');
  six: Answer<string[]> = dnsError('ENODATA');
  srvLookups = 0;

  /** SRV records of priority 10 for `backends` (each at 127.0.0.1 on its port). */
  serve(backends: readonly EchoBackend[]): void {
    this.srv = backends.map((backend) => ({
      name: '127.0.0.1',
      port: backend.port,
      priority: 10,
      weight: 1,
    }));
  }

  async resolveSrv(_name: string) {
    this.srvLookups++;
    if (this.srv instanceof Error) throw this.srv;
    return this.srv;
  }

  async resolve4(_name: string): Promise<string[]> {
    if (this.four instanceof Error) throw this.four;
    return this.four;
  }

  async resolve6(_name: string): Promise<string[]> {
    if (this.six instanceof Error) throw this.six;
    return this.six;
  }
}

function discoveredPool(extra: Record<string, unknown> = {}) {
  return {
    routes: { chat: { pool: 'chat' } },
    pools: {
      chat: {
        backends: [{ url: `http://${SRV_NAME}`, discover: 'srv' }],
        discovery: { interval: '50ms', timeout: '1s' },
        drainTimeout: '1500ms',
        retries: 0,
        ...extra,
      },
    },
  };
}

async function echoes(ws: WebSocket, text: string): Promise<void> {
  const reply = nextMessage(ws);
  ws.send(text);
  assert.equal((await reply).data.toString(), text);
}

async function backendStates(gw: TestGateway): Promise<Record<string, string>> {
  const body = await fetch(`http://127.0.0.1:${gw.adminPort()}/status.json`).then((res) => res.json());
  const pool = (body as { pools: { backends: { url: string; state: string }[] }[] }).pools[0];
  return Object.fromEntries((pool?.backends ?? []).map((backend) => [backend.url, backend.state]));
}

/** An echo backend that answers "who" with its URL, so a test knows where each client landed. */
async function namedBackend(t: TestContext): Promise<EchoBackend> {
  const named: { backend?: EchoBackend } = {};
  named.backend = await startEchoBackend(t, {
    onRequest: (_req, res) => res.end(named.backend?.url ?? ''),
    onConnection: (socket) =>
      socket.on('message', (data, isBinary) =>
        socket.send(data.toString() === 'who' ? (named.backend?.url ?? '') : data, { binary: isBinary }),
      ),
  });
  return named.backend;
}

async function whereIs(ws: WebSocket): Promise<string> {
  const reply = nextMessage(ws);
  ws.send('who');
  return (await reply).data.toString();
}

function closeAll(clients: readonly WebSocket[]): void {
  for (const ws of clients) ws.terminate();
}

test('a backend gone from DNS gets no new connections; its WebSockets go on until drainTimeout, then both sides get 1001', async (t: TestContext) => {
  const [a, b, c] = await Promise.all([namedBackend(t), namedBackend(t), namedBackend(t)]);
  assert.ok(a && b && c);
  const resolver = new ScriptedResolver();
  resolver.serve([a, b]);
  const gw = await startGateway(t, discoveredPool(), { resolver });
  const first = await Promise.all(Array.from({ length: 4 }, () => openClient(gw.wsUrl('/'))));
  t.after(() => closeAll(first));
  assert.equal(a.upgrades.length, 2, 'the first set is the pool: round robin over A and B');
  assert.equal(b.upgrades.length, 2);
  assert.equal(await gw.metric('wsgate_backend_addresses', { backend: `http://${SRV_NAME}` }), 2);

  resolver.serve([b, c]);
  await eventually(async () => (await backendStates(gw))[a.url] === 'draining', 'A is draining');
  const removedAt = performance.now();
  const places = await Promise.all(first.map(whereIs));
  const onA = first.filter((_, i) => places[i] === a.url);
  const onB = first.filter((_, i) => places[i] === b.url);
  assert.equal(onA.length, 2);
  const closes = onA.map((ws) => closeOf(ws, 5_000));
  const backendCloses = a.sockets.map(
    (socket) => new Promise<number>((resolve) => socket.once('close', (code) => resolve(code))),
  );

  const later = await Promise.all(Array.from({ length: 4 }, () => openClient(gw.wsUrl('/'))));
  t.after(() => closeAll(later));
  assert.equal(a.upgrades.length, 2, 'a draining backend gets no new connection');
  assert.equal(c.upgrades.length, 2, 'the new address takes its share');
  for (const ws of onA) await echoes(ws, 'still here');

  const closed = await Promise.all(closes);
  const waited = performance.now() - removedAt;
  for (const close of closed) assert.deepEqual(close, { code: 1001, reason: 'backend removed' });
  assert.deepEqual(await Promise.all(backendCloses), [1001, 1001], 'the backend is told 1001 too');
  assert.ok(
    waited >= 1_200,
    `the tunnels were kept until the drain deadline (closed after ${Math.round(waited)} ms)`,
  );
  for (const ws of [...onB, ...later]) await echoes(ws, 'untouched');
  await eventually(async () => !(a.url in (await backendStates(gw))), 'A is gone from the status page');
  assert.equal(await gw.metric('wsgate_backend_connections_active', { backend: `http://${SRV_NAME}` }), 6);
  assert.ok(gw.logs.some((line) => line.msg === 'discovered backends changed'));
});

test('an address back in DNS before its drain ends keeps its WebSockets and gets new ones again', async (t: TestContext) => {
  const [a, b] = await Promise.all([startEchoBackend(t), startEchoBackend(t)]);
  assert.ok(a && b);
  const resolver = new ScriptedResolver();
  resolver.serve([a, b]);
  const gw = await startGateway(t, discoveredPool({ drainTimeout: '600ms' }), { resolver });
  const clients = await Promise.all([openClient(gw.wsUrl('/')), openClient(gw.wsUrl('/'))]);
  t.after(() => closeAll(clients));
  resolver.serve([b]);
  await eventually(async () => (await backendStates(gw))[a.url] === 'draining', 'A is draining');
  resolver.serve([a, b]);
  await eventually(async () => (await backendStates(gw))[a.url] === 'up', 'A is back');
  // Past the deadline the first drain had: the tunnel to A is still there.
  const lookups = resolver.srvLookups;
  await eventually(() => resolver.srvLookups >= lookups + 14, 'lookups went on past the deadline', 5_000);
  for (const ws of clients) await echoes(ws, 'kept');
  const more = await Promise.all([openClient(gw.wsUrl('/')), openClient(gw.wsUrl('/'))]);
  t.after(() => closeAll(more));
  assert.equal(a.upgrades.length, 2, 'A takes new connections again');
});

test('a lookup that fails or finds nothing keeps the last set', async (t: TestContext) => {
  const a = await startEchoBackend(t);
  const resolver = new ScriptedResolver();
  resolver.serve([a]);
  const gw = await startGateway(t, discoveredPool(), { resolver });
  for (const answer of [dnsError('ESERVFAIL'), [], dnsError('ENOTFOUND')]) {
    resolver.srv = answer;
    const lookups = resolver.srvLookups;
    await eventually(() => resolver.srvLookups >= lookups + 3, 'three more lookups');
    assert.deepEqual(await backendStates(gw), { [a.url]: 'up' });
    const ws = await openClient(gw.wsUrl('/'));
    await echoes(ws, 'still served');
    ws.close();
    await closeOf(ws);
  }
  const failed = await gw.metric('wsgate_discovery_lookups_total', { result: 'failed' });
  assert.ok(failed >= 9, `failed lookups are counted (${failed})`);
  assert.ok(gw.logs.some((line) => line.msg === 'discovery lookup failed; the last set found stays'));
});

test('before any lookup finds an address, upgrades and plain requests get 503, and are served once one does', async (t: TestContext) => {
  const a = await startEchoBackend(t);
  const resolver = new ScriptedResolver();
  resolver.srv = dnsError('ETIMEOUT');
  const gw = await startGateway(t, discoveredPool(), { resolver });
  const refused = await rawRequest(gw.port(), { headers: handshakeHeaders() });
  refused.socket.destroy();
  assert.equal(refused.status, 503);
  const plain = await fetch(gw.httpUrl('/poll'));
  assert.equal(plain.status, 503);
  await plain.arrayBuffer();
  assert.ok(gw.logs.some((line) => line.code === 'NO_BACKEND'));
  resolver.serve([a]);
  await eventually(async () => a.url in (await backendStates(gw)), 'A is found');
  const ws = await openClient(gw.wsUrl('/'));
  await echoes(ws, 'found');
  ws.close();
  await closeOf(ws);
});

test('dns: each A and AAAA address is a backend on the URL port; the backend gets the entry name as Host, metrics its label', async (t: TestContext) => {
  // Two backends on one port, at 127.0.0.2 and 127.0.0.3, as pods of one headless Service are.
  const hosts: string[] = [];
  const servers = ['127.0.0.2', '127.0.0.3'].map(() =>
    createServer((req, res) => {
      hosts.push(String(req.headers.host));
      res.end(req.socket.localAddress);
    }),
  );
  const [two, three] = servers;
  assert.ok(two && three);
  await new Promise<void>((listening) => two.listen(0, '127.0.0.2', listening));
  const port = (two.address() as AddressInfo).port;
  const bound = await new Promise<boolean>((resolve) => {
    three.once('error', () => resolve(false));
    three.listen(port, '127.0.0.3', () => resolve(true));
  });
  t.after(() => {
    for (const server of servers) {
      server.closeAllConnections();
      server.close();
    }
  });
  if (!bound) {
    t.skip(`port ${port} is taken on 127.0.0.3`);
    return;
  }
  const resolver = new ScriptedResolver();
  resolver.four = ['127.0.0.3', '127.0.0.2'];
  resolver.six = dnsError('ENODATA');
  const entry = `http://chat.test:${port}`;
  const gw = await startGateway(
    t,
    {
      routes: { chat: { pool: 'chat' } },
      pools: { chat: { backends: [{ url: entry, discover: 'dns' }], preserveHost: false } },
    },
    { resolver },
  );
  const served = new Set<string>();
  for (let i = 0; i < 4; i++) {
    served.add((await plainGet(gw.port(), '/x')).body);
  }
  assert.deepEqual([...served].sort(), ['127.0.0.2', '127.0.0.3']);
  assert.deepEqual(new Set(hosts), new Set([`chat.test:${port}`]));
  assert.equal(
    await gw.metric('wsgate_backend_up', { backend: entry }),
    2,
    'both addresses up, under one label',
  );
  assert.equal(await gw.metric('wsgate_backend_addresses', { backend: entry }), 2);
});

test('slow start: an address that joins gets a tenth of its share at first, all of it after the warm-up', async (t: TestContext) => {
  const [a, b, c] = await Promise.all([namedBackend(t), namedBackend(t), namedBackend(t)]);
  assert.ok(a && b && c);
  const clock = new FakeClock();
  const resolver = new ScriptedResolver();
  resolver.serve([a, b]);
  const gw = await startGateway(t, discoveredPool({ slowStart: '10s', discovery: { interval: '1s' } }), {
    resolver,
    clock,
  });
  /** How many of `count` plain requests reach `backend`. */
  const share = async (backend: EchoBackend, count: number): Promise<number> => {
    let reached = 0;
    for (let i = 0; i < count; i++) if ((await plainGet(gw.port(), '/poll')).body === backend.url) reached++;
    return reached;
  };
  assert.equal(await share(c, 20), 0);
  resolver.serve([a, b, c]);
  const lookups = resolver.srvLookups;
  clock.advance(1_000);
  await eventually(async () => c.url in (await backendStates(gw)), 'C joined');
  assert.ok(resolver.srvLookups > lookups);
  // Weights 1, 1 and 0.1: about one request in 21 for C.
  const first = await share(c, 42);
  assert.ok(first >= 1 && first <= 3, `C got ${first} of 42 at first`);
  clock.advance(5_000);
  const halfway = await share(c, 42);
  assert.ok(halfway >= 7 && halfway <= 11, `C got ${halfway} of 42 half way (weight 0.55 of 2.55)`);
  clock.advance(5_000);
  assert.equal(await share(c, 42), 14, 'the full third once warm');
  // The configured set started at full weight.
  assert.equal(await share(a, 42), 14);
});

test('the system resolver: a name from /etc/hosts (localhost) is found and served', async (t: TestContext) => {
  const a = await namedBackend(t);
  const gw = await startGateway(t, {
    routes: { chat: { pool: 'chat' } },
    pools: { chat: { backends: [{ url: `http://localhost:${a.port}`, discover: 'dns' }] } },
  });
  const states = await backendStates(gw);
  assert.equal(states[a.url], 'up', `found at 127.0.0.1 (${JSON.stringify(states)})`);
  assert.equal((await plainGet(gw.port(), '/')).body, a.url);
});

test('regression: an upgrade still connecting when its backend leaves is closed at the drain deadline too', async (t: TestContext) => {
  let release: (() => void) | undefined;
  const held = new Promise<void>((resolve) => {
    release = resolve;
  });
  const slow = await startEchoBackend(t, {
    ws: { verifyClient: (_info, accept) => void held.then(() => accept(true)) },
  });
  const resolver = new ScriptedResolver();
  resolver.serve([slow]);
  const gw = await startGateway(t, discoveredPool({ drainTimeout: '800ms' }), { resolver });
  const opening = openClient(gw.wsUrl('/'));
  await eventually(() => slow.upgrades.length === 1, 'the upgrade reached the backend');
  resolver.srv = [{ name: '127.0.0.2', port: 1, priority: 10, weight: 1 }];
  await eventually(async () => !(slow.url in (await backendStates(gw))), 'the backend left (no tunnel yet)');
  release?.();
  const ws = await opening;
  assert.deepEqual(await closeOf(ws, 5_000), { code: 1001, reason: 'backend removed' });
});

test('regression: a reload that is abandoned (a listener cannot bind) leaves the discovered backends of the pool in force as they were', async (t: TestContext) => {
  const [a, b] = await Promise.all([namedBackend(t), namedBackend(t)]);
  assert.ok(a && b);
  const resolver = new ScriptedResolver();
  resolver.serve([a, b]);
  // An hour between lookups: the pool in force looks no more during the test.
  const slow = { discovery: { interval: '1h', timeout: '1s' } };
  const gw = await startGateway(t, discoveredPool(slow), { resolver });
  const clients = await Promise.all(Array.from({ length: 4 }, () => openClient(gw.wsUrl('/'))));
  t.after(() => closeAll(clients));
  // The reload changes the pool, and DNS no longer lists B when its lookups would run.
  resolver.serve([a]);
  const outcome = await gw.gateway.reload(() =>
    testConfig({
      ...discoveredPool({ ...slow, retries: 1 }),
      listeners: { public: { address: '127.0.0.1', port: 0 }, taken: { address: '127.0.0.1', port: a.port } },
    }),
  );
  assert.equal(outcome.result, 'failed');
  assert.deepEqual(
    await backendStates(gw),
    { [a.url]: 'up', [b.url]: 'up' },
    'B was not drained by a pool never in force',
  );
  for (const ws of clients) await echoes(ws, 'untouched');
  assert.equal(await gw.metric('wsgate_tunnel_errors_total', { code: 'BACKEND_REMOVED' }), 0);
});
