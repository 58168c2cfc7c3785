/**
 * Count cells: counts kept as plain numbers reach prom-client when metrics are collected, a
 * counter by what was counted since the last collection, a gauge by its current value.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Counter, Gauge, Registry } from 'prom-client';
import { CountCells } from '../../../src/observability/count-cells.ts';

test('a counter fed from cells gets each increase once, collection after collection', async () => {
  const registry = new Registry();
  const cells = new CountCells();
  const counter: Counter<'route'> = new Counter({
    name: 'test_total',
    help: 'h',
    labelNames: ['route'],
    registers: [registry],
    collect: () => cells.addTo(counter),
  });
  let made = 0;
  const labels = (route: string) => () => {
    made++;
    return { route };
  };
  const a = cells.cell('a', labels('a'));
  a.value += 3;
  assert.equal(cells.cell('a', labels('a')), a, 'one cell per key');
  cells.cell('b', labels('b')).value++;
  const values = async () =>
    Object.fromEntries((await counter.get()).values.map((v) => [v.labels.route, v.value]));
  assert.deepEqual(await values(), { a: 3, b: 1 });
  assert.deepEqual(await values(), { a: 3, b: 1 }, 'a second collection adds nothing');
  a.value++;
  counter.inc({ route: 'a' }, 10); // a direct increase is kept beside the cell's
  assert.deepEqual(await values(), { a: 14, b: 1 });
  assert.equal(made, 2, 'the labels of a key are made once');
});

test('a gauge fed from cells reads their current values, down to zero', async () => {
  const registry = new Registry();
  const cells = new CountCells();
  const gauge: Gauge<'pool'> = new Gauge({
    name: 'test_open',
    help: 'h',
    labelNames: ['pool'],
    registers: [registry],
    collect: () => cells.setOn(gauge),
  });
  const open = cells.cell('p', () => ({ pool: 'p' }));
  open.value += 2;
  assert.equal((await gauge.get()).values[0]?.value, 2);
  open.value -= 2;
  assert.equal((await gauge.get()).values[0]?.value, 0);
});
