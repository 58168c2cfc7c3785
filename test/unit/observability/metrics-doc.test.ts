/**
 * docs/metrics.md and the registry must agree: every wsgate_ metric has a row with its type and
 * labels (the supervisor's of a fleet included), and the doc lists no metric that does not exist. Also pins the naming conventions.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { closeCodeLabel, GatewayMetrics } from '../../../src/observability/metrics.ts';
import { FleetMetrics } from '../../../src/workers/fleet-metrics.ts';

const doc = readFileSync(new URL('../../../docs/metrics.md', import.meta.url), 'utf8');
const rows = new Map(
  doc
    .split('\n')
    .filter((line) => /^\|\s*`wsgate_[a-z_]+`\s*\|/.test(line))
    .map((line) => {
      const cells = line.split('|').map((cell) => cell.trim());
      const labels = cells[3] === '—' ? [] : (cells[3] ?? '').split(',').map((label) => label.trim());
      return [cells[1]?.replaceAll('`', '') ?? '', { type: cells[2], labels }] as const;
    }),
);

/** Every wsgate_ metric: a gateway's, and the supervisor's own when it runs workers. */
async function wsgateMetrics(): Promise<{ name: string; type: string; labels: string[] }[]> {
  const found = new Map<string, { name: string; type: string; labels: string[] }>();
  for (const registry of [new GatewayMetrics('1.2.3').registry, new FleetMetrics().registry]) {
    for (const metric of await registry.getMetricsAsJSON()) {
      if (!metric.name.startsWith('wsgate_')) continue;
      const inner = registry.getSingleMetric(metric.name) as unknown as { labelNames: string[] };
      const entry = { name: metric.name, type: String(metric.type), labels: [...inner.labelNames] };
      const seen = found.get(metric.name);
      if (seen) assert.deepEqual(seen, entry, `${metric.name} is the same in the gateway and the supervisor`);
      found.set(metric.name, entry);
    }
  }
  return [...found.values()];
}

test('every metric is documented with its type and labels', async () => {
  const metrics = await wsgateMetrics();
  assert.ok(metrics.length >= 10);
  for (const metric of metrics) {
    const row = rows.get(metric.name);
    assert.ok(row, `docs/metrics.md has a row for ${metric.name}`);
    assert.equal(row.type, metric.type, `type of ${metric.name}`);
    assert.deepEqual(row.labels, metric.labels, `labels of ${metric.name}`);
  }
  const names = new Set(metrics.map((metric) => metric.name));
  for (const name of rows.keys()) assert.ok(names.has(name), `${name} in docs/metrics.md exists`);
});

test('names follow Prometheus conventions', async () => {
  for (const metric of await wsgateMetrics()) {
    assert.match(metric.name, /^wsgate_[a-z_]+$/, `${metric.name} is wsgate_ and snake case`);
    if (metric.type === 'counter') assert.match(metric.name, /_total$/, `${metric.name} is a counter`);
    else assert.doesNotMatch(metric.name, /_total$/, `${metric.name} is a ${metric.type}, not a counter`);
    if (metric.type === 'histogram') assert.match(metric.name, /_seconds$/, `${metric.name} is in seconds`);
    for (const label of metric.labels)
      assert.ok(
        !['ip', 'address', 'path', 'client', 'subject'].includes(label),
        `${metric.name}: label ${label} would be unbounded`,
      );
  }
});

test('close code labels are bounded', () => {
  assert.equal(closeCodeLabel(undefined), '1006');
  assert.equal(closeCodeLabel(1000), '1000');
  assert.equal(closeCodeLabel(1014), '1014');
  assert.equal(closeCodeLabel(4000), '4xxx');
  assert.equal(closeCodeLabel(4999), '4xxx');
  assert.equal(closeCodeLabel(3001), '3xxx');
  assert.equal(closeCodeLabel(2000), 'invalid');
  assert.equal(closeCodeLabel(65535), 'invalid');
});
