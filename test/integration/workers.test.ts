/**
 * A fleet of workers on real processes (`workers: 2`): WebSockets spread over the workers,
 * `/metrics` on the supervisor's admin server sums them exactly, a reload reaches every worker, a
 * killed worker is replaced while the others' connections stay up, as is one whose event loop is
 * stuck (SIGSTOP: it stops answering pings), an invalid reload changes no worker, SIGTERM drains
 * every worker (1001 to each client) before the supervisor exits 0; with `reusePort` each worker
 * binds the port itself; a port that is taken stops the fleet from starting.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { test } from 'node:test';
import { chromium } from 'playwright-core';
import type { WebSocket } from 'ws';
import { closedPort, startEchoBackend } from '../helpers/backends.ts';
import { CHROMIUM } from '../helpers/browser.ts';
import { cliConfig, runCli, startCliGateway, writeConfig } from '../helpers/cli.ts';
import { closeOf, nextMessage, openClient, plainGet } from '../helpers/clients.ts';
import { eventually, within } from '../helpers/eventually.ts';

interface FleetStatus {
  readonly totals: { readonly tunnels: number };
  readonly configuration: { readonly hash: string; readonly lastReload: { result: string } | null };
  readonly workers: readonly {
    readonly index: number;
    readonly pid: number;
    readonly state: string;
    readonly restarts: number;
    readonly totals: { readonly tunnels: number } | null;
    readonly configuration: string | null;
  }[];
}

/** The supervisor's `/status.json`, on its admin port on 127.0.0.78. */
function fleetStatus(adminPort: number): () => Promise<FleetStatus> {
  return async () =>
    JSON.parse((await plainGet(adminPort, '/status.json', {}, '127.0.0.78')).body) as FleetStatus;
}

/** Waits until every worker serves (the first worker's listener is up before the admin server). */
async function everyWorkerServing(status: () => Promise<FleetStatus>): Promise<void> {
  await eventually(
    async () =>
      (await status().catch(() => undefined))?.workers.every((worker) => worker.state === 'running') ?? false,
    'every worker serving',
  );
}

/** The sum of a metric's samples in a text exposition whose labels include `match`. */
function sample(text: string, name: string, match = ''): number {
  return text
    .split('\n')
    .filter((line) => line.startsWith(`${name}{`) || line.startsWith(`${name} `))
    .filter((line) => line.includes(match))
    .reduce((sum, line) => sum + Number(line.slice(line.lastIndexOf(' ') + 1)), 0);
}

async function echoes(ws: WebSocket, text: string): Promise<void> {
  ws.send(text);
  assert.equal((await nextMessage(ws)).data.toString(), text);
}

test('workers: 2 — spread, summed metrics, reload to all, a killed worker replaced, SIGTERM drains all', async (t) => {
  const backend = await startEchoBackend(t);
  // An address no other test binds, so that the port picked stays this test's.
  const adminPort = await closedPort();
  const config = (routes: string) =>
    cliConfig(backend.url, 'workers: 2\nshutdown: { closeSpread: 0s, drainTimeout: 10s }\n')
      .replace('admin: { enabled: false }', `admin: { address: 127.0.0.78, port: ${adminPort} }`)
      .replace('echo: { pool: echo }', routes);
  const file = writeConfig(t, config('echo: { pool: echo }'));
  const fleet = await startCliGateway(t, file);
  const status = fleetStatus(adminPort);
  const metrics = async (): Promise<string> => (await plainGet(adminPort, '/metrics', {}, '127.0.0.78')).body;
  await everyWorkerServing(status);

  // Spread: the supervisor hands connections to the workers in turn.
  const clients = await Promise.all(
    Array.from({ length: 20 }, () => openClient(`ws://127.0.0.1:${fleet.port}/`)),
  );
  const first = await status();
  assert.equal(first.workers.length, 2);
  assert.equal(first.totals.tunnels, 20);
  for (const worker of first.workers)
    assert.ok((worker.totals?.tunnels ?? 0) > 0, `worker ${worker.index} has WebSockets`);
  const text = await metrics();
  assert.equal(sample(text, 'wsgate_connections_active'), 20, 'the gauge summed over the workers');
  assert.equal(sample(text, 'wsgate_upgrades_total', 'code="UPGRADED"'), 20, 'the counter summed');
  assert.equal(sample(text, 'wsgate_workers', 'state="running"'), 2);
  assert.equal(sample(text, 'wsgate_build_info'), 1, 'a gauge that must not add up');
  assert.equal((await plainGet(adminPort, '/readyz', {}, '127.0.0.78')).status, 200);
  if (CHROMIUM === undefined) t.diagnostic('Chromium is not installed: the status page is not drawn');
  else {
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--disable-gpu'],
    });
    t.after(() => browser.close());
    const tab = await browser.newPage();
    await tab.goto(`http://127.0.0.78:${adminPort}/status`);
    await tab.waitForSelector('#workers tbody tr');
    const rows = await tab.$$eval('#workers tbody tr', (trs) => trs.map((tr) => tr.children[2]?.textContent));
    assert.deepEqual(rows, ['running', 'running'], 'the page draws both workers');
    assert.match((await tab.textContent('#totals')) ?? '', /20 WebSockets/);
    await browser.close();
  }

  // A reload reaches every worker; an invalid one reaches none.
  writeFileSync(file, config('echo: { path: /moved, pool: echo }'));
  const reloaded = await runCli(['reload', '--config', file]);
  assert.equal(reloaded.code, 0, reloaded.stderr);
  const afterReload = await status();
  assert.ok(afterReload.workers.every((worker) => worker.configuration === afterReload.configuration.hash));
  assert.notEqual(afterReload.configuration.hash, first.configuration.hash);
  const moved = await openClient(`ws://127.0.0.1:${fleet.port}/moved`);
  writeFileSync(file, config('echo: { path: /moved, pool: nowhere }'));
  fleet.child.kill('SIGHUP');
  await eventually(
    async () => (await status()).configuration.lastReload?.result === 'invalid',
    'the refusal',
  );
  assert.ok(
    (await status()).workers.every((worker) => worker.configuration === afterReload.configuration.hash),
  );
  assert.equal(
    sample(await metrics(), 'wsgate_config_reloads_total', 'result="invalid"'),
    1,
    'counted once for the fleet',
  );
  // Valid, but the workers cannot apply it (a new listener on a port that is taken): the fleet
  // stays on the configuration in force, and `wsgate reload` says which worker refused and why.
  writeFileSync(
    file,
    config('echo: { path: /moved, pool: echo }').replace(
      'public: { address: 127.0.0.1, port: 0 }',
      `public: { address: 127.0.0.1, port: 0 }\n  taken: { address: 127.0.0.1, port: ${backend.port} }`,
    ),
  );
  const refused = await runCli(['reload', '--config', file]);
  assert.equal(refused.code, 1);
  assert.match(
    refused.stderr,
    /reload failed[\s\S]*worker \d: listener "taken" cannot listen on 127\.0\.0\.1:\d+: EADDRINUSE/,
  );
  const afterRefusal = await status();
  assert.equal(afterRefusal.configuration.hash, afterReload.configuration.hash);
  assert.ok(afterRefusal.workers.every((worker) => worker.configuration === afterReload.configuration.hash));
  writeFileSync(file, config('echo: { path: /moved, pool: echo }'));

  // A worker killed: its clients lose their connection, the other worker's stay up, it is replaced.
  const victim = afterReload.workers[0];
  assert.ok(victim);
  const closes = clients.map((ws) => closeOf(ws, 15_000).catch(() => undefined));
  process.kill(victim.pid, 'SIGKILL');
  await eventually(
    async () => {
      const worker = (await status()).workers[0];
      return worker?.state === 'running' && worker.pid !== victim.pid && worker.restarts === 1;
    },
    'the killed worker replaced',
    15_000,
  );
  const open = clients.filter((ws) => ws.readyState === ws.OPEN);
  assert.equal(
    open.length,
    20 - (victim.totals?.tunnels ?? 0),
    'only the killed worker’s clients lost their connection',
  );
  for (const ws of open) await echoes(ws, 'the other worker is untouched');
  assert.equal(sample(await metrics(), 'wsgate_worker_restarts_total'), 1);
  const onNew = await openClient(`ws://127.0.0.1:${fleet.port}/moved`);
  await echoes(onNew, 'the fleet serves on');

  // SIGTERM: every worker drains, every client gets 1001, the supervisor exits 0.
  // (`moved` was lost with the killed worker if that one had it.)
  const drained = [...open, moved, onNew]
    .filter((ws) => ws.readyState === ws.OPEN)
    .map((ws) => closeOf(ws, 15_000));
  const exited = once(fleet.child, 'exit');
  fleet.child.kill('SIGTERM');
  for (const closed of await Promise.all(drained)) assert.equal(closed.code, 1001);
  assert.equal((await within(exited, 'the supervisor to exit', 20_000))[0], 0);
  await Promise.all(closes);
});

test('workers: 2 on a port that is taken: the fleet does not start, says why, exits 1', async (t) => {
  const backend = await startEchoBackend(t);
  const file = writeConfig(
    t,
    cliConfig(backend.url, 'workers: 2\n').replace('port: 0 }', `port: ${backend.port} }`),
  );
  const result = await runCli(['--config', file]);
  assert.equal(result.code, 1);
  assert.match(result.stdout + result.stderr, /could not start[^\n]*EADDRINUSE/);
});

test('listenerSharing: reusePort — each worker binds the port itself and the kernel spreads the WebSockets', async (t) => {
  const backend = await startEchoBackend(t);
  const [adminPort, port] = [await closedPort(), await closedPort()];
  const file = writeConfig(
    t,
    cliConfig(backend.url, 'workers: 2\nlistenerSharing: reusePort\nshutdown: { closeSpread: 0s }\n')
      .replace('admin: { enabled: false }', `admin: { address: 127.0.0.78, port: ${adminPort} }`)
      .replace('{ address: 127.0.0.1, port: 0 }', `{ address: 127.0.0.78, port: ${port} }`),
  );
  const fleet = await startCliGateway(t, file);
  assert.equal(fleet.port, port);
  const status = fleetStatus(adminPort);
  await everyWorkerServing(status);
  const clients = await Promise.all(Array.from({ length: 24 }, () => openClient(`ws://127.0.0.78:${port}/`)));
  const spread = (await status()).workers.map((worker) => worker.totals?.tunnels ?? 0);
  assert.equal(
    spread.reduce((sum, count) => sum + count, 0),
    24,
  );
  assert.ok(
    spread.every((count) => count > 0),
    `both workers have WebSockets (${spread.join(' / ')})`,
  );
  for (const ws of clients) await echoes(ws, 'through a worker’s own socket');
  const closes = clients.map((ws) => closeOf(ws, 15_000));
  const exited = once(fleet.child, 'exit');
  fleet.child.kill('SIGTERM');
  for (const closed of await Promise.all(closes)) assert.equal(closed.code, 1001);
  assert.equal((await within(exited, 'the supervisor to exit', 20_000))[0], 0);
});

test('a worker whose event loop is stuck (SIGSTOP) stops answering pings and is replaced; the other serves on', {
  timeout: 60_000,
}, async (t) => {
  const backend = await startEchoBackend(t);
  const adminPort = await closedPort();
  const file = writeConfig(
    t,
    cliConfig(backend.url, 'workers: 2\nshutdown: { closeSpread: 0s, drainTimeout: 5s }\n').replace(
      'admin: { enabled: false }',
      `admin: { address: 127.0.0.78, port: ${adminPort} }`,
    ),
  );
  const fleet = await startCliGateway(t, file);
  const status = fleetStatus(adminPort);
  await everyWorkerServing(status);
  const stuck = (await status()).workers[1];
  assert.ok(stuck);
  process.kill(stuck.pid, 'SIGSTOP');
  t.after(() => {
    try {
      process.kill(stuck.pid, 'SIGKILL');
    } catch {
      // already gone: the supervisor killed it
    }
  });
  // Three missed pings, 5 s apart.
  await eventually(
    async () => {
      const worker = (await status()).workers[1];
      return worker?.state === 'running' && worker.pid !== stuck.pid;
    },
    'the stuck worker replaced',
    40_000,
  );
  assert.ok(fleet.lines().some((line) => line.msg === 'worker stopped answering; killing it'));
  const ws = await openClient(`ws://127.0.0.1:${fleet.port}/`);
  await echoes(ws, 'the fleet serves');
  const closed = closeOf(ws, 10_000);
  const exited = once(fleet.child, 'exit');
  fleet.child.kill('SIGTERM');
  assert.equal((await closed).code, 1001);
  assert.equal((await within(exited, 'the supervisor to exit', 20_000))[0], 0);
});
