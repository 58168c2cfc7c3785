/**
 * Sticky routing on real sockets, across three backends: a key taken from a path segment (the
 * SockJS server id), a header with the client address as fallback, routes a session's plain
 * HTTP requests and its WebSocket to the same backend; keys spread over the backends; a key whose
 * backend is gone moves to its next choice. And a Socket.IO cluster of three servers with twenty
 * clients on default transports (long-polling, then the upgrade): with client-address stickiness
 * every session connects, upgrades and exchanges acknowledged events; without it, sessions break
 * (the test has teeth).
 */
import assert from 'node:assert/strict';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type TestContext, test } from 'node:test';
import { Server as SocketIoServer } from 'socket.io';
import { type Socket as ClientSocket, io } from 'socket.io-client';
import { type EchoBackend, startEchoBackend } from '../helpers/backends.ts';
import { handshakeHeaders, nextMessage, openClient, plainGet, rawRequest } from '../helpers/clients.ts';
import { within } from '../helpers/eventually.ts';
import { startGateway, type TestGateway } from '../helpers/gateway.ts';

/** An echo backend that names itself in its HTTP answers and its WebSocket echoes. */
function namedBackend(t: TestContext, name: string): Promise<EchoBackend> {
  return startEchoBackend(t, {
    onConnection: (socket) => socket.on('message', (data) => socket.send(`${name}:${String(data)}`)),
    onRequest: (_req, res) => res.end(name),
  });
}

/** The body of a plain GET through the gateway. */
async function getBody(gw: TestGateway, path: string, headers: Record<string, string> = {}): Promise<string> {
  return (await plainGet(gw.port(), path, headers)).body;
}

/** The backend that echoes on a WebSocket opened at `path`. */
async function wsBackend(
  gw: TestGateway,
  path: string,
  headers: Record<string, string> = {},
): Promise<string> {
  const ws = await openClient(gw.wsUrl(path), undefined, { headers });
  ws.send('hi');
  const reply = String((await nextMessage(ws)).data);
  ws.close();
  return reply.split(':')[0] ?? '';
}

async function threeBackends(t: TestContext): Promise<EchoBackend[]> {
  return Promise.all(['a', 'b', 'c'].map((name) => namedBackend(t, name)));
}

test('a path segment key (the SockJS server id) sends a session’s HTTP requests and its WebSocket to one backend', async (t) => {
  const backends = await threeBackends(t);
  const gw = await startGateway(t, {
    routes: { chat: { pool: 'chat', path: '/chat' } },
    pools: { chat: { backends: backends.map((backend) => backend.url), sticky: { from: [{ path: 2 }] } } },
  });
  const seen = new Set<string>();
  for (let server = 0; server < 24; server++) {
    const http = await getBody(gw, `/chat/${server}/session-x/xhr_streaming`);
    const again = await getBody(gw, `/chat/${server}/session-y/xhr_send`);
    const websocket = await wsBackend(gw, `/chat/${server}/session-x/websocket`);
    assert.equal(again, http, `server id ${server}: both HTTP requests on one backend`);
    assert.equal(websocket, http, `server id ${server}: the WebSocket on the same backend`);
    seen.add(http);
  }
  assert.equal(seen.size, 3, 'the keys spread over every backend');
  assert.equal(await gw.metric('wsgate_balancer_picks_total', { pool: 'chat', algorithm: 'sticky' }), 72);
});

test('a header key, with the client address as fallback; a key whose backend is gone moves to its next choice', async (t) => {
  const backends = await threeBackends(t);
  const gw = await startGateway(t, {
    routes: { chat: { pool: 'chat' } },
    pools: {
      chat: {
        backends: backends.map((backend) => backend.url),
        retries: 2,
        sticky: { from: [{ header: 'X-Session' }, 'clientAddress'] },
      },
    },
  });
  const keyed = await Promise.all(
    Array.from({ length: 12 }, async (_, i) => {
      const headers = { 'X-Session': `user-${i}` };
      return { headers, http: await getBody(gw, '/poll', headers), ws: await wsBackend(gw, '/ws', headers) };
    }),
  );
  for (const { http, ws } of keyed) assert.equal(ws, http, 'HTTP and WebSocket of one key on one backend');
  assert.ok(new Set(keyed.map((entry) => entry.http)).size > 1, 'header keys spread');
  // Without the header every request comes from 127.0.0.1: one key, one backend.
  const fallback = new Set([
    await getBody(gw, '/poll'),
    await getBody(gw, '/poll'),
    await wsBackend(gw, '/ws'),
  ]);
  assert.equal(fallback.size, 1, 'the client address keeps them together');
  // The backend of one key goes away: the key moves, the keys of the other backends stay.
  const victim = keyed[0]?.http ?? 'a';
  const server = backends[['a', 'b', 'c'].indexOf(victim)];
  server?.server.closeAllConnections();
  await new Promise<void>((closed) => server?.server.close(() => closed()));
  for (const { headers, http } of keyed) {
    const now = await getBody(gw, '/poll', headers);
    if (http === victim) assert.notEqual(now, victim, 'moved to its next choice');
    else assert.equal(now, http, 'a key whose backend stayed did not move');
  }
});

/** A Socket.IO server that acknowledges every "echo" with its own name. */
async function socketIoServer(t: TestContext, name: string): Promise<string> {
  const server = createServer();
  const ioServer = new SocketIoServer(server);
  ioServer.on('connection', (socket) => {
    socket.on('echo', (payload: unknown, ack: (reply: unknown) => void) => ack({ name, payload }));
  });
  await new Promise<void>((listening) => server.listen(0, '127.0.0.1', listening));
  t.after(
    () =>
      new Promise<void>((closed) => {
        ioServer.close(() => closed());
        server.closeAllConnections();
      }),
  );
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

interface SessionOutcome {
  readonly ok: boolean;
  readonly transport?: string;
  readonly servers?: readonly string[];
}

/** Connects, waits for the upgrade, exchanges three acked events; resolves with what happened. */
function session(gw: TestGateway, clients: ClientSocket[]): Promise<SessionOutcome> {
  // withCredentials: the Node.js client keeps cookies (the affinity cookie) as a browser would.
  const client = io(gw.httpUrl('/'), {
    reconnection: false,
    timeout: 5_000,
    forceNew: true,
    withCredentials: true,
  });
  clients.push(client);
  return within(
    new Promise<SessionOutcome>((resolve) => {
      client.once('connect_error', () => resolve({ ok: false }));
      client.once('disconnect', () => resolve({ ok: false }));
      client.once('connect', () => {
        const upgraded = (): void => {
          void Promise.all(
            [1, 2, 3].map(
              (n) =>
                new Promise<string>((acked) =>
                  client.emit('echo', n, (reply: { name: string }) => acked(reply.name)),
                ),
            ),
          ).then((servers) => resolve({ ok: true, transport: client.io.engine.transport.name, servers }));
        };
        if (client.io.engine.transport.name === 'websocket') upgraded();
        else client.io.engine.once('upgrade', upgraded);
      });
    }),
    'a Socket.IO session to connect, upgrade and exchange acks',
    15_000,
  ).catch(() => ({ ok: false }));
}

async function cluster(t: TestContext, from: readonly string[] | undefined): Promise<SessionOutcome[]> {
  const urls = await Promise.all(['s1', 's2', 's3'].map((name) => socketIoServer(t, name)));
  const gw = await startGateway(t, {
    routes: { realtime: { path: '/socket.io/', pool: 'realtime' } },
    pools: { realtime: { backends: urls, ...(from ? { sticky: { from } } : {}) } },
  });
  const clients: ClientSocket[] = [];
  t.after(() => {
    for (const client of clients) client.disconnect();
  });
  const outcomes = await Promise.all(Array.from({ length: 20 }, () => session(gw, clients)));
  for (const client of clients) client.disconnect();
  return outcomes;
}

test('a Socket.IO cluster of three servers: twenty sessions connect, upgrade and exchange acks with client-address stickiness', async (t) => {
  const outcomes = await cluster(t, ['clientAddress']);
  assert.deepEqual(
    outcomes.map((outcome) => outcome.ok),
    outcomes.map(() => true),
  );
  for (const outcome of outcomes) {
    assert.equal(outcome.transport, 'websocket');
    assert.equal(new Set(outcome.servers).size, 1, 'every ack from the server that holds the session');
  }
});

test('the same cluster with the gateway’s affinity cookie: twenty sessions, each on the server that holds it, spread over the three', async (t) => {
  const outcomes = await cluster(t, ['affinityCookie']);
  assert.deepEqual(
    outcomes.map((outcome) => outcome.ok),
    outcomes.map(() => true),
  );
  for (const outcome of outcomes) assert.equal(new Set(outcome.servers).size, 1);
  assert.ok(
    new Set(outcomes.map((outcome) => outcome.servers?.[0])).size > 1,
    'sessions spread over the servers',
  );
});

test('the same cluster without stickiness breaks sessions (what stickiness is for)', async (t) => {
  const outcomes = await cluster(t, undefined);
  const broken = outcomes.filter((outcome) => !outcome.ok).length;
  t.diagnostic(`${broken} of 20 sessions broke without stickiness`);
  assert.ok(broken >= 10, `round-robin over three servers breaks most sessions (${broken} of 20 broke)`);
});

test('the affinity cookie: set once with its attributes, read back, a forged one ignored and replaced', async (t) => {
  const backends = await threeBackends(t);
  const gw = await startGateway(t, {
    routes: { chat: { pool: 'chat' } },
    pools: {
      chat: {
        backends: backends.map((backend) => backend.url),
        sticky: { from: ['affinityCookie'], cookie: { name: 'aff', maxAge: '1h' } },
      },
    },
  });
  const first = await getWithCookies(gw, '/poll');
  const setCookie = first.setCookie ?? '';
  assert.match(
    setCookie,
    /^aff=[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{16}; Path=\/; HttpOnly; SameSite=Lax; Max-Age=3600$/,
  );
  assert.ok(!/Secure/.test(setCookie), 'no Secure over plain HTTP');
  const cookie = setCookie.split(';')[0] ?? '';
  for (let i = 0; i < 5; i++) {
    const again = await getWithCookies(gw, '/poll', cookie);
    assert.equal(again.body, first.body, 'the cookie keeps the session on its backend');
    assert.equal(again.setCookie, undefined, 'a valid cookie is not set again');
  }
  assert.equal(await wsBackend(gw, '/ws', { Cookie: cookie }), first.body, 'the WebSocket follows it');
  // A cookie whose signature fails names nothing: a new one is issued.
  const forged = await getWithCookies(gw, '/poll', `aff=${'A'.repeat(22)}.${'B'.repeat(16)}`);
  assert.ok(forged.setCookie?.startsWith('aff='), 'a forged cookie is replaced');
  assert.notEqual(forged.setCookie?.split(';')[0], `aff=${'A'.repeat(22)}.${'B'.repeat(16)}`);
  // New sessions spread over the backends.
  const firsts = new Set<string>();
  for (let i = 0; i < 30; i++) firsts.add((await getWithCookies(gw, '/poll')).body);
  assert.equal(firsts.size, 3);
  // The 101 of a WebSocket that starts without a cookie sets one too.
  const upgrade = await rawRequest(gw.port(), { path: '/ws', headers: handshakeHeaders() });
  upgrade.socket.destroy();
  assert.equal(upgrade.status, 101);
  assert.match(
    upgrade.headers['set-cookie'] ?? '',
    /^aff=[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{16}; Path=\/; HttpOnly/,
  );
});

async function getWithCookies(
  gw: TestGateway,
  path: string,
  cookie?: string,
): Promise<{ body: string; setCookie: string | undefined }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = cookie ? { cookie } : {};
    const req = request({ host: '127.0.0.1', port: gw.port(), path, headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        body += chunk;
      });
      res.on('end', () => resolve({ body, setCookie: res.headers['set-cookie']?.[0] }));
    });
    req.on('error', reject);
    req.end();
  });
}
