/**
 * Every launcher starts Node.js with the gateway's flags (src/runtime-flags.ts): the image's
 * entrypoint, the npm scripts that run the gateway, the shared-harness plug-in, and (through the
 * constant) the demo and the benchmarks. A launcher without them would run the gateway with
 * Node's default young generation and about twice the memory per idle connection.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { NODE_FLAGS } from '../../src/runtime-flags.ts';

const root = join(import.meta.dirname, '../..');
const read = (file: string): string => readFileSync(join(root, file), 'utf8');

test("the image's entrypoint starts node with the runtime flags before the gateway", () => {
  const entrypoint = read('Dockerfile').match(/^ENTRYPOINT (\[.*\])$/m)?.[1];
  assert.ok(entrypoint, 'the Dockerfile has an ENTRYPOINT in exec form');
  assert.deepEqual(JSON.parse(entrypoint), ['node', ...NODE_FLAGS, '/app/dist/cli.js']);
});

test('the npm scripts that run the gateway pass the runtime flags', () => {
  const { scripts } = JSON.parse(read('package.json')) as { scripts: Record<string, string> };
  for (const name of ['start', 'wsgate']) {
    assert.match(scripts[name] ?? '', new RegExp(`^exec node ${NODE_FLAGS.join(' ')} src/cli\\.ts`), name);
  }
});

test('the shared-harness plug-in starts the gateway with the runtime flags', () => {
  const plugin = read('bench/shared-harness/wsgate.sh');
  assert.ok(plugin.includes(`exec "$WSGATE_NODE" ${NODE_FLAGS.join(' ')} "$GATEWAY_DIR/src/cli.ts"`));
});

test('the demo and the benchmarks take the flags from the one constant', () => {
  for (const file of ['demo/demo.ts', 'bench/targets.ts']) {
    assert.ok(read(file).includes('...NODE_FLAGS,'), file);
  }
});
