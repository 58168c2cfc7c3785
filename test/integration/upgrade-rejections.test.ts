/**
 * Handshakes the gateway refuses by itself, before any backend is contacted: a method other than
 * GET (405 with `Allow: GET`), malformed requests (400), unsupported versions (426 with
 * `Sec-WebSocket-Version: 13`), requests no route matches (404, with host wildcards and
 * longest-prefix selection checked on the matching side), and a WebSocket request that lacks
 * `Connection: Upgrade` and so reaches the plain HTTP handler (400), and request targets or Host
 * headers a backend could read differently from the router (400). Each case asserts the exact
 * status, headers and body (the status text only), that the backend saw no connection at all, and
 * the `wsgate_upgrades_total` code.
 */
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { type TestContext, test } from 'node:test';
import { type EchoBackend, startEchoBackend } from '../helpers/backends.ts';
import {
  handshakeHeaders,
  MISREADABLE_TARGETS,
  nextMessage,
  openClient,
  rawRequest,
} from '../helpers/clients.ts';
import { within } from '../helpers/eventually.ts';
import { startGateway, type TestGateway } from '../helpers/gateway.ts';

interface FullResponse {
  readonly status: number;
  readonly statusLine: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
}

/** Reads what is left on `socket` until the gateway closes it. */
function readToClose(socket: Socket, first: Buffer): Promise<string> {
  const chunks = [first];
  return within(
    new Promise((resolve) => {
      socket.on('data', (chunk: Buffer) => chunks.push(chunk));
      socket.once('close', () => resolve(Buffer.concat(chunks).toString('utf8')));
      socket.resume();
    }),
    'the gateway to close the connection',
  );
}

/**
 * Sends a raw request and returns the whole response; the gateway must close the connection.
 * `what` names the request if no complete answer comes.
 */
async function send(
  port: number,
  options: Parameters<typeof rawRequest>[1],
  what = 'the request',
): Promise<FullResponse> {
  try {
    const response = await rawRequest(port, options);
    const body = await readToClose(response.socket, response.rest);
    return { status: response.status, statusLine: response.statusLine, headers: response.headers, body };
  } catch (error) {
    throw new Error(`${what}: no complete answer`, { cause: error });
  }
}

async function echoGateway(t: TestContext): Promise<{ backend: EchoBackend; gw: TestGateway }> {
  const backend = await startEchoBackend(t);
  const gw = await startGateway(t, {
    routes: { echo: { pool: 'echo' } },
    pools: { echo: { backends: [backend.url] } },
  });
  return { backend, gw };
}

/** Asserts a gateway error answer; `what` names the request in every failure message. */
function assertPlainError(response: FullResponse, status: number, text: string, what = 'the request'): void {
  assert.equal(response.statusLine, `HTTP/1.1 ${status} ${text}`, `${what}: status line`);
  assert.equal(response.body, `${text}\n`, `${what}: the body says only the status text`);
  assert.equal(response.headers['content-length'], String(text.length + 1), `${what}: Content-Length`);
  assert.equal(response.headers['content-type'], 'text/plain; charset=utf-8', `${what}: Content-Type`);
  assert.equal(response.headers.connection, 'close', `${what}: Connection`);
}

function without(headers: Record<string, string>, name: string): Record<string, string> {
  const copy = { ...headers };
  delete copy[name];
  return copy;
}

test('a POST carrying upgrade headers gets 405 with Allow: GET', async (t) => {
  const { backend, gw } = await echoGateway(t);
  const response = await send(gw.port(), { method: 'POST', path: '/chat', headers: handshakeHeaders() });
  assertPlainError(response, 405, 'Method Not Allowed');
  assert.equal(response.headers.allow, 'GET');
  assert.equal(backend.connections(), 0, 'backend never contacted');
  assert.equal(await gw.metric('wsgate_upgrades_total', { code: 'HANDSHAKE_METHOD_NOT_ALLOWED' }), 1);
  assert.equal(await gw.metric('wsgate_upgrades_total', { code: 'UPGRADED' }), 0);
});

test('malformed handshakes get 400 and never reach the backend', async (t) => {
  const { backend, gw } = await echoGateway(t);
  const valid = handshakeHeaders();
  const cases: [string, Parameters<typeof rawRequest>[1]][] = [
    ['missing Sec-WebSocket-Key', { headers: without(valid, 'Sec-WebSocket-Key') }],
    ['Sec-WebSocket-Key of 8 bytes', { headers: { ...valid, 'Sec-WebSocket-Key': 'AAAAAAAAAAA=' } }],
    ['Sec-WebSocket-Key that is not base64', { headers: { ...valid, 'Sec-WebSocket-Key': 'not a key!' } }],
    ['Upgrade: h2c', { headers: { ...valid, Upgrade: 'h2c' } }],
    ['HTTP/1.0', { headers: valid, version: '1.0' }],
    ['missing Host', { headers: without(valid, 'Host') }],
  ];
  for (const [what, options] of cases) {
    const response = await send(gw.port(), options, what);
    assertPlainError(response, 400, 'Bad Request', what);
    assert.equal(response.headers['sec-websocket-accept'], undefined, `${what}: no Sec-WebSocket-Accept`);
  }
  assert.equal(backend.connections(), 0, 'backend never contacted');
  assert.equal(await gw.metric('wsgate_upgrades_total', { code: 'HANDSHAKE_MALFORMED' }), cases.length);
  assert.equal(
    await gw.metric('wsgate_upgrades_total', { code: 'HANDSHAKE_MALFORMED', route: '' }),
    cases.length,
  );
});

test('an unsupported or missing Sec-WebSocket-Version gets 426 naming version 13', async (t) => {
  const { backend, gw } = await echoGateway(t);
  const valid = handshakeHeaders();
  const cases: [string, Record<string, string>][] = [
    ['Sec-WebSocket-Version: 8', { ...valid, 'Sec-WebSocket-Version': '8' }],
    ['no Sec-WebSocket-Version', without(valid, 'Sec-WebSocket-Version')],
  ];
  for (const [what, headers] of cases) {
    const response = await send(gw.port(), { headers }, what);
    assertPlainError(response, 426, 'Upgrade Required', what);
    assert.equal(response.headers['sec-websocket-version'], '13', `${what}: Sec-WebSocket-Version names 13`);
  }
  assert.equal(backend.connections(), 0, 'backend never contacted');
  assert.equal(await gw.metric('wsgate_upgrades_total', { code: 'HANDSHAKE_VERSION_UNSUPPORTED' }), 2);
});

test('no matching route is 404; host wildcards and the longest prefix pick the backend', async (t) => {
  const chat = await startEchoBackend(t, {
    onConnection: (socket) => socket.on('message', () => socket.send('chat')),
  });
  const live = await startEchoBackend(t, {
    onConnection: (socket) => socket.on('message', () => socket.send('live')),
  });
  const gw = await startGateway(t, {
    routes: {
      chat: { hosts: ['chat.example.com'], path: '/chat', pool: 'chat' },
      chatLive: { hosts: ['chat.example.com'], path: '/chat/live', pool: 'live' },
      api: { hosts: ['*.example.com'], path: '/api', pool: 'live' },
    },
    pools: { chat: { backends: [chat.url] }, live: { backends: [live.url] } },
  });

  const misses: [string, string][] = [
    ['chat.example.com', '/other'], // known host, no path
    ['other.org', '/chat'], // known path, no host
    ['example.com', '/api'], // a wildcard needs a subdomain
    ['eu.example.com', '/chat'], // wildcard host, path of another route
  ];
  for (const [host, path] of misses) {
    const response = await send(gw.port(), { path, headers: handshakeHeaders(host) }, `${host}${path}`);
    assertPlainError(response, 404, 'Not Found', `${host}${path}`);
  }
  assert.equal(chat.connections() + live.connections(), 0, 'no backend contacted for a 404');
  assert.equal(await gw.metric('wsgate_upgrades_total', { code: 'ROUTE_NOT_FOUND' }), misses.length);

  const hits: [string, string, string, string][] = [
    ['chat.example.com', '/chat/room?x=1', 'chat', 'chat'],
    ['chat.example.com:8080', '/chat/live/1', 'live', 'chatLive'], // longest prefix wins
    ['eu.west.example.com', '/api/v1', 'live', 'api'], // wildcard host
  ];
  for (const [host, path, expected, route] of hits) {
    const ws = await openClient(gw.wsUrl(path), undefined, { headers: { Host: host } }).catch(
      (error: unknown) => {
        throw new Error(`${host}${path} did not upgrade`, { cause: error });
      },
    );
    t.after(() => ws.terminate());
    const reply = nextMessage(ws);
    ws.send('who');
    assert.equal((await reply).data.toString(), expected, `${host}${path} served by ${expected}`);
    assert.equal(
      await gw.metric('wsgate_upgrades_total', { code: 'UPGRADED', route }),
      1,
      `${host}${path} counted as UPGRADED on route ${route}`,
    );
    ws.close();
  }
  assert.deepEqual(
    chat.upgrades.map((req) => [req.headers.host, req.url]),
    [['chat.example.com', '/chat/room?x=1']],
  );
  assert.deepEqual(
    live.upgrades.map((req) => [req.headers.host, req.url]),
    [
      ['chat.example.com:8080', '/chat/live/1'],
      ['eu.west.example.com', '/api/v1'],
    ],
  );
});

test('a WebSocket request without Connection: Upgrade reaches the HTTP handler and gets 400', async (t) => {
  const { backend, gw } = await echoGateway(t);
  const headers = { ...without(handshakeHeaders(), 'Connection'), Connection: 'close' };
  const response = await send(gw.port(), { path: '/chat', headers });
  assertPlainError(response, 400, 'Bad Request');
  assert.equal(backend.connections(), 0, 'backend never contacted');
  assert.equal(await gw.metric('wsgate_http_requests_total', { status: '400' }), 1);
  assert.equal(await gw.metric('wsgate_upgrades_total'), 0, 'not counted as an upgrade');
});

test('an upgrade whose target a backend could read differently gets 400 before any backend is contacted', async (t) => {
  const { backend, gw } = await echoGateway(t);
  for (const path of MISREADABLE_TARGETS) {
    const response = await send(gw.port(), { path, headers: handshakeHeaders() }, `target ${path}`);
    assertPlainError(response, 400, 'Bad Request', `target ${path}`);
  }
  assert.equal(backend.connections(), 0, 'backend never contacted');
  assert.equal(
    await gw.metric('wsgate_upgrades_total', { code: 'REQUEST_MALFORMED' }),
    MISREADABLE_TARGETS.length,
  );
  // The gateway is still up and upgrading.
  const ws = await openClient(gw.wsUrl('/after'));
  t.after(() => ws.terminate());
  const reply = nextMessage(ws);
  ws.send('still here');
  assert.equal((await reply).data.toString(), 'still here');
  ws.close();
});

test('an upgrade with two Host headers gets 400 and never reaches the backend', async (t) => {
  const { backend, gw } = await echoGateway(t);
  const response = await send(gw.port(), {
    path: '/chat',
    headers: { ...handshakeHeaders('a.example'), host: 'b.example' },
  });
  assertPlainError(response, 400, 'Bad Request');
  assert.equal(backend.connections(), 0, 'backend never contacted');
  assert.equal(await gw.metric('wsgate_upgrades_total', { code: 'REQUEST_MALFORMED' }), 1);
});

test('an upgrade path with an encoded slash and dots inside segment names reaches the backend as sent', async (t) => {
  const { backend, gw } = await echoGateway(t);
  const path = '/a.b/c..d/x%2Fy/%2e%2ex?next=/../admin&p=%2e%2e';
  const ws = await openClient(gw.wsUrl(path));
  t.after(() => ws.terminate());
  assert.deepEqual(
    backend.upgrades.map((req) => req.url),
    [path],
  );
  ws.close();
});
