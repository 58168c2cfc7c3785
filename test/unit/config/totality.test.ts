// biome-ignore-all lint/suspicious/noTemplateCurlyInString: "${NAME}" here is the configuration's reference syntax.
/**
 * Loading is total: whatever the text, the loader returns a Config or throws a ConfigError whose
 * problems all have a sensible position, never another exception and never the catch-all.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { stringify } from 'yaml';
import { ConfigError } from '../../../src/config/config-error.ts';
import { parseConfigText } from '../../../src/config/load.ts';

const ROOT = resolve(import.meta.dirname, '../../..');
const EXAMPLE = readFileSync(resolve(ROOT, 'config.example.yaml'), 'utf8');
const ENV = { SET: '8080', EMPTY: '' };

function assertTotal(text: string): void {
  try {
    parseConfigText(text, { file: 'fuzz.yaml', baseDir: ROOT, env: ENV });
  } catch (error) {
    assert.ok(error instanceof ConfigError, `not a ConfigError: ${String(error)}`);
    assert.ok(error.problems.length > 0);
    const lineCount = text.split('\n').length;
    for (const problem of error.problems) {
      assert.ok(!problem.message.startsWith('unexpected failure'), problem.message);
      assert.ok(
        problem.line >= 0 && problem.line <= lineCount + 1,
        `${problem.message}: line ${problem.line} of ${lineCount}`,
      );
      assert.ok(problem.column >= 0, `${problem.message}: column ${problem.column}`);
    }
  }
}

const fragments = fc.constantFrom(
  'listeners:',
  'routes:',
  'pools:',
  '  a:',
  '    port: 8080',
  '    port: ${SET}',
  '    port: ${UNSET}',
  '    backends: [http://a:1]',
  '    backends:',
  '      - url: http://b:2',
  '      - 5',
  '    pool: a',
  '    tls: {cert: x.pem, key: y.pem}',
  '  trustedProxies: [10.0.0.0/8, x]',
  'forwarding:',
  '? [a]',
  ': 1',
  '&x a: *x',
  '*y',
  '---',
  '- item',
  '"unterminated',
  '\t tab',
  '__proto__: {}',
  'constructor: 1',
  '!!int x',
  '{ a: [ }',
);

describe('configuration loading is total', () => {
  it('survives arbitrary text', () => {
    fc.assert(fc.property(fc.string({ maxLength: 200 }), assertTotal), { numRuns: 300 });
  });

  it('survives lines of plausible configuration in any order', () => {
    fc.assert(
      fc.property(fc.array(fragments, { maxLength: 20 }), (lines) => assertTotal(lines.join('\n'))),
      { numRuns: 500 },
    );
  });

  it('survives arbitrary YAML data', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => assertTotal(stringify(value))),
      { numRuns: 300 },
    );
  });

  it('survives the example with characters deleted or inserted', () => {
    fc.assert(
      fc.property(
        fc.nat({ max: EXAMPLE.length - 1 }),
        fc.nat({ max: 20 }),
        fc.string({ maxLength: 5 }),
        (at, remove, insert) => assertTotal(EXAMPLE.slice(0, at) + insert + EXAMPLE.slice(at + remove)),
      ),
      { numRuns: 300 },
    );
  });
});
