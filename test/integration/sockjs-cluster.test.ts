/**
 * SockJS across three backends: every SockJS URL names a server id (`/echo/{server}/{session}/
 * {transport}`) so that a load balancer can keep a session's requests together without a
 * cookie. With `sticky.from: [{ path: 2 }]`, sessions on xhr-streaming and xhr-polling (each a
 * series of separate plain HTTP requests: receive, send, receive...) open and echo on one server
 * each, spread over the three; without stickiness, their requests scatter over the servers (which
 * breaks sessions whenever the servers do not share their session table, as separate processes
 * never do).
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { type TestContext, test } from 'node:test';
import { type Connection, createServer as createSockJsServer } from 'sockjs';
import SockJS from 'sockjs-client';
import { within } from '../helpers/eventually.ts';
import { startGateway, type TestGateway } from '../helpers/gateway.ts';

/** Which servers saw the requests of each session (`{server}/{session}` of its URLs). */
type SeenBy = Map<string, Set<string>>;

/**
 * A SockJS server under `/echo` that answers every message with `name:message` and records which
 * sessions' requests it served. (The sockjs package keeps sessions in one table per process, so
 * three servers in one test process would find each other's sessions: only the requests each
 * server saw tell where a session's requests went.)
 */
async function namedSockJsServer(t: TestContext, name: string, seenBy: SeenBy): Promise<string> {
  const server = createServer();
  const sockjs = createSockJsServer({ prefix: '/echo', log: () => {} });
  sockjs.on('connection', (conn: Connection) =>
    conn.on('data', (message: string) => conn.write(`${name}:${message}`)),
  );
  sockjs.installHandlers(server);
  server.prependListener('request', (req) => {
    const [, , serverId, sessionId] = (req.url ?? '').split('?')[0]?.split('/') ?? [];
    if (serverId === undefined || sessionId === undefined) return; // /echo/info
    const key = `${serverId}/${sessionId}`;
    seenBy.set(key, (seenBy.get(key) ?? new Set()).add(name));
  });
  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((listening) => server.listen(0, '127.0.0.1', listening));
  t.after(
    () =>
      new Promise<void>((closed) => {
        server.close(() => closed());
        for (const socket of sockets) socket.destroy();
      }),
  );
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

interface Client {
  send(data: string): void;
  close(): void;
  onopen: (() => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: (() => void) | null;
}

/** Opens a session on `transport`, sends two messages, resolves with the servers that answered. */
function session(gw: TestGateway, transport: string, clients: Client[]): Promise<string[] | undefined> {
  const client = new SockJS(gw.httpUrl('/echo'), undefined, {
    transports: [transport],
    timeout: 5_000,
  }) as unknown as Client;
  clients.push(client);
  return within(
    new Promise<string[] | undefined>((resolve) => {
      const servers: string[] = [];
      client.onopen = () => {
        client.send('one');
        client.send('two');
      };
      client.onmessage = (event) => {
        servers.push(String(event.data).split(':')[0] ?? '');
        if (servers.length === 2) resolve(servers);
      };
      client.onclose = () => resolve(undefined);
    }),
    `a SockJS session on ${transport}`,
    15_000,
  ).catch(() => undefined);
}

async function cluster(t: TestContext, sticky: boolean) {
  const seenBy: SeenBy = new Map();
  const urls = await Promise.all(['s1', 's2', 's3'].map((name) => namedSockJsServer(t, name, seenBy)));
  const gw = await startGateway(t, {
    routes: { echo: { path: '/echo', pool: 'echo' } },
    pools: { echo: { backends: urls, ...(sticky ? { sticky: { from: [{ path: 2 }] } } : {}) } },
  });
  const clients: Client[] = [];
  t.after(() => {
    for (const client of clients) client.close();
  });
  const outcomes = await Promise.all(
    ['xhr-streaming', 'xhr-polling'].flatMap((transport) =>
      Array.from({ length: 10 }, () => session(gw, transport, clients)),
    ),
  );
  for (const client of clients) client.close();
  return { outcomes, seenBy };
}

test('SockJS sessions on xhr-streaming and xhr-polling stay on one of three servers by their server id', async (t) => {
  const { outcomes, seenBy } = await cluster(t, true);
  assert.equal(seenBy.size, 20, 'twenty sessions reached the servers');
  for (const [session, servers] of seenBy)
    assert.equal(servers.size, 1, `every request of ${session} on one server`);
  assert.ok(new Set([...seenBy.values()].map((servers) => [...servers][0])).size > 1, 'sessions spread');
  assert.ok(
    outcomes.every((servers) => servers !== undefined),
    `every session opened and echoed (${outcomes.filter((servers) => servers === undefined).length} failed)`,
  );
});

test('without stickiness, the requests of SockJS sessions scatter over the servers', async (t) => {
  const { seenBy } = await cluster(t, false);
  const scattered = [...seenBy.values()].filter((servers) => servers.size > 1).length;
  t.diagnostic(`${scattered} of ${seenBy.size} sessions had their requests on several servers`);
  assert.ok(scattered >= seenBy.size / 2, `most sessions scatter (${scattered} of ${seenBy.size})`);
});
