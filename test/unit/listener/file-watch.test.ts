/**
 * The file watch behind certificate reloads: a change in a watched file's directory gives one
 * call after the debounce, the poll calls even when nothing is reported, and after close()
 * nothing calls any more (nor holds the process: the test ends without waiting for timers).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { watchFiles } from '../../../src/listener/file-watch.ts';
import { eventually } from '../../helpers/eventually.ts';

function directory(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'wsgate-watch-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('a rename in the directory gives one call after the debounce', async (t) => {
  const dir = directory(t);
  const file = join(dir, 'tls.crt');
  writeFileSync(file, 'one');
  let calls = 0;
  const watch = watchFiles([file], {
    intervalMs: 3_600_000,
    debounceMs: 50,
    onChange: () => void calls++,
    onWatchError: (_directory, error) => assert.fail(error),
  });
  t.after(() => watch.close());
  writeFileSync(join(dir, 'next'), 'two');
  writeFileSync(join(dir, 'next'), 'three');
  renameSync(join(dir, 'next'), file);
  await eventually(() => calls > 0, 'a call after the changes');
  assert.equal(calls, 1, 'the burst gave one call');
});

test('the poll calls without any event, and close() stops everything', async (t) => {
  const dir = directory(t);
  let calls = 0;
  const watch = watchFiles([join(dir, 'missing.pem')], {
    intervalMs: 20,
    debounceMs: 50,
    onChange: () => void calls++,
    onWatchError: () => {},
  });
  await eventually(() => calls >= 2, 'two polls');
  watch.close();
  const after = calls;
  // A second watch of the same file, polling as often, shows the time that passed meanwhile.
  let witnessed = 0;
  const witness = watchFiles([join(dir, 'missing.pem')], {
    intervalMs: 20,
    debounceMs: 50,
    onChange: () => void witnessed++,
    onWatchError: () => {},
  });
  t.after(() => witness.close());
  writeFileSync(join(dir, 'missing.pem'), 'now here');
  await eventually(() => witnessed >= 5, 'the second watch to see a change and polls');
  assert.equal(calls, after, 'the closed watch stayed silent');
});

test('a directory that cannot be watched is reported, and polled', async (t) => {
  const errors: string[] = [];
  let calls = 0;
  const watch = watchFiles(['/no/such/directory/tls.crt'], {
    intervalMs: 20,
    debounceMs: 50,
    onChange: () => void calls++,
    onWatchError: (dir) => errors.push(dir),
  });
  t.after(() => watch.close());
  assert.deepEqual(errors, ['/no/such/directory']);
  await eventually(() => calls >= 1, 'a poll');
});
