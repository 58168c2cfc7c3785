/**
 * The backend's answer to an upgrade as the gateway reads it on the socket: a 101 after interim
 * 1xx answers opens the tunnel, a frame in the same packet as the 101 reaches the client, and
 * every malformed or lenient answer (bare LF, obs-fold, an oversized head, garbage, a 101 that is
 * not a WebSocket one, ambiguous framing) is 502 UPSTREAM_BAD_RESPONSE without waiting for the
 * handshake timeout. A 101 that arrives a byte at a time still opens the tunnel. A 4xx body is
 * relayed by its framing (length, chunked, close), capped at 64 KiB; one the backend cuts short,
 * sends malformed or pads with endless trailers ends the client's connection with a reset. A fault
 * between the 101 and the tunnel closes the backend connection instead of leaving it paused.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { type AddressInfo, createServer, type Socket } from 'node:net';
import { type TestContext, test } from 'node:test';
import { CellHistogram } from '../../src/observability/histogram-cells.ts';
import { handshakeHeaders, nextMessage, openClient, rawRequest } from '../helpers/clients.ts';
import { within } from '../helpers/eventually.ts';
import { startGateway, type TestGateway } from '../helpers/gateway.ts';

/** Answers every upgrade request with `answer(key)` once its head has arrived; `after` runs then. */
async function startScriptedBackend(
  t: TestContext,
  answer: (key: string) => Buffer | string,
  after: (socket: Socket) => void = () => {},
): Promise<string> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    let head = '';
    const onData = (chunk: Buffer): void => {
      head += chunk.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      socket.off('data', onData);
      const key = /sec-websocket-key: *(\S+)/i.exec(head)?.[1] ?? '';
      socket.write(answer(key));
      after(socket);
    };
    socket.on('data', onData);
  });
  server.listen(0, '127.0.0.1');
  await within(once(server, 'listening'), 'scripted backend listening');
  t.after(() => {
    for (const socket of sockets) socket.destroy();
    server.close();
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function accept(key: string): string {
  return createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
}

function switching(key: string): string {
  return `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept(key)}\r\n\r\n`;
}

function gatewayFor(t: TestContext, url: string): Promise<TestGateway> {
  return startGateway(t, {
    routes: { main: { pool: 'main' } },
    pools: { main: { backends: [url], handshakeTimeout: '10s' } },
  });
}

/** The whole answer the client gets: status, headers, and the body until the gateway closes. */
async function answerOf(
  gw: TestGateway,
): Promise<{ status: number; headers: Record<string, string>; body: Buffer }> {
  const response = await rawRequest(gw.port(), { headers: handshakeHeaders() });
  const chunks = [response.rest];
  response.socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  response.socket.resume();
  await within(once(response.socket, 'close'), 'the gateway to close the connection');
  return { status: response.status, headers: { ...response.headers }, body: Buffer.concat(chunks) };
}

test('a 101 after 100 Continue and 103 Early Hints opens the tunnel', async (t) => {
  const url = await startScriptedBackend(
    t,
    (key) =>
      `HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n${switching(key)}`,
    (socket) => socket.on('data', () => socket.write(Buffer.from([0x81, 0x02, 0x6f, 0x6b]))),
  );
  const gw = await gatewayFor(t, url);
  const ws = await openClient(gw.wsUrl());
  ws.send('hi');
  assert.equal((await nextMessage(ws)).data.toString(), 'ok');
  ws.terminate();
});

test('a frame in the same packet as the 101 reaches the client first', async (t) => {
  const url = await startScriptedBackend(t, (key) =>
    Buffer.concat([Buffer.from(switching(key), 'latin1'), Buffer.from([0x81, 0x05]), Buffer.from('early')]),
  );
  const gw = await gatewayFor(t, url);
  const response = await rawRequest(gw.port(), { headers: handshakeHeaders() });
  assert.equal(response.status, 101);
  let received = response.rest;
  if (received.length < 7) {
    response.socket.resume();
    const [more] = (await within(once(response.socket, 'data'), 'the early frame')) as [Buffer];
    received = Buffer.concat([received, more]);
  }
  assert.deepEqual(received.subarray(0, 7), Buffer.from([0x81, 0x05, ...Buffer.from('early')]));
  response.socket.destroy();
});

test('malformed or lenient answers are 502 UPSTREAM_BAD_RESPONSE at once, not a timeout', async (t) => {
  const answers: Record<string, (key: string) => string> = {
    'bare LF line endings': (key) => switching(key).replaceAll('\r\n', '\n'),
    'an obs-fold header': (key) =>
      switching(key).replace('Upgrade: websocket\r\n', 'Upgrade: websocket\r\nX-A: a\r\n b\r\n'),
    'a head over 16 KiB': (key) =>
      switching(key).replace('\r\n\r\n', `\r\nX-Pad: ${'a'.repeat(17_000)}\r\n\r\n`),
    'an SSH banner': () => 'SSH-2.0-OpenSSH_9.2\r\n',
    'endless 103 Early Hints': () => 'HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n'.repeat(2_000),
    'a 101 to another protocol': (key) => switching(key).replace('Upgrade: websocket', 'Upgrade: h2c'),
    'a 101 without Connection: Upgrade': (key) => switching(key).replace('Connection: Upgrade\r\n', ''),
    'a 101 over HTTP/1.0': (key) => switching(key).replace('HTTP/1.1', 'HTTP/1.0'),
    'a 403 with two Content-Lengths': () =>
      'HTTP/1.1 403 Forbidden\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab',
    'a 403 with Content-Length and chunked': () =>
      'HTTP/1.1 403 Forbidden\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
    'a chunked 403 over HTTP/1.0': () =>
      'HTTP/1.0 403 Forbidden\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
  };
  for (const [what, answer] of Object.entries(answers)) {
    const gw = await gatewayFor(t, await startScriptedBackend(t, answer));
    const startedAt = performance.now();
    const response = await answerOf(gw).catch((error: Error) => assert.fail(`${what}: ${error.message}`));
    assert.equal(response.status, 502, what);
    assert.ok(performance.now() - startedAt < 5_000, `${what}: answered before the 10 s handshake timeout`);
    assert.equal(await gw.metric('wsgate_upgrades_total', { code: 'UPSTREAM_BAD_RESPONSE' }), 1, what);
  }
});

test('a 4xx body is relayed by its framing: a length on a kept-alive connection, chunked, close', async (t) => {
  const bodies: Record<string, string> = {
    'a Content-Length body on a connection the backend keeps open':
      'HTTP/1.1 403 Forbidden\r\nContent-Length: 11\r\nConnection: keep-alive\r\n\r\nnot allowed',
    'a chunked body':
      'HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nnot \r\n7\r\nallowed\r\n0\r\n\r\n',
  };
  for (const [what, answer] of Object.entries(bodies)) {
    const gw = await gatewayFor(t, await startScriptedBackend(t, () => answer));
    const response = await answerOf(gw);
    assert.equal(response.status, 403, what);
    assert.equal(response.body.toString(), 'not allowed', what);
    assert.equal(response.headers['transfer-encoding'], undefined, `${what}: framed by the close`);
    assert.equal(response.headers.connection, 'close', what);
  }
  const closing = await startScriptedBackend(
    t,
    () => 'HTTP/1.0 404 Not Found\r\n\r\nno such room',
    (socket) => socket.end(),
  );
  const response = await answerOf(await gatewayFor(t, closing));
  assert.equal(response.status, 404);
  assert.equal(response.body.toString(), 'no such room', 'a body delimited by the close');
});

test('a 4xx body larger than 64 KiB is cut at 64 KiB', async (t) => {
  const body = 'x'.repeat(200 * 1024);
  const url = await startScriptedBackend(
    t,
    () => `HTTP/1.1 403 Forbidden\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
  );
  const response = await answerOf(await gatewayFor(t, url));
  assert.equal(response.status, 403);
  assert.equal(response.body.length, 64 * 1024);
});

test('a 101 that arrives a byte at a time opens the tunnel', async (t) => {
  const bytewise = createServer((socket) => {
    socket.on('error', () => {});
    socket.setNoDelay(true);
    socket.once('data', (request: Buffer) => {
      const key = /sec-websocket-key: *(\S+)/i.exec(request.toString('latin1'))?.[1] ?? '';
      const answer = Buffer.from(switching(key), 'latin1');
      let at = 0;
      const next = (): void => {
        if (socket.destroyed) return;
        if (at === answer.length) {
          socket.on('data', () => socket.write(Buffer.from([0x81, 0x02, 0x6f, 0x6b])));
          return;
        }
        socket.write(answer.subarray(at, ++at));
        setTimeout(next, 1);
      };
      next();
    });
  });
  bytewise.listen(0, '127.0.0.1');
  await within(once(bytewise, 'listening'), 'byte-by-byte backend listening');
  t.after(() => bytewise.close());
  const gw = await gatewayFor(t, `http://127.0.0.1:${(bytewise.address() as AddressInfo).port}`);
  const ws = await openClient(gw.wsUrl());
  ws.send('hi');
  assert.equal((await nextMessage(ws)).data.toString(), 'ok');
  ws.terminate();
});

/** How the gateway ended the client's connection after relaying a rejection: reset or clean close. */
async function endingOf(gw: TestGateway): Promise<{ status: number; reset: boolean; body: string }> {
  const response = await rawRequest(gw.port(), { headers: handshakeHeaders() });
  const chunks = [response.rest];
  let reset = false;
  response.socket.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'ECONNRESET') reset = true;
  });
  response.socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  response.socket.resume();
  // Not `once(socket, 'close')`: it rejects on the reset's 'error'.
  const closed = new Promise((resolve) => response.socket.once('close', resolve));
  await within(closed, 'the gateway to close the connection');
  return { status: response.status, reset, body: Buffer.concat(chunks).toString('latin1') };
}

test('regression: a relayed 4xx body cut short, malformed or with endless trailers ends with a reset', async (t) => {
  const answers: Record<string, { answer: string; after: (socket: Socket) => void }> = {
    'a Content-Length body the backend closes early': {
      answer: 'HTTP/1.1 403 Forbidden\r\nContent-Length: 100\r\n\r\nnot all',
      after: (socket) => socket.end(),
    },
    'a chunked body the backend closes early': {
      answer: 'HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\n\r\n7\r\nnot all\r\n',
      after: (socket) => socket.end(),
    },
    'a malformed chunk size': {
      answer: 'HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\n\r\n7\r\nnot all\r\nzz\r\n',
      after: () => {},
    },
    'endless trailers': {
      answer: 'HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\n\r\n7\r\nnot all\r\n0\r\n',
      after: (socket) => {
        const line = `X-Trailer: ${'t'.repeat(1000)}\r\n`;
        for (let i = 0; i < 200 && !socket.destroyed; i++) socket.write(line);
      },
    },
  };
  for (const [what, { answer, after }] of Object.entries(answers)) {
    const gw = await gatewayFor(t, await startScriptedBackend(t, () => answer, after));
    const startedAt = performance.now();
    const ending = await endingOf(gw);
    assert.equal(ending.status, 403, what);
    // A malformed read is dropped whole; otherwise the body so far was relayed.
    if (what !== 'a malformed chunk size') assert.ok(ending.body.startsWith('not all'), what);
    assert.equal(ending.reset, true, `${what}: the client is told the body is incomplete`);
    assert.ok(performance.now() - startedAt < 5_000, `${what}: ended before the 10 s handshake timeout`);
  }
  const whole = await gatewayFor(
    t,
    await startScriptedBackend(t, () => 'HTTP/1.1 403 Forbidden\r\nContent-Length: 7\r\n\r\nnot all'),
  );
  const ending = await endingOf(whole);
  assert.equal(ending.body, 'not all');
  assert.equal(ending.reset, false, 'a complete body ends with a clean close');
});

test('regression: a fault while opening the tunnel closes the paused backend socket', async (t) => {
  let backendClosed: () => void = () => {};
  const closed = new Promise<void>((resolve) => {
    backendClosed = resolve;
  });
  const url = await startScriptedBackend(t, switching, (socket) =>
    socket.once('close', () => backendClosed()),
  );
  // The handshake histogram is observed between the 101 and the tunnel: make it throw once.
  const cellOf = CellHistogram.prototype.cell;
  let thrown = false;
  t.mock.method(CellHistogram.prototype, 'cell', function (this: CellHistogram, value: string) {
    if (!thrown && this.name === 'wsgate_handshake_duration_seconds') {
      thrown = true;
      throw new Error('injected fault while opening the tunnel');
    }
    return Reflect.apply(cellOf, this, [value]);
  });
  const gw = await gatewayFor(t, url);
  const response = await rawRequest(gw.port(), { headers: handshakeHeaders() });
  response.socket.resume();
  await within(closed, 'the backend connection to be closed, not left paused');
  assert.equal(thrown, true, 'the fault was injected');
  assert.equal(await gw.metric('wsgate_upgrades_total', { code: 'INTERNAL_ERROR' }), 1);
});
