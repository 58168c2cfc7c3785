/**
 * Plain HTTP through a route to its pool: the method, path and query arrive unchanged; request
 * bodies (1 MiB with a length, chunked without one) and responses (SSE, long-polling) stream both
 * ways without being buffered; hop-by-hop headers are dropped in both directions, the client's own
 * Connection/Keep-Alive is the gateway's business, and X-Forwarded-* is replaced (untrusted peer)
 * or appended to (trusted proxy); `Expect: 100-continue` is answered by the gateway. Failures: 404
 * with no route, 502 after a refused connect or an unrelayable status, 504 when a TLS handshake
 * never completes within `connectTimeout`, a response broken off by the backend cuts the client
 * connection. A GET moves on to the next backend after a refused connect, a POST with a body does
 * not; round-robin alternates; `wsgate_http_requests_total` counts each status. The request target
 * reaches the backend verbatim, and one a backend could read differently (backslash, dot segments,
 * fragment, absolute-form, "*") or two Host headers get 400 with the backend never contacted; a
 * backend silent past `responseTimeout` is 504 while a started SSE stream is never cut; X-Real-IP
 * and friends pass from a trusted proxy only; a GET whose reused backend connection is reset is
 * sent again on a new one.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import {
  Agent,
  type ClientRequest,
  type IncomingHttpHeaders,
  type IncomingMessage,
  request,
  type ServerResponse,
} from 'node:http';
import { type AddressInfo, createServer as createNetServer, type Socket } from 'node:net';
import { type TestContext, test } from 'node:test';
import { closedPort, type HttpBackend, startHttpBackend } from '../helpers/backends.ts';
import { MISREADABLE_TARGETS, rawRequest } from '../helpers/clients.ts';
import { eventually, within } from '../helpers/eventually.ts';
import { startGateway, type TestGateway } from '../helpers/gateway.ts';
import { assertElapsedAbout } from '../helpers/timing.ts';

interface Reply {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
}

interface SendOptions {
  readonly method?: string;
  readonly headers?: Record<string, string>;
  readonly body?: Buffer;
}

/** Collects a whole response body. */
function readBody(res: IncomingMessage): Promise<Buffer> {
  return within(
    new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.once('end', () => resolve(Buffer.concat(chunks)));
      res.once('error', reject);
    }),
    'a response body',
    15_000,
  );
}

/** Waits for the response head of `req`. */
function responseOf(req: ClientRequest): Promise<IncomingMessage> {
  return within(
    new Promise((resolve, reject) => {
      req.once('response', resolve);
      req.once('error', reject);
    }),
    'a response head',
    15_000,
  );
}

/** One request on its own connection, the whole response read. */
async function send(url: string, options: SendOptions = {}): Promise<Reply> {
  const req = request(url, { method: options.method ?? 'GET', headers: options.headers, agent: false });
  const response = responseOf(req);
  req.end(options.body);
  const res = await response;
  return { status: res.statusCode ?? 0, headers: res.headers, body: await readBody(res) };
}

/** A POST with `Expect: 100-continue` whose body is sent only after the gateway's 100 Continue. */
async function sendExpectingContinue(url: string, body: Buffer): Promise<Reply & { continued: boolean }> {
  const req = request(url, {
    method: 'POST',
    agent: false,
    headers: { expect: '100-continue', 'content-length': String(body.length) },
  });
  let continued = false;
  req.once('continue', () => {
    continued = true;
    req.end(body);
  });
  const res = await responseOf(req);
  return { status: res.statusCode ?? 0, headers: res.headers, body: await readBody(res), continued };
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** A promise with its resolve function, for a backend that waits until the test says so. */
function signal(): { promise: Promise<void>; release: () => void } {
  let release = (): void => {};
  const promise = new Promise<void>((resolve) => {
    release = resolve;
  });
  return { promise, release };
}

/** A backend that answers with its own name, for telling backends apart. */
function named(t: TestContext, name: string): Promise<HttpBackend> {
  return startHttpBackend(t, (_req, res) => res.end(name));
}

function apiGateway(
  t: TestContext,
  backends: readonly string[],
  extra: Record<string, unknown> = {},
  pool: Record<string, unknown> = {},
): Promise<TestGateway> {
  return startGateway(t, {
    routes: { api: { path: '/api', pool: 'api' } },
    pools: { api: { backends, ...pool } },
    ...extra,
  });
}

function assertGatewayError(reply: Reply, status: number, text: string): void {
  assert.equal(reply.status, status);
  assert.equal(reply.body.toString(), `${text}\n`, 'the body says only the status text');
  assert.equal(reply.headers['content-type'], 'text/plain; charset=utf-8');
  assert.equal(reply.headers['content-length'], String(text.length + 1));
}

test('a GET reaches the backend with its method, path and query unchanged', async (t) => {
  const backend = await startHttpBackend(t, (req, res) => {
    res.setHeader('x-backend-saw', `${req.method} ${req.url}`);
    res.end('listed');
  });
  const gw = await apiGateway(t, [backend.url]);
  const path = '/api/items/%7Bid%7D?q=a%20b&q=c&empty=&flag#ignored';
  const reply = await send(gw.httpUrl(path));
  assert.equal(reply.status, 200);
  assert.equal(reply.body.toString(), 'listed');
  assert.equal(reply.headers['x-backend-saw'], 'GET /api/items/%7Bid%7D?q=a%20b&q=c&empty=&flag');
  assert.equal(backend.requests.length, 1);
  await eventually(
    async () => (await gw.metric('wsgate_http_requests_total', { route: 'api', status: '200' })) === 1,
    'wsgate_http_requests_total{route="api",status="200"} to be 1',
  );
});

test('a 1 MiB POST body streams to the backend and back intact', async (t) => {
  const backend = await startHttpBackend(t, (req, res) => {
    res.writeHead(200, {
      'content-type': 'application/octet-stream',
      'x-request-length': req.headers['content-length'] ?? 'none',
    });
    req.pipe(res);
  });
  const gw = await apiGateway(t, [backend.url]);
  const body = randomBytes(1024 * 1024);
  const reply = await send(gw.httpUrl('/api/upload'), {
    method: 'POST',
    headers: { 'content-type': 'application/octet-stream', 'content-length': String(body.length) },
    body,
  });
  assert.equal(reply.status, 200);
  assert.equal(reply.headers['x-request-length'], '1048576', 'the backend saw the Content-Length');
  assert.equal(reply.body.length, body.length);
  assert.equal(sha256(reply.body), sha256(body));
});

test('a chunked request body is streamed: the backend gets the first chunk before the second is sent', async (t) => {
  const received: Buffer[] = [];
  const backend = await startHttpBackend(t, (req, res) => {
    req.on('data', (chunk: Buffer) => received.push(chunk));
    req.once('end', () => {
      const all = Buffer.concat(received);
      res.end(`${req.headers['transfer-encoding']} ${req.headers['content-length'] ?? 'no-length'} ${all}`);
    });
  });
  const gw = await apiGateway(t, [backend.url]);
  const req = request(gw.httpUrl('/api/stream'), { method: 'PUT', agent: false });
  const response = responseOf(req);
  req.write('first chunk;');
  await eventually(
    () => Buffer.concat(received).toString() === 'first chunk;',
    'the backend to receive the first chunk while the request is still open',
  );
  req.write('second chunk;');
  req.end('last');
  const res = await response;
  assert.equal(res.statusCode, 200);
  assert.equal((await readBody(res)).toString(), 'chunked no-length first chunk;second chunk;last');
});

test('an SSE response is relayed event by event while it stays open', async (t) => {
  const next = signal();
  const backend = await startHttpBackend(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    res.write('id: 1\ndata: first\n\n');
    void next.promise.then(() => res.end('id: 2\ndata: second\n\n'));
  });
  const gw = await apiGateway(t, [backend.url]);
  const req = request(gw.httpUrl('/api/events'), { agent: false, headers: { accept: 'text/event-stream' } });
  const response = responseOf(req);
  req.end();
  const res = await response;
  assert.equal(res.statusCode, 200);
  assert.equal(res.headers['content-type'], 'text/event-stream');
  assert.equal(res.headers['transfer-encoding'], 'chunked');
  const chunks: Buffer[] = [];
  res.on('data', (chunk: Buffer) => chunks.push(chunk));
  const ended = within(
    new Promise<void>((resolve) => res.once('end', resolve)),
    'the end of the event stream',
    15_000,
  );
  await eventually(
    () => Buffer.concat(chunks).toString() === 'id: 1\ndata: first\n\n',
    'the first event to arrive through the gateway',
  );
  assert.equal(res.complete, false, 'the response is still open when the first event arrives');
  next.release();
  await ended;
  assert.equal(Buffer.concat(chunks).toString(), 'id: 1\ndata: first\n\nid: 2\ndata: second\n\n');
});

test('a backend that dies mid-response cuts the client connection instead of leaving it open', async (t) => {
  const cut = signal();
  const backend = await startHttpBackend(t, (req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write('data: partial\n\n');
    void cut.promise.then(() => req.socket.destroy());
  });
  const gw = await apiGateway(t, [backend.url]);
  const req = request(gw.httpUrl('/api/events'), { agent: false });
  req.on('error', () => {});
  const response = responseOf(req);
  req.end();
  const res = await response;
  res.on('error', () => {});
  const chunks: Buffer[] = [];
  res.on('data', (chunk: Buffer) => chunks.push(chunk));
  const closed = within(
    new Promise<void>((resolve) => res.once('close', resolve)),
    'the client response to be cut',
    15_000,
  );
  await eventually(() => Buffer.concat(chunks).toString() === 'data: partial\n\n', 'the first event');
  cut.release();
  await closed;
  assert.equal(res.complete, false, 'the client sees an incomplete response, not a clean end');
  await eventually(
    () => gw.logs.some((record) => record.code === 'HTTP_UPSTREAM_ABORTED'),
    'the HTTP_UPSTREAM_ABORTED log line',
  );
});

test('a long-poll request is held open until the backend answers', async (t) => {
  const answer = signal();
  const backend = await startHttpBackend(t, (_req, res) => {
    void answer.promise.then(() => res.end('{"events":["late"]}'));
  });
  const gw = await apiGateway(t, [backend.url]);
  const req = request(gw.httpUrl('/api/poll?cursor=7'), { agent: false });
  let answered = false;
  const response = responseOf(req).then((res) => {
    answered = true;
    return res;
  });
  req.end();
  await eventually(() => backend.requests.length === 1, 'the poll to reach the backend');
  assert.equal(answered, false, 'nothing is answered before the backend answers');
  assert.equal(req.socket?.destroyed, false, 'the client connection is still open');
  answer.release();
  const res = await response;
  assert.equal(res.statusCode, 200);
  assert.equal((await readBody(res)).toString(), '{"events":["late"]}');
});

test('Expect: 100-continue is answered by the gateway and not forwarded', async (t) => {
  const backend = await startHttpBackend(t, (req, res) => {
    res.setHeader('x-expect-seen', req.headers.expect ?? 'none');
    req.pipe(res);
  });
  const gw = await apiGateway(t, [backend.url]);
  const reply = await sendExpectingContinue(gw.httpUrl('/api/upload'), Buffer.from('after continue'));
  assert.equal(reply.continued, true, 'the client got 100 Continue');
  assert.equal(reply.status, 200);
  assert.equal(reply.headers['x-expect-seen'], 'none');
  assert.equal(reply.body.toString(), 'after continue');
});

test('hop-by-hop request headers are dropped and X-Forwarded-* replaced for an untrusted peer', async (t) => {
  const backend = await startHttpBackend(t, (_req, res) => res.end('ok'));
  const gw = await apiGateway(t, [backend.url]);
  const reply = await send(gw.httpUrl('/api/h'), {
    headers: {
      host: 'app.example.com',
      connection: 'X-Secret, keep-alive',
      'x-secret': 'for the first hop only',
      'keep-alive': 'timeout=99',
      te: 'trailers',
      'proxy-authorization': 'Basic Zm9vOmJhcg==',
      'proxy-connection': 'keep-alive',
      forwarded: 'for=198.51.100.9',
      'x-forwarded-for': '198.51.100.9',
      'x-forwarded-proto': 'https',
      'x-forwarded-host': 'forged.example.com',
      'x-end-to-end': 'kept',
    },
  });
  assert.equal(reply.status, 200);
  const seen = backend.requests[0]?.headers;
  assert.ok(seen);
  for (const name of [
    'x-secret',
    'keep-alive',
    'te',
    'proxy-authorization',
    'proxy-connection',
    'forwarded',
  ]) {
    assert.equal(seen[name], undefined, `${name} is not forwarded`);
  }
  assert.equal(seen.connection, 'keep-alive', "the gateway's own connection header, nothing listed");
  assert.equal(seen['x-end-to-end'], 'kept');
  assert.equal(seen.host, 'app.example.com', 'the Host is preserved by default');
  assert.equal(seen['x-forwarded-for'], '127.0.0.1');
  assert.equal(seen['x-forwarded-proto'], 'http');
  assert.equal(seen['x-forwarded-host'], 'app.example.com');
});

test('X-Forwarded-For is appended to from a trusted proxy, which keeps its proto and host', async (t) => {
  const backend = await startHttpBackend(t, (_req, res) => res.end('ok'));
  const gw = await apiGateway(t, [backend.url], { forwarding: { trustedProxies: ['127.0.0.1'] } });
  const reply = await send(gw.httpUrl('/api/h'), {
    headers: {
      host: 'internal:8080',
      'x-forwarded-for': '203.0.113.7, 10.0.0.2',
      'x-forwarded-proto': 'https',
      'x-forwarded-host': 'public.example.com',
    },
  });
  assert.equal(reply.status, 200);
  const seen = backend.requests[0]?.headers;
  assert.ok(seen);
  assert.equal(seen['x-forwarded-for'], '203.0.113.7, 10.0.0.2, 127.0.0.1');
  assert.equal(seen['x-forwarded-proto'], 'https');
  assert.equal(seen['x-forwarded-host'], 'public.example.com');
});

test("hop-by-hop headers of the backend's response are not relayed", async (t) => {
  const backend = await startHttpBackend(t, (_req, res) => {
    res.writeHead(200, {
      'content-type': 'text/plain',
      'keep-alive': 'timeout=99, max=7',
      connection: 'X-Foo',
      'x-foo': 'for the backend hop only',
      'proxy-connection': 'keep-alive',
      'x-end-to-end': 'kept',
      'content-length': '4',
    });
    res.end('body');
  });
  const gw = await apiGateway(t, [backend.url]);
  const response = await rawRequest(gw.port(), {
    path: '/api/r',
    headers: { Host: '127.0.0.1', Connection: 'close' },
  });
  t.after(() => response.socket.destroy());
  assert.equal(response.status, 200);
  assert.equal(response.headers['x-foo'], undefined);
  assert.equal(response.headers['keep-alive'], undefined);
  assert.equal(response.headers['proxy-connection'], undefined);
  assert.equal(response.headers['x-end-to-end'], 'kept');
  assert.equal(response.headers['content-length'], '4');
  assert.equal(response.headers.connection, 'close', "the client's Connection: close is honoured");
  const closed = within(
    new Promise<void>((resolve) => response.socket.once('close', resolve)),
    'the gateway to close the connection after Connection: close',
  );
  response.socket.resume();
  await closed;
});

test('a keep-alive client connection carries several requests', async (t) => {
  const backend = await startHttpBackend(t, (req, res) => res.end(`seen ${req.url}`));
  const gw = await apiGateway(t, [backend.url]);
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  t.after(() => agent.destroy());
  const get = async (path: string): Promise<{ res: IncomingMessage; reused: boolean; body: string }> => {
    const req = request(gw.httpUrl(path), { agent });
    const response = responseOf(req);
    req.end();
    const res = await response;
    return { res, reused: req.reusedSocket, body: (await readBody(res)).toString() };
  };
  const first = await get('/api/1');
  assert.equal(first.res.headers.connection, 'keep-alive');
  assert.equal(
    first.res.headers['keep-alive'],
    'timeout=5',
    "the gateway's own keep-alive, not the backend's",
  );
  assert.equal(first.body, 'seen /api/1');
  const second = await get('/api/2');
  assert.equal(second.body, 'seen /api/2');
  assert.equal(second.reused, true, 'the second request went over the same client connection');
});

test('a request no route matches gets 404', async (t) => {
  const backend = await startHttpBackend(t, (_req, res) => res.end('never'));
  const gw = await apiGateway(t, [backend.url]);
  const reply = await send(gw.httpUrl('/other'));
  assertGatewayError(reply, 404, 'Not Found');
  assert.equal(backend.connections(), 0, 'backend never contacted');
  await eventually(
    async () => (await gw.metric('wsgate_http_requests_total', { route: '', status: '404' })) === 1,
    'wsgate_http_requests_total{route="",status="404"} to be 1',
  );
});

test('502 when the only backend refuses the connection', async (t) => {
  const port = await closedPort();
  const gw = await apiGateway(t, [`http://127.0.0.1:${port}`]);
  const reply = await send(gw.httpUrl('/api/x'));
  assertGatewayError(reply, 502, 'Bad Gateway');
  assert.equal(
    await gw.metric('wsgate_upstream_connect_failures_total', { pool: 'api', code: 'HTTP_UPSTREAM_FAILED' }),
    1,
  );
  assert.ok(
    gw.logs.some((record) => record.code === 'HTTP_UPSTREAM_FAILED' && record.err === 'ECONNREFUSED'),
  );
  await eventually(
    async () => (await gw.metric('wsgate_http_requests_total', { route: 'api', status: '502' })) === 1,
    'wsgate_http_requests_total{route="api",status="502"} to be 1',
  );
});

test('a backend answering with a status Node cannot relay (099) gets 502 and the gateway keeps serving', async (t) => {
  const odd = createNetServer((socket) => {
    socket.on('error', () => {});
    socket.once('data', () => socket.end('HTTP/1.1 099 Odd\r\nContent-Length: 2\r\n\r\nno'));
  });
  await new Promise<void>((resolve) => odd.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => odd.close(() => resolve())));
  const gw = await apiGateway(t, [`http://127.0.0.1:${(odd.address() as AddressInfo).port}`]);
  const reply = await send(gw.httpUrl('/api/odd'));
  assertGatewayError(reply, 502, 'Bad Gateway');
  const again = await send(gw.httpUrl('/api/odd'));
  assert.equal(again.status, 502, 'the gateway is still up');
  assert.ok(gw.logs.some((record) => record.code === 'HTTP_UPSTREAM_BAD_RESPONSE'));
});

test('a GET moves on to the next backend when the first refuses', async (t) => {
  const refused = `http://127.0.0.1:${await closedPort()}`;
  const backend = await named(t, 'second');
  const gw = await apiGateway(t, [refused, backend.url]);
  const reply = await send(gw.httpUrl('/api/retry'));
  assert.equal(reply.status, 200);
  assert.equal(reply.body.toString(), 'second');
  assert.equal(backend.requests.length, 1);
  assert.equal(
    await gw.metric('wsgate_upstream_connect_failures_total', {
      backend: refused,
      code: 'HTTP_UPSTREAM_FAILED',
    }),
    1,
  );
});

test('a POST with a body is not retried: 502, and the next backend is never contacted', async (t) => {
  const refused = `http://127.0.0.1:${await closedPort()}`;
  const backend = await named(t, 'second');
  const gw = await apiGateway(t, [refused, backend.url]);
  const reply = await send(gw.httpUrl('/api/submit'), {
    method: 'POST',
    headers: { 'content-type': 'text/plain', 'content-length': '7' },
    body: Buffer.from('payload'),
  });
  assertGatewayError(reply, 502, 'Bad Gateway');
  assert.equal(backend.connections(), 0, 'the second backend was never contacted');
});

test('504 when an https backend accepts TCP but never completes the TLS handshake', async (t) => {
  const sockets = new Set<Socket>();
  const silent = createNetServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    socket.once('close', () => sockets.delete(socket));
    socket.resume(); // reads the ClientHello and never answers it
  });
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  t.after(
    () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        silent.close(() => resolve());
      }),
  );
  const port = (silent.address() as AddressInfo).port;
  const gw = await apiGateway(t, [`https://127.0.0.1:${port}`], {}, { connectTimeout: '300ms', retries: 0 });
  const accepted = within(
    new Promise<void>((resolve) => silent.once('connection', () => resolve())),
    'the silent backend to accept the TCP connection',
  );
  // Taken before the request is sent, so never later than the backend connect that starts the timer.
  const startedAt = performance.now();
  const reply = await send(gw.httpUrl('/api/slow'));
  assertElapsedAbout(startedAt, 300, 'the 504 for a TLS backend that never completes its handshake');
  await accepted;
  assertGatewayError(reply, 504, 'Gateway Timeout');
  assert.equal(
    await gw.metric('wsgate_upstream_connect_failures_total', { pool: 'api', code: 'HTTP_UPSTREAM_TIMEOUT' }),
    1,
  );
  await eventually(() => sockets.size === 0, 'the gateway to drop the half-open TLS connection');
  // The same bound holds for a request that went through `Expect: 100-continue`.
  const expectingAt = performance.now();
  const expecting = await sendExpectingContinue(gw.httpUrl('/api/upload'), Buffer.from('body'));
  assertElapsedAbout(expectingAt, 300, 'the 504 for a request that went through 100-continue');
  assertGatewayError(expecting, 504, 'Gateway Timeout');
  await eventually(
    async () => (await gw.metric('wsgate_http_requests_total', { route: 'api', status: '504' })) === 2,
    'wsgate_http_requests_total{route="api",status="504"} to be 2',
  );
});

test('two backends take plain requests in turn', async (t) => {
  const a = await named(t, 'a');
  const b = await named(t, 'b');
  const gw = await apiGateway(t, [a.url, b.url]);
  const answers: string[] = [];
  for (let i = 0; i < 6; i++) answers.push((await send(gw.httpUrl(`/api/${i}`))).body.toString());
  assert.deepEqual(answers, ['a', 'b', 'a', 'b', 'a', 'b']);
  assert.equal(a.requests.length, 3);
  assert.equal(b.requests.length, 3);
});

test('wsgate_http_requests_total counts by route and status', async (t) => {
  const backend = await startHttpBackend(t, (req: IncomingMessage, res: ServerResponse) => {
    res.statusCode = req.url === '/api/missing' ? 404 : 200;
    res.end();
  });
  const gw = await apiGateway(t, [backend.url]);
  const statuses: number[] = [];
  for (const path of ['/api/a', '/api/b', '/api/missing', '/nowhere']) {
    statuses.push((await send(gw.httpUrl(path))).status);
  }
  assert.deepEqual(statuses, [200, 200, 404, 404]);
  const counted = async (): Promise<string> =>
    [
      await gw.metric('wsgate_http_requests_total', { route: 'api', status: '200' }),
      await gw.metric('wsgate_http_requests_total', { route: 'api', status: '404' }),
      await gw.metric('wsgate_http_requests_total', { route: '', status: '404' }),
      await gw.metric('wsgate_http_requests_total'),
    ].join(' ');
  await eventually(async () => (await counted()) === '2 1 1 4', 'the request counters to settle');
});

/**
 * A raw request on its own connection (`Connection: close`), read until the gateway closes it; a
 * failure to get a whole answer names the target.
 */
async function sendRaw(
  port: number,
  path: string,
  headers: Record<string, string> = { Host: '127.0.0.1' },
): Promise<{ status: number; body: string }> {
  try {
    const response = await rawRequest(port, { path, headers: { ...headers, Connection: 'close' } });
    const chunks = [response.rest];
    response.socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    await within(
      new Promise<void>((resolve) => response.socket.once('close', resolve)),
      'the gateway to close the connection',
    );
    return { status: response.status, body: Buffer.concat(chunks).toString() };
  } catch (error) {
    throw new Error(`${path}: no complete answer`, { cause: error });
  }
}

test('a request target a backend could read differently gets 400 before any backend is contacted', async (t) => {
  const backend = await startHttpBackend(t, (req, res) => res.end(`seen ${req.url}`));
  const gw = await startGateway(t, {
    routes: { all: { path: '/', pool: 'api' } },
    pools: { api: { backends: [backend.url] } },
  });
  for (const target of MISREADABLE_TARGETS) {
    const reply = await sendRaw(gw.port(), target);
    assert.equal(reply.status, 400, target);
    assert.equal(reply.body, 'Bad Request\n', target);
  }
  assert.equal(backend.connections(), 0, 'backend never contacted');
  assert.equal(
    gw.logs.filter((record) => record.code === 'REQUEST_MALFORMED').length,
    MISREADABLE_TARGETS.length,
  );
  // The gateway is still up and serving (a throw in the request handler would have ended it).
  const after = await sendRaw(gw.port(), '/still/here');
  assert.equal(after.status, 200);
  assert.equal(after.body, 'seen /still/here');
});

test('a dot-segment path cannot reach a path outside the route it matched', async (t) => {
  const backend = await startHttpBackend(t, (req, res) => res.end(`seen ${req.url}`));
  const gw = await startGateway(t, {
    routes: { public: { path: '/public', pool: 'api' } },
    pools: { api: { backends: [backend.url] } },
  });
  for (const target of ['/public/../secret', '/public/%2E%2E/secret', '/public\\..\\secret']) {
    assert.equal((await sendRaw(gw.port(), target)).status, 400, target);
  }
  assert.equal(backend.connections(), 0, 'backend never contacted');
});

test('the request target reaches the backend exactly as sent: encoded slashes, dotted names, query', async (t) => {
  const backend = await startHttpBackend(t, (req, res) => res.end(`seen ${req.url}`));
  const gw = await apiGateway(t, [backend.url]);
  const targets = [
    '/api/a%2Fb/c..d/a.b/%2e%2ex',
    '/api//double//slash',
    '/api/x?next=/../admin&p=%2e%2e&q=a?b',
    '/api/%7Bid%7D;matrix=1',
    '/api/{id}/`raw`^', // characters a URL parser would percent-encode
  ];
  for (const target of targets) {
    const reply = await sendRaw(gw.port(), target);
    assert.equal(reply.status, 200, target);
    assert.equal(reply.body, `seen ${target}`, target);
  }
  assert.deepEqual(
    backend.requests.map((req) => req.url),
    targets,
  );
});

test('a request with two Host headers gets 400 and never reaches the backend', async (t) => {
  const backend = await startHttpBackend(t, (_req, res) => res.end('never'));
  const gw = await apiGateway(t, [backend.url]);
  const reply = await sendRaw(gw.port(), '/api/x', { Host: 'a.example', host: 'b.example' });
  assert.equal(reply.status, 400);
  assert.equal(reply.body, 'Bad Request\n');
  assert.equal(backend.connections(), 0, 'backend never contacted');
  assert.ok(gw.logs.some((record) => record.code === 'REQUEST_MALFORMED'));
  assert.equal((await sendRaw(gw.port(), '/api/x', { Host: 'a.example' })).status, 200);
});

test('504 when the backend accepts a request and never answers within responseTimeout', async (t) => {
  const backend = await startHttpBackend(t, () => {});
  const gw = await apiGateway(t, [backend.url], {}, { responseTimeout: '300ms' });
  // Taken before the request is sent, so never later than the moment the timer starts.
  const startedAt = performance.now();
  const reply = await send(gw.httpUrl('/api/hang'));
  assertElapsedAbout(startedAt, 300, 'the 504 for a backend that never answers');
  assertGatewayError(reply, 504, 'Gateway Timeout');
  assert.equal(backend.requests.length, 1, 'the request reached the backend, and was not sent again');
  assert.ok(
    gw.logs.some((record) => record.code === 'HTTP_UPSTREAM_TIMEOUT' && record.err === 'ERESPONSE_TIMEOUT'),
  );
  await eventually(
    () => backend.requests[0]?.socket.destroyed === true,
    'the gateway to drop the backend connection of the timed-out request',
  );
});

test('an SSE stream that started is not cut by responseTimeout while it stays silent', async (t) => {
  const next = signal();
  const backend = await startHttpBackend(t, (req, res) => {
    if (req.url === '/api/hang') return; // never answers: times out after responseTimeout
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write('data: first\n\n');
    void next.promise.then(() => res.end('data: second\n\n'));
  });
  const gw = await apiGateway(t, [backend.url], {}, { responseTimeout: '300ms' });
  const req = request(gw.httpUrl('/api/events'), { agent: false });
  const response = responseOf(req);
  req.end();
  const res = await response;
  assert.equal(res.statusCode, 200);
  const chunks: Buffer[] = [];
  res.on('data', (chunk: Buffer) => chunks.push(chunk));
  const ended = within(new Promise<void>((resolve) => res.once('end', resolve)), 'the end of the stream');
  await eventually(() => Buffer.concat(chunks).toString() === 'data: first\n\n', 'the first event');
  // A request sent after the stream started times out at responseTimeout: by then the stream's own
  // timer, started earlier, would have fired too.
  const hangAt = performance.now();
  const hang = await send(gw.httpUrl('/api/hang'));
  assertElapsedAbout(hangAt, 300, 'the 504 for a request sent after the stream started');
  assertGatewayError(hang, 504, 'Gateway Timeout');
  assert.equal(res.complete, false, 'the stream is still open after the timeout window');
  assert.equal(res.destroyed, false, 'the stream was not cut');
  next.release();
  await ended;
  assert.equal(Buffer.concat(chunks).toString(), 'data: first\n\ndata: second\n\n');
});

const PROXY_SET_HEADERS = {
  'x-real-ip': '6.6.6.6',
  'x-forwarded-port': '8443',
  'x-forwarded-prefix': '/admin',
  'x-forwarded-server': 'edge-1',
};

test('X-Real-IP, X-Forwarded-Port, -Prefix and -Server from an untrusted peer do not reach the backend', async (t) => {
  const backend = await startHttpBackend(t, (_req, res) => res.end('ok'));
  const gw = await apiGateway(t, [backend.url]);
  const reply = await send(gw.httpUrl('/api/h'), { headers: { ...PROXY_SET_HEADERS, 'x-kept': 'yes' } });
  assert.equal(reply.status, 200);
  const seen = backend.requests[0]?.headers;
  assert.ok(seen);
  for (const name of Object.keys(PROXY_SET_HEADERS)) assert.equal(seen[name], undefined, `${name} dropped`);
  assert.equal(seen['x-kept'], 'yes');
  assert.equal(seen['x-forwarded-for'], '127.0.0.1');
});

test('X-Real-IP, X-Forwarded-Port, -Prefix and -Server from a trusted proxy reach the backend as sent', async (t) => {
  const backend = await startHttpBackend(t, (_req, res) => res.end('ok'));
  const gw = await apiGateway(t, [backend.url], { forwarding: { trustedProxies: ['127.0.0.1'] } });
  const reply = await send(gw.httpUrl('/api/h'), { headers: PROXY_SET_HEADERS });
  assert.equal(reply.status, 200);
  const seen = backend.requests[0]?.headers;
  assert.ok(seen);
  for (const [name, value] of Object.entries(PROXY_SET_HEADERS)) assert.equal(seen[name], value, name);
});

test('a GET on a kept-alive backend connection that the backend closes as the request arrives is sent again on a new one', async (t) => {
  // Answers the first request on each connection with keep-alive; a second request on the same
  // connection is met with a reset as soon as its first bytes arrive.
  let connections = 0;
  let resets = 0;
  const sockets = new Set<Socket>();
  const backend = createNetServer((socket) => {
    connections++;
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let served = false;
    socket.on('data', () => {
      if (served) {
        resets++;
        socket.resetAndDestroy();
        return;
      }
      served = true;
      socket.write(
        `HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: 12\r\n\r\nconnection ${connections}`,
      );
    });
  });
  await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
  t.after(
    () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        backend.close(() => resolve());
      }),
  );
  const gw = await apiGateway(t, [`http://127.0.0.1:${(backend.address() as AddressInfo).port}`]);
  const first = await send(gw.httpUrl('/api/1'));
  assert.equal(first.status, 200);
  assert.equal(first.body.toString(), 'connection 1');
  const second = await send(gw.httpUrl('/api/2'));
  assert.equal(resets, 1, 'the kept-alive connection was reused and reset');
  assert.equal(second.status, 200);
  assert.equal(second.body.toString(), 'connection 2', 'served on a new connection');
});
