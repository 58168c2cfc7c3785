/**
 * The status page on the admin port, for a known pool state (one backend down by its TCP check,
 * one WebSocket open on the other): `/status.json` reports it, and headless Chromium (through
 * playwright-core) loads `/status` and shows it, backend by backend; a screenshot is kept in
 * test-results/status-page.png. The browser part is skipped when Chromium is not installed.
 */
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { request } from 'node:http';
import { resolve } from 'node:path';
import { test } from 'node:test';
import { chromium } from 'playwright-core';
import { closedPort, startEchoBackend } from '../helpers/backends.ts';
import { CHROMIUM } from '../helpers/browser.ts';
import { openClient } from '../helpers/clients.ts';
import { eventually } from '../helpers/eventually.ts';
import { FakeClock } from '../helpers/fake-clock.ts';
import { startGateway } from '../helpers/gateway.ts';

function getJson(port: number, path: string): Promise<{ status: number; type: string; body: string }> {
  return new Promise((done, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        body += chunk;
      });
      res.on('end', () =>
        done({ status: res.statusCode ?? 0, type: res.headers['content-type'] ?? '', body }),
      );
    });
    req.on('error', reject);
    req.end();
  });
}

interface ReportedBackend {
  readonly url: string;
  readonly state: string;
  readonly websockets: number;
  readonly picks: number;
}

test('the status page shows each backend of a pool with its state, and a browser draws it', async (t) => {
  const clock = new FakeClock();
  const live = await startEchoBackend(t);
  const dead = `http://127.0.0.1:${await closedPort()}`;
  const gw = await startGateway(
    t,
    {
      routes: { chat: { pool: 'chat' } },
      pools: {
        chat: {
          backends: [live.url, dead],
          sticky: { from: ['clientAddress'] },
          health: { active: { type: 'tcp', interval: '1s', unhealthyAfter: 1 } },
        },
      },
    },
    { clock },
  );
  clock.advance(1_100);
  await eventually(
    async () => (await gw.metric('wsgate_backend_up', { backend: dead })) === 0,
    'the dead backend down',
  );
  const ws = await openClient(gw.wsUrl('/'));
  const report = await getJson(gw.adminPort(), '/status.json');
  assert.equal(report.status, 200);
  assert.match(report.type, /^application\/json/);
  const status = JSON.parse(report.body) as {
    phase: string;
    totals: { tunnels: number };
    pools: { name: string; balance: string; sticky: string[]; backends: ReportedBackend[] }[];
  };
  assert.equal(status.phase, 'running');
  assert.equal(status.totals.tunnels, 1);
  const pool = status.pools.find((entry) => entry.name === 'chat');
  assert.deepEqual(pool?.sticky, ['clientAddress']);
  assert.deepEqual(
    pool?.backends.map(({ url, state, websockets }) => ({ url, state, websockets })),
    [
      { url: live.url, state: 'up', websockets: 1 },
      { url: dead, state: 'down', websockets: 0 },
    ],
  );
  assert.equal(pool?.backends[0]?.picks, 1);

  const page = await getJson(gw.adminPort(), '/status');
  assert.match(page.type, /^text\/html/);
  if (CHROMIUM === undefined) {
    t.diagnostic('Chromium is not installed: the browser part is skipped');
  } else {
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--disable-gpu'],
    });
    t.after(() => browser.close());
    const tab = await browser.newPage({ viewport: { width: 1100, height: 700 } });
    await tab.goto(`http://127.0.0.1:${gw.adminPort()}/status`);
    await tab.waitForSelector('.pool h3');
    assert.equal(await tab.textContent('.pool h3'), 'chat — 1/2 up · round_robin · sticky: clientAddress');
    const states = await tab.$$eval('td.state', (cells) =>
      cells.map((cell) => [cell.textContent, cell.className]),
    );
    assert.deepEqual(states, [
      ['up', 'state up'],
      ['down', 'state down'],
    ]);
    assert.match((await tab.textContent('#totals')) ?? '', /1 WebSockets/);
    const dir = resolve(import.meta.dirname, '../../test-results');
    mkdirSync(dir, { recursive: true });
    await tab.screenshot({ path: resolve(dir, 'status-page.png'), fullPage: true });
    await browser.close();
  }
  ws.close();
  await eventually(() => gw.gateway.registry.tunnelCount === 0, 'the tunnel to end');
});
