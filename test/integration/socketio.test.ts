/**
 * A real Socket.IO server behind the gateway, reached by a real socket.io-client: with the default
 * transports the session starts on HTTP long-polling (plain requests through the HTTP pass) and
 * upgrades to a WebSocket (a tunnel), and acknowledged events flow both ways on it; with polling
 * alone, the whole session runs on long-polling through the gateway. Everything is closed at the
 * end and the gateway's leak check must pass.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type TestContext, test } from 'node:test';
import { type Socket as ServerSocket, Server as SocketIoServer } from 'socket.io';
import { type Socket as ClientSocket, io } from 'socket.io-client';
import { eventually, within } from '../helpers/eventually.ts';
import { startGateway, type TestGateway } from '../helpers/gateway.ts';

interface Backend {
  readonly io: SocketIoServer;
  /** Server-side sockets, in the order they connected. */
  readonly sockets: ServerSocket[];
  /** Plain HTTP requests the backend saw (polling), upgrade requests included. */
  readonly requests: IncomingMessage[];
}

async function startSocketIoBackend(t: TestContext): Promise<{ backend: Backend; url: string }> {
  const server = createServer();
  const requests: IncomingMessage[] = [];
  const ioServer = new SocketIoServer(server);
  // After Socket.IO attached: it takes over the 'request' listeners that exist when it attaches.
  server.prependListener('request', (req: IncomingMessage) => void requests.push(req));
  server.prependListener('upgrade', (req: IncomingMessage) => void requests.push(req));
  const sockets: ServerSocket[] = [];
  ioServer.on('connection', (socket) => {
    sockets.push(socket);
    // Answers every "echo" with an ack that carries the payload back.
    socket.on('echo', (payload: unknown, ack: (reply: unknown) => void) => ack({ echoed: payload }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(
    () =>
      new Promise<void>((resolve) => {
        ioServer.close(() => resolve());
        server.closeAllConnections();
      }),
  );
  const port = (server.address() as AddressInfo).port;
  return { backend: { io: ioServer, sockets, requests }, url: `http://127.0.0.1:${port}` };
}

function gatewayFor(t: TestContext, url: string): Promise<TestGateway> {
  return startGateway(t, {
    routes: { realtime: { path: '/socket.io/', pool: 'realtime' } },
    pools: { realtime: { backends: [url] } },
  });
}

/** Resolves once the client is connected; rejects on a connect error. */
function connected(client: ClientSocket): Promise<void> {
  return within(
    new Promise((resolve, reject) => {
      client.once('connect', () => resolve());
      client.once('connect_error', reject);
    }),
    'the Socket.IO client to connect through the gateway',
    15_000,
  );
}

/** Emits with an ack and resolves with the ack's argument. */
function emitWithAck(client: ClientSocket, event: string, payload: unknown): Promise<unknown> {
  return within(
    new Promise((resolve) => client.emit(event, payload, (reply: unknown) => resolve(reply))),
    `the ack of "${event}"`,
    15_000,
  );
}

/** Acked events both ways: client → server → ack, then server → client → ack. */
async function exchange(client: ClientSocket, server: ServerSocket, label: string): Promise<void> {
  const reply = await emitWithAck(client, 'echo', { label, n: 42, text: 'héllo' });
  assert.deepEqual(reply, { echoed: { label, n: 42, text: 'héllo' } });

  client.once('question', (question: string, ack: (answer: string) => void) => ack(`answer to ${question}`));
  const answer = await within(
    server.timeout(10_000).emitWithAck('question', `${label}?`),
    'the client ack of "question"',
    15_000,
  );
  assert.equal(answer, `answer to ${label}?`);
}

/** Closes the client and waits until the backend sees it gone. */
async function closeClient(client: ClientSocket, backend: Backend): Promise<void> {
  client.close();
  await eventually(() => backend.io.of('/').sockets.size === 0, 'the backend to see the client gone', 10_000);
}

test('socket.io with default transports starts on polling, upgrades to websocket and acks both ways', async (t) => {
  const { backend, url } = await startSocketIoBackend(t);
  const gw = await gatewayFor(t, url);
  const client = io(gw.httpUrl(), { reconnection: false, forceNew: true });
  t.after(() => client.close());
  const engine = client.io.engine;
  const upgraded = within(
    new Promise<string>((resolve) =>
      engine.once('upgrade', (transport: { name: string }) => resolve(transport.name)),
    ),
    'the engine to upgrade its transport',
    15_000,
  );
  await connected(client);
  assert.equal(await upgraded, 'websocket');
  assert.equal(client.io.engine.transport.name, 'websocket');
  const polls = backend.requests.filter((req) => req.url?.includes('transport=polling'));
  assert.ok(polls.length >= 1, 'the session started with long-polling through the gateway');
  const upgrades = backend.requests.filter((req) => req.url?.includes('transport=websocket'));
  assert.equal(upgrades.length, 1);
  assert.equal(upgrades[0]?.headers.upgrade, 'websocket');
  assert.equal(upgrades[0]?.headers['x-forwarded-for'], '127.0.0.1');
  assert.equal(polls[0]?.headers['x-forwarded-for'], '127.0.0.1');
  assert.equal(gw.gateway.registry.tunnelCount, 1, 'the websocket runs as a gateway tunnel');

  const server = backend.sockets[0];
  assert.ok(server);
  assert.equal(backend.sockets.length, 1, 'one session, kept across the upgrade');
  await exchange(client, server, 'websocket');

  assert.equal(await gw.metric('wsgate_upgrades_total', { route: 'realtime', code: 'UPGRADED' }), 1);
  assert.ok((await gw.metric('wsgate_http_requests_total', { route: 'realtime', status: '200' })) >= 1);
  await closeClient(client, backend);
  await eventually(() => gw.gateway.registry.tunnelCount === 0, 'the tunnel to close', 10_000);
});

test('socket.io with polling only runs the whole session over long-polling through the gateway', async (t) => {
  const { backend, url } = await startSocketIoBackend(t);
  const gw = await gatewayFor(t, url);
  const client = io(gw.httpUrl(), { reconnection: false, forceNew: true, transports: ['polling'] });
  t.after(() => client.close());
  await connected(client);
  assert.equal(client.io.engine.transport.name, 'polling');

  const server = backend.sockets[0];
  assert.ok(server);
  await exchange(client, server, 'polling');
  await exchange(client, server, 'polling again');

  assert.equal(client.io.engine.transport.name, 'polling', 'no upgrade was attempted');
  assert.ok(
    backend.requests.every((req) => req.headers.upgrade === undefined),
    'the backend saw no upgrade request',
  );
  assert.equal(await gw.metric('wsgate_upgrades_total'), 0);
  assert.ok((await gw.metric('wsgate_http_requests_total', { route: 'realtime', status: '200' })) >= 3);
  await closeClient(client, backend);
});
