/**
 * Cell histograms expose what prom-client's own Histogram exposes for the same observations: the
 * same text on /metrics, the same JSON (what a worker reports to the fleet), and sums across
 * workers through prom-client's AggregatorRegistry; reset forgets every series.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AggregatorRegistry, Histogram, Registry } from 'prom-client';
import { CellHistogram } from '../../../src/observability/histogram-cells.ts';

const BUCKETS = [0.001, 0.01, 0.1, 1, 10];
// On a bound, between bounds, below the first, above the last, zero.
const OBSERVED: readonly [string, number][] = [
  ['chat', 0.01],
  ['chat', 0.005],
  ['chat', 0.0001],
  ['chat', 42],
  ['feed', 0],
  ['feed', 1],
  ['chat', 0.5],
];

/** A cell histogram over BUCKETS in `registry`. */
function cellHistogram(registry: Registry, name: string, labelName: string): CellHistogram {
  return new CellHistogram({ name, help: 'Test histogram.', labelName, buckets: BUCKETS, registry });
}

function both(): { cells: Registry; reference: Registry } {
  const cells = new Registry();
  const reference = new Registry();
  const histogram = cellHistogram(cells, 'x_seconds', 'route');
  const expected = new Histogram({
    name: 'x_seconds',
    help: 'Test histogram.',
    labelNames: ['route'],
    buckets: BUCKETS,
    registers: [reference],
  });
  for (const [route, value] of OBSERVED) {
    histogram.cell(route).observe(value);
    expected.observe({ route }, value);
  }
  return { cells, reference };
}

test('the exposition text is the same as prom-client histogram’s', async () => {
  const { cells, reference } = both();
  assert.equal(await cells.metrics(), await reference.metrics());
});

test('the JSON a worker reports is the same, and the fleet sums it the same', async () => {
  const { cells, reference } = both();
  const fromCells = await cells.getMetricsAsJSON();
  const fromReference = await reference.getMetricsAsJSON();
  // prom-client adds `exemplar: null` to its bucket samples (exemplars are off): not a value.
  const plain = (json: unknown): unknown =>
    JSON.parse(JSON.stringify(json, (key, value: unknown) => (key === 'exemplar' ? undefined : value)));
  assert.deepEqual(plain(fromCells), plain(fromReference));
  const summedCells = AggregatorRegistry.aggregate([fromCells, fromCells]);
  const summedReference = AggregatorRegistry.aggregate([fromReference, fromReference]);
  assert.equal(await summedCells.metrics(), await summedReference.metrics());
  assert.match(await summedCells.metrics(), /x_seconds_count\{route="chat"\} 10/);
});

test('reset forgets every series; a non-finite value is not counted', async () => {
  const registry = new Registry();
  const histogram = cellHistogram(registry, 'y_seconds', 'pool');
  histogram.cell('a').observe(Number.NaN);
  histogram.cell('a').observe(0.2);
  assert.match(await registry.metrics(), /y_seconds_count\{pool="a"\} 1\n/);
  registry.resetMetrics();
  assert.doesNotMatch(await registry.metrics(), /pool="a"/);
});
