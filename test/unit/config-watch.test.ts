/**
 * The configuration file watch compares the file with the bytes the configuration in force was
 * read from, not with what it finds when it starts watching.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ConfigWatch } from '../../src/config-watch.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { eventually } from '../helpers/eventually.ts';

const quiet = createLogger({ level: 'silent', format: 'json' });

test('regression: a change made between the load and the start of the watch is reloaded', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wsgate-watch-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'wsgate.yaml');
  writeFileSync(file, 'routes: { b: {} }\n');
  let changes = 0;
  const watch = new ConfigWatch(file, quiet, () => changes++, 'routes: { a: {} }\n');
  t.after(() => watch.close());
  // An hour's poll: only the look at the start can see it.
  watch.follow({ watch: true, checkInterval: 3_600_000 });
  await eventually(() => changes === 1, 'the change seen when the watch starts');
});

test('the same bytes as those loaded are no change; after a reload the bytes it read are the reference', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wsgate-watch-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'wsgate.yaml');
  writeFileSync(file, 'routes: { a: {} }\n');
  let changes = 0;
  const watch = new ConfigWatch(file, quiet, () => changes++, 'routes: { a: {} }\n');
  t.after(() => watch.close());
  // The directory watch sees every write here; an hour's poll, none.
  watch.follow({ watch: true, checkInterval: 3_600_000 });
  await eventually(() => watch.looks === 1, 'the look when the watch starts');
  assert.equal(changes, 0, 'the bytes loaded are no change');
  // A reload read the file as it is now; the watch sees the write and looks.
  writeFileSync(file, 'routes: { b: {} }\n');
  watch.seen('routes: { b: {} }\n');
  await eventually(() => watch.looks === 2, 'the look after the write');
  assert.equal(changes, 0, 'what a reload read is not reported again');
  writeFileSync(file, 'routes: { c: {} }\n');
  await eventually(() => changes === 1, 'a later change is');
});
