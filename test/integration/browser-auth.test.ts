/**
 * A real browser at the secure edge: headless Chromium (through playwright-core) loads a page over
 * https from the gateway, whose route allows only that page's origin and asks for a token, and
 * opens a wss:// WebSocket with the token in the subprotocol list (browsers cannot set headers on
 * a WebSocket). The backend sees neither the marker nor the token, and the browser gets the
 * backend's subprotocol. A page from another origin, holding the same token, is refused with 403
 * before any backend connection (Cross-Site WebSocket Hijacking). Skipped when Chromium is not
 * installed (CI installs it).
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import { test } from 'node:test';
import { chromium } from 'playwright-core';
import { closedPort, startEchoBackend } from '../helpers/backends.ts';
import { CHROMIUM } from '../helpers/browser.ts';
import { eventually } from '../helpers/eventually.ts';
import { startGateway } from '../helpers/gateway.ts';
import { rsaKey, signToken, startIdentityProvider } from '../helpers/tokens.ts';

const TLS_DIR = resolve(import.meta.dirname, '../fixtures/tls');

/** What the page reports: the echo and the negotiated subprotocol, or how the WebSocket failed. */
interface PageResult {
  readonly echo?: string;
  readonly protocol?: string;
  readonly closeCode?: number;
}

/** Opens `url` with the token in the subprotocol list from the page, and reports what happened. */
function openFromPage([url, token]: readonly [string, string]): Promise<PageResult> {
  return new Promise((done) => {
    const ws = new WebSocket(url, ['bearer', token, 'chat.v1']);
    ws.onopen = () => ws.send('hello from the browser');
    ws.onmessage = (event) => {
      done({ echo: String(event.data), protocol: ws.protocol });
      ws.close(1000);
    };
    ws.onclose = (event) => done({ closeCode: event.code });
  });
}

test('a browser page on an allowed origin connects over wss with a token in the subprotocol; a page on another origin is refused', {
  skip: CHROMIUM === undefined ? 'Chromium is not installed' : false,
}, async (t) => {
  const key = rsaKey('k1');
  const idp = await startIdentityProvider(t, [key]);
  const backend = await startEchoBackend(t, {
    ws: { handleProtocols: (protocols) => [...protocols].at(-1) ?? false },
    onRequest: (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end('<!doctype html><title>app</title>');
    },
  });
  // The listener's port must be known before the config: it is part of the allowed origin.
  const port = await closedPort();
  const origin = `https://localhost:${port}`;
  const gw = await startGateway(
    t,
    {
      listeners: { public: { port, tls: { cert: 'server.pem', key: 'server-key.pem' } } },
      keySets: { idp: { jwksUrl: idp.url } },
      origins: { allow: [origin], plainHttp: false },
      routes: {
        page: { pool: 'app', path: '/app' },
        ws: { pool: 'app', path: '/ws', auth: { keySet: 'idp', algorithms: ['RS256'] } },
      },
      pools: { app: { backends: [backend.url] } },
    },
    { baseDir: TLS_DIR },
  );
  // Another site, on plain HTTP, whose page tries the same WebSocket.
  const evil = createServer((_req, res) => res.end('<!doctype html><title>elsewhere</title>'));
  await new Promise<void>((listening) => evil.listen(0, '127.0.0.1', listening));
  t.after(() => new Promise<void>((closed) => evil.close(() => closed())));
  const evilPort = (evil.address() as AddressInfo).port;

  const browser = await chromium.launch({
    executablePath: CHROMIUM ?? 'chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic'],
  });
  t.after(() => browser.close());
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  const page = await context.newPage();
  const token = await signToken(key);

  await page.goto(`${origin}/app`);
  const allowed = await page.evaluate(openFromPage, [`wss://localhost:${port}/ws`, token] as const);
  assert.deepEqual(allowed, { echo: 'hello from the browser', protocol: 'chat.v1' });
  const offered = backend.upgrades[0]?.headers['sec-websocket-protocol'];
  assert.equal(offered, 'chat.v1', 'the backend was offered neither the marker nor the token');
  assert.equal(backend.upgrades[0]?.headers.origin, origin);

  await page.goto(`http://127.0.0.1:${evilPort}/`);
  const refused = await page.evaluate(openFromPage, [`wss://localhost:${port}/ws`, token] as const);
  assert.deepEqual(refused, { closeCode: 1006 }, 'the browser saw the handshake fail');
  assert.equal(backend.upgrades.length, 1, 'the refused upgrade never reached the backend');
  await eventually(
    async () =>
      (await gw.metric('wsgate_origin_refusals_total', { route: 'ws', reason: 'not_allowed' })) === 1,
    'the refusal counted',
  );
  assert.ok(!JSON.stringify(gw.logs).includes(token), 'the token is not in the log');
  await browser.close();
  await eventually(() => gw.gateway.registry.tunnelCount === 0, 'the tunnel to end');
});
