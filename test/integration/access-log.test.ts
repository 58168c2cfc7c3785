/**
 * The access lines, on real requests: one `http request` line per plain HTTP request with the
 * request id the backend also got, query values redacted (or kept when configured), client-chosen
 * values capped; sampling and level apply to answered requests only, failures always log at
 * their code's level; an X-Request-Id is kept from a trusted proxy and replaced from anyone else,
 * for plain requests and upgrades alike.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startEchoBackend, startHttpBackend } from '../helpers/backends.ts';
import { openClient } from '../helpers/clients.ts';
import { eventually } from '../helpers/eventually.ts';
import { type LogRecord, startGateway } from '../helpers/gateway.ts';
import { exchange } from '../helpers/raw-http.ts';

const httpLines = (logs: readonly LogRecord[]): LogRecord[] =>
  logs.filter((line) => line.msg === 'http request');

test('one access line per plain HTTP request, with the id the backend received', async (t) => {
  const backend = await startHttpBackend(t, (_req, res) => res.end('ok'));
  const gw = await startGateway(t, {
    routes: { app: { pool: 'app' } },
    pools: { app: { backends: [backend.url] } },
  });
  const agent = 'agent/'.repeat(200);
  await exchange(
    gw.port(),
    `GET /poll?sid=s3cr3t&EIO=4 HTTP/1.1\r\nHost: app.example\r\nUser-Agent: ${agent}\r\nConnection: close\r\n\r\n`,
  );
  await eventually(() => httpLines(gw.logs).length === 1, 'the access line');
  const line = httpLines(gw.logs)[0] ?? {};
  assert.equal(line.level, 'info');
  assert.equal(line.method, 'GET');
  assert.equal(line.path, '/poll?sid=[redacted]&EIO=[redacted]');
  assert.equal(line.status, 200);
  assert.equal(line.complete, true);
  assert.equal(line.route, 'app');
  assert.equal(line.pool, 'app');
  assert.equal(line.backend, backend.url);
  assert.equal(line.host, 'app.example');
  assert.equal(line.code, undefined, 'no outcome code when the backend answered');
  assert.ok(String(line.userAgent).length < agent.length, 'a long User-Agent is cut');
  assert.match(String(line.userAgent), /…\(\+\d+\)$/);
  assert.equal(typeof line.durationMs, 'number');
  assert.equal(backend.requests[0]?.headers['x-request-id'], line.requestId, 'the backend got the same id');
});

test('sampling and level apply to answered requests; failures always log at their level', async (t) => {
  const backend = await startHttpBackend(t, (_req, res) => res.end('ok'));
  const gw = await startGateway(t, {
    log: { query: 'keep', httpRequests: { sample: 0 } },
    routes: { app: { pool: 'app', path: '/app' } },
    pools: { app: { backends: [backend.url] } },
  });
  for (let i = 0; i < 5; i++) {
    await exchange(gw.port(), `GET /app/${i}?token=t HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n`);
  }
  await exchange(gw.port(), 'GET /nowhere?token=t HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
  await eventually(() => httpLines(gw.logs).length === 1, 'the failure line');
  const [line] = httpLines(gw.logs);
  assert.equal(line?.code, 'ROUTE_NOT_FOUND', 'only the failure is logged with sample: 0');
  assert.equal(line?.status, 404);
  assert.equal(
    line?.level,
    'info',
    'at least at the configured level, although ROUTE_NOT_FOUND is a debug code',
  );
  assert.equal(line?.path, '/nowhere?token=t', 'query kept with log.query: keep');
  assert.equal(backend.requests.length, 5);
});

test('an X-Request-Id is kept from a trusted proxy and replaced from anyone else', async (t) => {
  const backend = await startHttpBackend(t, (_req, res) => res.end('ok'));
  const echo = await startEchoBackend(t);
  const start = (trustedProxies: string[]) =>
    startGateway(t, {
      forwarding: { trustedProxies },
      routes: { app: { pool: 'app' }, ws: { pool: 'ws', path: '/ws' } },
      pools: { app: { backends: [backend.url] }, ws: { backends: [echo.url] } },
    });
  const untrusted = await start([]);
  const trusted = await start(['127.0.0.1']);
  for (const [gw, keeps] of [
    [untrusted, false],
    [trusted, true],
  ] as const) {
    const before = { http: backend.requests.length, ws: echo.upgrades.length };
    await exchange(
      gw.port(),
      'GET /x HTTP/1.1\r\nHost: a\r\nX-Request-Id: edge-123\r\nConnection: close\r\n\r\n',
    );
    const ws = await openClient(gw.wsUrl('/ws'), undefined, { headers: { 'X-Request-Id': 'edge-456' } });
    ws.terminate();
    const httpId = backend.requests[before.http]?.headers['x-request-id'];
    const wsId = echo.upgrades[before.ws]?.headers['x-request-id'];
    if (keeps) {
      assert.equal(httpId, 'edge-123', 'a trusted proxy keeps its id (HTTP)');
      assert.equal(wsId, 'edge-456', 'a trusted proxy keeps its id (upgrade)');
    } else {
      assert.match(String(httpId), /^[0-9a-f-]{36}$/, 'an untrusted client gets a fresh id (HTTP)');
      assert.match(String(wsId), /^[0-9a-f-]{36}$/, 'an untrusted client gets a fresh id (upgrade)');
    }
    await eventually(() => httpLines(gw.logs).length === 1, 'the access line');
    assert.equal(httpLines(gw.logs)[0]?.requestId, httpId, 'the logged id is the one sent on');
  }
});

test('regression: a WebSocket that ends without a close handshake still gets its access line at info', async (t) => {
  const echo = await startEchoBackend(t);
  const gw = await startGateway(t, {
    log: { level: 'info' },
    routes: { ws: { pool: 'ws' } },
    pools: { ws: { backends: [echo.url] } },
  });
  const ws = await openClient(gw.wsUrl('/gone'));
  (ws as unknown as { _socket: import('node:net').Socket })._socket.resetAndDestroy();
  await eventually(() => gw.logs.some((line) => line.msg === 'websocket closed'), 'the access line');
  const line = gw.logs.find((entry) => entry.msg === 'websocket closed');
  assert.equal(line?.code, 'CLIENT_LOST');
  assert.equal(line?.level, 'info', 'written although CLIENT_LOST is a debug code');
  const rejected = await exchange(
    gw.port(),
    'GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n',
  );
  assert.equal(rejected.responses[0]?.status, 400);
  await eventually(() => gw.logs.some((entry) => entry.msg === 'websocket rejected'), 'the rejection line');
});
