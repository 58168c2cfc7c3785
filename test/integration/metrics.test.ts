/**
 * Metrics after known traffic, read over HTTP from the admin listener as Prometheus would: upgrade
 * outcomes, messages and bytes per direction, closes by initiator and code, active gauges and
 * plain HTTP requests. The exposition is also checked by `promtool check metrics` when promtool is
 * installed (CI installs it).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { request } from 'node:http';
import { test } from 'node:test';
import { startEchoBackend } from '../helpers/backends.ts';
import { closeOf, nextMessage, openClient, rawRequest } from '../helpers/clients.ts';
import { eventually, within } from '../helpers/eventually.ts';
import { startGateway } from '../helpers/gateway.ts';

function get(port: number, path: string): Promise<{ status: number; body: string; type: string }> {
  return within(
    new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path, agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          body += chunk;
        });
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, body, type: String(res.headers['content-type']) }),
        );
      });
      req.on('error', reject);
      req.end();
    }),
    `GET ${path}`,
  );
}

/** The value of one sample line `name{labels} value` in the exposition text. */
function sample(text: string, name: string, labels: string): number | undefined {
  const line = text
    .split('\n')
    .find(
      (entry) => entry.startsWith(`${name}{`) && labels.split(',').every((label) => entry.includes(label)),
    );
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

test('metrics count upgrades, messages, bytes, closes and HTTP requests', async (t) => {
  const backend = await startEchoBackend(t);
  const gw = await startGateway(t, {
    routes: { chat: { path: '/chat', pool: 'echo' } },
    pools: { echo: { backends: [backend.url] } },
  });
  const ws = await openClient(gw.wsUrl('/chat'));
  for (const text of ['a', 'bb', 'ccc']) {
    ws.send(text);
    await nextMessage(ws);
  }
  ws.send(Buffer.alloc(300), { binary: true });
  await nextMessage(ws);
  const closed = closeOf(ws);
  ws.close(4000, 'bye');
  await closed;
  await eventually(() => gw.gateway.registry.tunnelCount === 0, 'the tunnel to end');
  const rejected = await rawRequest(gw.port(), {
    path: '/nowhere',
    headers: {
      Host: 'x',
      Upgrade: 'websocket',
      Connection: 'Upgrade',
      'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==',
      'Sec-WebSocket-Version': '13',
    },
  });
  assert.equal(rejected.status, 404);
  rejected.socket.destroy();
  assert.equal((await get(gw.port(), '/chat/page')).status, 200);

  const scraped = await get(gw.adminPort(), '/metrics');
  assert.equal(scraped.status, 200);
  assert.match(scraped.type, /^text\/plain; version=0\.0\.4/);
  const text = scraped.body;
  assert.equal(sample(text, 'wsgate_upgrades_total', 'route="chat",code="UPGRADED"'), 1);
  assert.equal(sample(text, 'wsgate_upgrades_total', 'route="",code="ROUTE_NOT_FOUND"'), 1);
  assert.equal(sample(text, 'wsgate_messages_total', 'route="chat",direction="client_to_backend"'), 4);
  assert.equal(sample(text, 'wsgate_messages_total', 'route="chat",direction="backend_to_client"'), 4);
  // Client frames: 3 small text (6-byte header incl. mask + payload) + 300 B binary (8-byte header) + close 4000 "bye".
  const clientBytes = 6 + 1 + (6 + 2) + (6 + 3) + (8 + 300) + (6 + 5);
  assert.equal(sample(text, 'wsgate_bytes_total', 'route="chat",direction="client_to_backend"'), clientBytes);
  // Backend frames are unmasked: 4 bytes less per frame.
  assert.equal(
    sample(text, 'wsgate_bytes_total', 'route="chat",direction="backend_to_client"'),
    clientBytes - 5 * 4,
  );
  assert.equal(sample(text, 'wsgate_closes_total', 'route="chat",initiator="client",code="4xxx"'), 1);
  assert.equal(sample(text, 'wsgate_connections_active', 'route="chat",pool="echo"'), 0);
  assert.equal(sample(text, 'wsgate_connection_duration_seconds_count', 'route="chat"'), 1);
  assert.equal(sample(text, 'wsgate_handshake_duration_seconds_count', 'route="chat"'), 1);
  assert.equal(sample(text, 'wsgate_http_requests_total', 'route="chat",status="200"'), 1);
  assert.equal(sample(text, 'wsgate_build_info', 'version="0.0.0-test"'), 1);
  assert.match(text, /^process_cpu_seconds_total /m);
});

test('the exposition passes promtool check metrics', async (t) => {
  const promtool = spawnSync('promtool', ['--version']);
  if (promtool.error) {
    t.skip('promtool is not installed (apt-get install prometheus)');
    return;
  }
  const backend = await startEchoBackend(t);
  const gw = await startGateway(t, {
    routes: { echo: { pool: 'echo' } },
    pools: { echo: { backends: [backend.url] } },
  });
  const ws = await openClient(gw.wsUrl('/'));
  ws.send('x');
  await nextMessage(ws);
  const closed = closeOf(ws);
  ws.close();
  await closed;
  await eventually(() => gw.gateway.registry.tunnelCount === 0, 'the tunnel to end');
  const { body } = await get(gw.adminPort(), '/metrics');
  const checked = spawnSync('promtool', ['check', 'metrics'], { input: body, encoding: 'utf8' });
  assert.equal(checked.status, 0, `promtool: ${checked.stdout}${checked.stderr}`);
  assert.equal(`${checked.stdout}${checked.stderr}`.trim(), '', 'promtool reports no lint problems');
});

test('the admin server answers 404 for unknown paths and 405 for other methods', async (t) => {
  const backend = await startEchoBackend(t);
  const gw = await startGateway(t, {
    routes: { echo: { pool: 'echo' } },
    pools: { echo: { backends: [backend.url] } },
  });
  assert.equal((await get(gw.adminPort(), '/nope')).status, 404);
  assert.equal((await get(gw.adminPort(), '/healthz')).body, 'ok\n');
  assert.equal((await get(gw.adminPort(), '/readyz')).status, 200);
  const status = await within(
    new Promise<number>((resolve, reject) => {
      const req = request(
        { host: '127.0.0.1', port: gw.adminPort(), path: '/metrics', method: 'POST', agent: false },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on('error', reject);
      req.end();
    }),
    'POST /metrics',
  );
  assert.equal(status, 405);
});
