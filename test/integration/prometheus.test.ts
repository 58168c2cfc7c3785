/**
 * Prometheus for real (Debian's `prometheus`), scraping a running gateway every second with the
 * chart's rules loaded: the target is up, counters move after traffic, every rule is loaded and
 * healthy, and every query of the Grafana dashboard and the rules is accepted by Prometheus's own
 * PromQL engine. Skipped with the reason when Prometheus is not installed.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { closedPort, startEchoBackend } from '../helpers/backends.ts';
import { nextMessage, openClient, plainGet } from '../helpers/clients.ts';
import { eventually } from '../helpers/eventually.ts';
import { startGateway } from '../helpers/gateway.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const RULES = join(ROOT, 'helm/wsgate/rules/wsgate-rules.yaml');
const DASHBOARD = join(ROOT, 'helm/wsgate/dashboards/wsgate.json');
const missing = spawnSync('prometheus', ['--version']).error
  ? 'Prometheus is not installed (apt-get install prometheus)'
  : false;

interface QueryAnswer {
  readonly status: string;
  readonly error?: string;
  readonly data: { readonly result: { readonly value: [number, string] }[] };
}

test('Prometheus scrapes the gateway, loads the rules and runs every dashboard query', {
  skip: missing,
  timeout: 60_000,
}, async (t) => {
  const backend = await startEchoBackend(t);
  const gw = await startGateway(t, {
    routes: { chat: { path: '/chat', pool: 'echo' } },
    pools: { echo: { backends: [backend.url] } },
  });
  const dir = mkdtempSync(join(tmpdir(), 'wsgate-prometheus-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const port = await closedPort();
  writeFileSync(
    join(dir, 'prometheus.yml'),
    [
      'global: { scrape_interval: 1s, evaluation_interval: 1s }',
      `rule_files: ["${RULES}"]`,
      'scrape_configs:',
      '  - job_name: wsgate',
      `    static_configs: [{ targets: ["127.0.0.1:${gw.adminPort()}"] }]`,
      '',
    ].join('\n'),
  );
  const server = spawn(
    'prometheus',
    [
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let log = '';
  server.stderr?.on('data', (chunk: Buffer) => {
    log += chunk.toString();
  });
  t.after(() => {
    server.kill('SIGKILL');
  });
  const api = async <T>(path: string): Promise<T> => {
    const answer = await plainGet(port, path);
    assert.equal(answer.status, 200, `${path}: ${answer.body}`);
    return JSON.parse(answer.body) as T;
  };
  await eventually(
    async () => (await plainGet(port, '/-/ready').catch(() => ({ status: 0 }))).status === 200,
    `Prometheus ready (${log.slice(-300)})`,
    20_000,
  );
  await eventually(
    async () => {
      const targets = await api<{ data: { activeTargets: { health: string }[] } }>('/api/v1/targets');
      return targets.data.activeTargets[0]?.health === 'up';
    },
    'the gateway scraped',
    15_000,
  );
  // Traffic, then the counters move in Prometheus.
  for (let i = 0; i < 3; i++) {
    const ws = await openClient(gw.wsUrl('/chat'));
    ws.send(`hello ${i}`);
    await nextMessage(ws);
    ws.close();
  }
  const value = async (query: string): Promise<number> => {
    const answer = await api<QueryAnswer>(`/api/v1/query?query=${encodeURIComponent(query)}`);
    return Number(answer.data.result[0]?.value[1] ?? 0);
  };
  await eventually(
    async () =>
      (await value('sum(wsgate_upgrades_total{code="UPGRADED"})')) === 3 &&
      (await value('sum(wsgate_messages_total)')) >= 6,
    'the upgrades and messages scraped',
    15_000,
  );
  assert.equal(await value('up{job="wsgate"}'), 1);
  // The rules are loaded and evaluate without error.
  await eventually(
    async () => {
      const rules = await api<{
        data: { groups: { rules: { health: string; lastEvaluation: string }[] }[] };
      }>('/api/v1/rules');
      const all = rules.data.groups.flatMap((group) => group.rules);
      return (
        rules.data.groups.length === 2 &&
        all.every((rule) => rule.health === 'ok' && !rule.lastEvaluation.startsWith('0001'))
      );
    },
    'every rule loaded and evaluated',
    15_000,
  );
  // Every query of the dashboard and the rules runs (Grafana's variables given values).
  const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as {
    panels: { targets: { expr: string }[] }[];
  };
  const rules = parseYaml(readFileSync(RULES, 'utf8')) as { groups: { rules: { expr: string }[] }[] };
  const queries = [
    ...dashboard.panels.flatMap((panel) => panel.targets.map((target) => target.expr)),
    ...rules.groups.flatMap((group) => group.rules.map((rule) => rule.expr)),
  ].map((query) => query.replaceAll('$__rate_interval', '1m').replaceAll('$route', '.*'));
  for (const query of queries) {
    const answer = await api<QueryAnswer>(`/api/v1/query?query=${encodeURIComponent(query)}`);
    assert.equal(answer.status, 'success', `${query}: ${answer.error ?? ''}`);
  }
  await eventually(
    async () => (await value('count(route:wsgate_connections_active:sum{route="chat"})')) === 1,
    'a recording rule recorded for the route',
    10_000,
  );
});
