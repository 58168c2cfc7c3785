/**
 * A real browser through the gateway: headless Chromium loads a page over plain HTTP through the
 * gateway, opens a WebSocket through it offering two subprotocols and permessage-deflate (as
 * browsers always do), echoes a message, reports what it saw with a POST (plain HTTP again) and
 * closes with 4000. Skipped when Chromium is not installed (CI installs it).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { startEchoBackend } from '../helpers/backends.ts';
import { CHROMIUM } from '../helpers/browser.ts';
import { eventually, within } from '../helpers/eventually.ts';
import { startGateway } from '../helpers/gateway.ts';

const PAGE = `<!doctype html><meta charset="utf-8"><title>browser test</title><script>
const report = (result) => fetch('/result', { method: 'POST', body: JSON.stringify(result) });
const ws = new WebSocket('ws://' + location.host + '/ws', ['v1.chat', 'v2.chat']);
ws.onopen = () => ws.send('hello from the browser');
ws.onmessage = (event) => {
  report({ echo: event.data, protocol: ws.protocol, extensions: ws.extensions });
  ws.close(4000, 'done');
};
ws.onerror = () => report({ error: true });
</script>`;

interface BrowserResult {
  readonly echo?: string;
  readonly protocol?: string;
  readonly extensions?: string;
  readonly error?: boolean;
}

test('a browser loads a page and talks WebSocket through the gateway', {
  skip: CHROMIUM === undefined ? 'Chromium is not installed' : false,
}, async (t) => {
  let result: BrowserResult | undefined;
  let closed: { code: number; reason: string } | undefined;
  const backend = await startEchoBackend(t, {
    ws: { perMessageDeflate: true, handleProtocols: (protocols) => [...protocols].at(-1) ?? false },
    onConnection: (socket) => {
      socket.on('message', (data, isBinary) => socket.send(data, { binary: isBinary }));
      socket.on('close', (code, reason) => {
        closed = { code, reason: reason.toString() };
      });
    },
    onRequest: (req, res) => {
      if (req.method === 'POST' && req.url === '/result') {
        let body = '';
        req.setEncoding('utf8');
        req.on('data', (chunk: string) => {
          body += chunk;
        });
        req.on('end', () => {
          result = JSON.parse(body) as BrowserResult;
          res.end('thanks');
        });
        return;
      }
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(PAGE);
    },
  });
  const gw = await startGateway(t, {
    routes: { app: { pool: 'app' } },
    pools: { app: { backends: [backend.url] } },
  });
  const profile = mkdtempSync(join(tmpdir(), 'wsgate-chromium-'));
  const browser = spawn(
    CHROMIUM ?? 'chromium',
    [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      `--user-data-dir=${profile}`,
      gw.httpUrl('/'),
    ],
    { stdio: 'ignore', detached: true },
  );
  t.after(() => {
    if (browser.pid !== undefined && browser.exitCode === null) process.kill(-browser.pid, 'SIGKILL');
    rmSync(profile, { recursive: true, force: true });
  });
  await eventually(() => result !== undefined, 'the browser to report its result', 30_000);
  assert.deepEqual(result?.error, undefined);
  assert.equal(result?.echo, 'hello from the browser');
  assert.equal(result?.protocol, 'v2.chat', 'the backend chose the last subprotocol offered');
  assert.match(result?.extensions ?? '', /^permessage-deflate/, 'compression negotiated end to end');
  await eventually(() => closed !== undefined, 'the close at the backend', 10_000);
  assert.deepEqual(closed, { code: 4000, reason: 'done' });
  assert.equal(await gw.metric('wsgate_messages_total', { direction: 'client_to_backend' }), 1);
  assert.equal(await gw.metric('wsgate_messages_total', { direction: 'backend_to_client' }), 1);
  // A close is counted at teardown, once both sides have closed their connections.
  await eventually(() => gw.gateway.registry.tunnelCount === 0, 'the closing handshake to finish', 10_000);
  assert.equal(await gw.metric('wsgate_closes_total', { initiator: 'client', code: '4xxx' }), 1);
  await within(
    eventually(() => gw.gateway.registry.requestCount === 0, 'browser requests finished', 10_000),
    'requests to finish',
    15_000,
  );
  if (browser.pid !== undefined) process.kill(-browser.pid, 'SIGKILL');
  await eventually(() => gw.gateway.registry.tunnelCount === 0, 'the tunnel to end');
});
