/**
 * A real SockJS server behind the gateway, reached by the sockjs-client package from Node through
 * the gateway's URL, one test per transport, each forced with the client's `transports` option:
 * - websocket: the session runs on a gateway tunnel;
 * - xhr-streaming: the session runs on one long POST response that the backend keeps writing to;
 *   the open frame and every echo can only reach the client if the gateway relays each chunk as it
 *   comes instead of waiting for the response to end, so the test checks that the same single
 *   streaming response is still open after every echo;
 * - xhr-polling: one plain request per receive and one per send, all through the HTTP pass.
 * Each session opens on the transport asked for (checked on both ends), echoes messages in order,
 * and closes cleanly: the backend sees the session end, no request or tunnel is left in the
 * gateway, and the gateway's leak check must pass.
 *
 * sockjs-client runs its xhr transports in Node on its own driver over `http.request` (the
 * response is read chunk by chunk as it arrives) and its websocket transport on faye-websocket,
 * so all three transports tested here are real network transports, not stand-ins.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { type TestContext, test } from 'node:test';
import { type Connection, createServer as createSockJsServer } from 'sockjs';
import SockJS from 'sockjs-client';
import { eventually, within } from '../helpers/eventually.ts';
import { startGateway, type TestGateway } from '../helpers/gateway.ts';

/** The transports under test, as sockjs-client names them. */
type TransportName = 'websocket' | 'xhr-streaming' | 'xhr-polling';

/** A plain request the backend saw, with the response it is writing. */
interface Exchange {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
}

interface SockJsBackend {
  readonly url: string;
  /** Server-side SockJS connections, in the order they opened. */
  readonly connections: Connection[];
  /** Plain HTTP requests the backend saw, in order. */
  readonly exchanges: Exchange[];
  /** Upgrade requests the backend saw, in order. */
  readonly upgrades: IncomingMessage[];
}

interface CloseEventLike {
  readonly code: number;
  readonly reason: string;
  readonly wasClean: boolean;
}

/**
 * What these tests use of a sockjs-client instance. Its published types describe it as a DOM
 * WebSocket, which lacks `transport` (the name of the transport in use, set when the session
 * opens) and types events loosely; this is what lib/main.js and lib/event/ actually provide.
 */
interface SockJsClient {
  readonly readyState: number;
  readonly transport: string | null | undefined;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: 'open', listener: () => void): void;
  addEventListener(type: 'message', listener: (event: { readonly data: unknown }) => void): void;
  addEventListener(type: 'close', listener: (event: CloseEventLike) => void): void;
}

function isSockJsClient(value: unknown): value is SockJsClient {
  return (
    typeof value === 'object' &&
    value !== null &&
    'readyState' in value &&
    'send' in value &&
    typeof value.send === 'function' &&
    'close' in value &&
    typeof value.close === 'function' &&
    'addEventListener' in value &&
    typeof value.addEventListener === 'function'
  );
}

/** The last path segment of a request, which names the SockJS endpoint (info, xhr, xhr_send…). */
function endpointOf(req: IncomingMessage): string {
  const path = new URL(req.url ?? '/', 'http://backend').pathname;
  return path.slice(path.lastIndexOf('/') + 1);
}

function exchangesTo(backend: SockJsBackend, endpoint: string): Exchange[] {
  return backend.exchanges.filter(({ req }) => endpointOf(req) === endpoint);
}

/** A SockJS echo server under `/echo`, on its own HTTP server on 127.0.0.1, closed by `t.after`. */
async function startSockJsBackend(t: TestContext): Promise<SockJsBackend> {
  const server = createServer();
  const sockjs = createSockJsServer({ prefix: '/echo', log: () => {} });
  const connections: Connection[] = [];
  sockjs.on('connection', (conn: Connection) => {
    connections.push(conn);
    conn.on('data', (message: string) => {
      conn.write(message);
    });
  });
  sockjs.installHandlers(server);
  // After installHandlers, which takes over the listeners that exist when it is installed.
  const exchanges: Exchange[] = [];
  const upgrades: IncomingMessage[] = [];
  server.prependListener('request', (req: IncomingMessage, res: ServerResponse) => {
    exchanges.push({ req, res });
  });
  server.prependListener('upgrade', (req: IncomingMessage) => void upgrades.push(req));
  // Upgraded sockets are no longer the HTTP server's to close: track every socket to destroy it.
  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(
    () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      }),
  );
  const port = (server.address() as AddressInfo).port;
  return { url: `http://127.0.0.1:${port}`, connections, exchanges, upgrades };
}

function gatewayFor(t: TestContext, backend: SockJsBackend): Promise<TestGateway> {
  return startGateway(t, {
    routes: { echo: { path: '/echo', pool: 'echo' } },
    pools: { echo: { backends: [backend.url] } },
  });
}

interface Session {
  readonly client: SockJsClient;
  /** Every message the client received, in order (the data as delivered, not coerced). */
  readonly received: unknown[];
  /** Resolves with the client's close event. */
  readonly closed: Promise<CloseEventLike>;
}

/**
 * Opens a client through the gateway on `transport` alone and resolves once it is open. The
 * transport timeout is raised from its default (a few RTTs, well under a second) so that a slow
 * machine does not fail over to "All transports failed".
 */
async function openSession(
  gw: TestGateway,
  transport: TransportName,
  clients: SockJsClient[],
): Promise<Session> {
  const client: unknown = new SockJS(gw.httpUrl('/echo'), undefined, {
    transports: [transport],
    timeout: 10_000,
  });
  assert.ok(isSockJsClient(client), 'sockjs-client returns an object with the WebSocket-like API');
  clients.push(client);
  const received: unknown[] = [];
  client.addEventListener('message', (event) => void received.push(event.data));
  const closed = new Promise<CloseEventLike>((resolve) =>
    client.addEventListener('close', (event) => resolve(event)),
  );
  await within(
    new Promise<void>((resolve, reject) => {
      client.addEventListener('open', () => resolve());
      void closed.then((event) => reject(new Error(`closed before opening: ${event.code} ${event.reason}`)));
    }),
    `the SockJS client to open on ${transport} through the gateway`,
    15_000,
  );
  assert.equal(client.readyState, 1, 'OPEN');
  return { client, received, closed };
}

/** Sends `messages` one at a time, waiting for each echo, then all at once; echoes come in order. */
async function echoInOrder(
  session: Session,
  messages: readonly string[],
  afterEach: () => void,
): Promise<void> {
  const expected: unknown[] = [...session.received];
  for (const message of messages) {
    session.client.send(message);
    expected.push(message);
    await eventually(
      () => session.received.length >= expected.length,
      `the echo of ${JSON.stringify(message)}`,
      10_000,
    );
    assert.deepEqual(session.received, expected, `the echo of ${JSON.stringify(message)}, in order`);
    afterEach();
  }
  const burst = messages.map((message, i) => `${message} (burst ${i})`);
  for (const message of burst) session.client.send(message);
  expected.push(...burst);
  await eventually(() => session.received.length >= expected.length, 'the echoes of the burst', 10_000);
  assert.deepEqual(session.received, expected);
  afterEach();
}

const MESSAGES = [
  'first',
  'second, with "quotes", \\ and ünïcödé ✓',
  JSON.stringify({ n: 3, nested: [1, 2] }),
];

/**
 * Closes the client, then waits for the backend to see the session end and for the gateway to
 * hold no request or tunnel: nothing may be left hanging at teardown.
 */
async function closeSession(session: Session, conn: Connection, gw: TestGateway): Promise<void> {
  const backendClosed = new Promise<void>((resolve) => conn.once('close', () => resolve()));
  session.client.close();
  const event = await within(session.closed, 'the client close event', 10_000);
  assert.deepEqual(
    { code: event.code, reason: event.reason, wasClean: event.wasClean },
    { code: 1000, reason: 'Normal closure', wasClean: true },
  );
  await within(backendClosed, 'the backend to see the session end', 10_000);
  await eventually(
    () => gw.gateway.registry.requestCount === 0 && gw.gateway.registry.tunnelCount === 0,
    `no request or tunnel left in the gateway (requests ${gw.gateway.registry.requestCount}, tunnels ${gw.gateway.registry.tunnelCount})`,
    10_000,
  );
}

/**
 * Backend, gateway and a list of clients; at teardown the clients close first, then the backend,
 * then the gateway checks for leaks.
 */
async function setUp(
  t: TestContext,
): Promise<{ backend: SockJsBackend; gw: TestGateway; clients: SockJsClient[] }> {
  const clients: SockJsClient[] = [];
  // `t.after` hooks run in the order they were added: clients close before the servers do.
  t.after(() => {
    for (const client of clients) client.close();
  });
  const backend = await startSockJsBackend(t);
  const gw = await gatewayFor(t, backend);
  return { backend, gw, clients };
}

/** The one server-side connection of the test, checked to have come through the gateway. */
function onlyConnection(backend: SockJsBackend, transport: TransportName): Connection {
  assert.equal(backend.connections.length, 1, 'one session on the backend');
  const conn = backend.connections[0];
  assert.ok(conn);
  assert.equal(conn.protocol, transport, 'the backend serves the session on the same transport');
  assert.equal(conn.headers['x-forwarded-for'], '127.0.0.1', 'the session came through the gateway');
  return conn;
}

test('sockjs over websocket: the session runs on a gateway tunnel and echoes in order', async (t) => {
  const { backend, gw, clients } = await setUp(t);
  const session = await openSession(gw, 'websocket', clients);
  assert.equal(session.client.transport, 'websocket');
  await eventually(() => backend.connections.length === 1, 'the backend session to open', 10_000);
  const conn = onlyConnection(backend, 'websocket');

  assert.equal(backend.upgrades.length, 1);
  const upgrade = backend.upgrades[0];
  assert.ok(upgrade);
  assert.equal(endpointOf(upgrade), 'websocket');
  assert.equal(upgrade.headers['x-forwarded-for'], '127.0.0.1');
  assert.equal(gw.gateway.registry.tunnelCount, 1, 'the websocket runs as a gateway tunnel');
  assert.deepEqual(
    backend.exchanges.map(({ req }) => endpointOf(req)),
    ['info'],
    'the only plain request is the info request',
  );

  await echoInOrder(session, MESSAGES, () => {
    assert.equal(gw.gateway.registry.tunnelCount, 1, 'still on the same tunnel');
    assert.equal(backend.upgrades.length, 1, 'no second websocket');
  });
  assert.equal(await gw.metric('wsgate_upgrades_total', { route: 'echo', code: 'UPGRADED' }), 1);

  await closeSession(session, conn, gw);
});

test('sockjs over xhr-streaming: every frame arrives while the one streaming response stays open', async (t) => {
  const { backend, gw, clients } = await setUp(t);
  const session = await openSession(gw, 'xhr-streaming', clients);
  assert.equal(session.client.transport, 'xhr-streaming');
  await eventually(() => backend.connections.length === 1, 'the backend session to open', 10_000);
  const conn = onlyConnection(backend, 'xhr-streaming');

  // The open frame came on a response that has not ended: it was relayed before the end.
  const streams = exchangesTo(backend, 'xhr_streaming');
  assert.equal(streams.length, 1, 'one streaming request');
  const stream = streams[0];
  assert.ok(stream);
  assert.equal(stream.req.method, 'POST');
  const streamStillOpen = (): void => {
    assert.equal(exchangesTo(backend, 'xhr_streaming').length, 1, 'no second streaming request');
    assert.equal(stream.res.writableEnded, false, 'the streaming response has not ended');
    assert.equal(stream.req.socket.destroyed, false, 'the streaming request is still connected');
  };
  streamStillOpen();

  // Sent after the stream is open, echoed on that same open response.
  await echoInOrder(session, MESSAGES, streamStillOpen);
  assert.ok(exchangesTo(backend, 'xhr_send').length >= 1, 'messages went up as xhr_send requests');
  assert.equal(backend.upgrades.length, 0, 'no upgrade was attempted');
  assert.equal(gw.gateway.registry.tunnelCount, 0);
  assert.equal(gw.gateway.registry.requestCount, 1, 'only the streaming request is in flight');
  assert.equal(await gw.metric('wsgate_upgrades_total'), 0);

  await closeSession(session, conn, gw);
  await eventually(
    () => stream.req.socket.destroyed,
    'the backend connection of the streaming request to close once the client left',
    10_000,
  );
});

test('sockjs over xhr-polling: the session runs on plain requests and echoes in order', async (t) => {
  const { backend, gw, clients } = await setUp(t);
  const session = await openSession(gw, 'xhr-polling', clients);
  assert.equal(session.client.transport, 'xhr-polling');
  await eventually(() => backend.connections.length === 1, 'the backend session to open', 10_000);
  const conn = onlyConnection(backend, 'xhr-polling');

  await echoInOrder(session, MESSAGES, () => {
    assert.equal(gw.gateway.registry.tunnelCount, 0, 'no tunnel');
  });

  const polls = exchangesTo(backend, 'xhr');
  // The open frame, then at least one answered poll per echo round, then the poll left waiting.
  assert.ok(polls.length >= 3, `the client polled repeatedly (${polls.length} polls)`);
  assert.ok(
    polls.slice(0, -1).every(({ res }) => res.writableEnded),
    'every poll but the last was answered and ended',
  );
  assert.ok(exchangesTo(backend, 'xhr_send').length >= 1, 'messages went up as xhr_send requests');
  assert.equal(exchangesTo(backend, 'xhr_streaming').length, 0, 'no streaming request');
  assert.equal(backend.upgrades.length, 0, 'no upgrade was attempted');
  assert.equal(await gw.metric('wsgate_upgrades_total'), 0);
  assert.ok((await gw.metric('wsgate_http_requests_total', { route: 'echo', status: '200' })) >= 3);

  await closeSession(session, conn, gw);
});
