/**
 * Golden files for invalid configurations: each `<name>.yaml` under
 * test/fixtures/configs/invalid has a `<name>.expected.txt` holding the exact problem list.
 * Run with WSGATE_UPDATE_GOLDEN=1 to rewrite the expected files after an intended change, then
 * review the diff.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError } from '../../../src/config/config-error.ts';
import { parseConfigText } from '../../../src/config/load.ts';

const DIR = resolve(import.meta.dirname, '../../fixtures/configs/invalid');
const UPDATE = process.env.WSGATE_UPDATE_GOLDEN === '1';
/** The environment every golden case sees: one variable set to empty, to exercise `:-`. */
const ENV = { WSGATE_TEST_ADDRESS: '' };

function formatted(name: string): string {
  const text = readFileSync(resolve(DIR, name), 'utf8');
  try {
    parseConfigText(text, { file: name, baseDir: DIR, env: ENV });
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    // Messages may name absolute paths under the fixture directory; keep the files portable.
    return `${error.format().replaceAll(DIR, '<dir>')}\n`;
  }
  assert.fail(`${name} loaded without problems`);
}

const cases = readdirSync(DIR)
  .filter((name) => name.endsWith('.yaml'))
  .sort();

describe('invalid configuration golden files', () => {
  it('has the cases the loader promises to explain', () => {
    for (const name of [
      'yaml-syntax',
      'duplicate-key',
      'unknown-key',
      'wrong-types',
      'bad-duration',
      'bad-size',
      'zero-timeout',
      'duration-overflow',
      'header-size',
      'backend-scheme',
      'backend-path',
      'missing-pool',
      'trusted-proxy',
      'port-conflict',
      'close-spread',
      'missing-cert',
      'unset-env',
      'empty',
      'many-problems',
    ]) {
      assert.ok(cases.includes(`${name}.yaml`), `missing golden case ${name}`);
    }
  });

  for (const name of cases) {
    it(name, () => {
      const expectedFile = resolve(DIR, name.replace(/\.yaml$/, '.expected.txt'));
      const actual = formatted(name);
      if (UPDATE) writeFileSync(expectedFile, actual);
      assert.equal(actual, readFileSync(expectedFile, 'utf8'));
    });
  }

  it('reports every problem of a file, sorted by position', () => {
    const lines = formatted('many-problems.yaml').trimEnd().split('\n');
    assert.ok(lines.length >= 8);
    const positions = lines.map((line) => {
      const match = /^many-problems\.yaml:(\d+):(\d+)/.exec(line);
      assert.ok(match, line);
      return Number(match[1]) * 10_000 + Number(match[2]);
    });
    assert.deepEqual(
      positions,
      [...positions].sort((a, b) => a - b),
    );
  });
});
