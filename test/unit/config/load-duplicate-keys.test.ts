/**
 * Duplicate keys: the loader finds them with a set per mapping (yaml's own check is quadratic in
 * the size of a mapping) and reports exactly the duplicates, at exactly the positions, that yaml's
 * `uniqueKeys` check reports, in every kind of mapping; a large route table loads whole.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LineCounter, parseDocument } from 'yaml';
import { ConfigError } from '../../../src/config/config-error.ts';
import { parseConfigText } from '../../../src/config/load.ts';

const OPTIONS = { file: 'test.yaml', baseDir: '.', env: {} };

/** `line:column` of every duplicate key the loader reports for `text`. */
function loaderDuplicates(text: string): string[] {
  try {
    parseConfigText(text, OPTIONS);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    return error.problems
      .filter((problem) => problem.message.startsWith('duplicate key'))
      .map((problem) => `${problem.line}:${problem.column}`);
  }
  return [];
}

/** `line:column` of every duplicate key yaml's own check finds in `text`. */
function yamlDuplicates(text: string): string[] {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: false });
  return doc.errors
    .filter((error) => error.code === 'DUPLICATE_KEY')
    .map((error) => {
      const { line, col } = lines.linePos(error.pos[0]);
      return `${line}:${col}`;
    })
    .sort();
}

const CASES = [
  'a: 1\na: 2\n',
  'a: 1\n"a": 2\n',
  'a: 1\n!!str a: 2\n',
  'a: 1\n&x a: 2\n',
  ': 1\n: 2\n',
  '? a\n: 1\n? a\n: 2\n',
  '{a: 1, a: 2}',
  'x: {a: 1, "a": 2}\n',
  '1: a\n"1": b\n',
  '1: a\n1: b\n',
  '.nan: a\n.nan: b\n',
  'null: a\n~: b\n',
  'a:\n  - {b: 1, b: 2}\n',
  '[a: 1, a: 2]',
  '? {k: 1, k: 2}\n: v\n',
  'routes:\n  r1: {pool: p}\n  r2: {pool: p}\n  r1: {pool: q}\n',
  'a: &m {x: 1}\nb: *m\nc: {x: 1, y: 2}\n',
];

/** A configuration whose routes are `routes` (YAML lines), after one listener and one pool. */
function withRoutes(routes: readonly string[]): string {
  return [
    'listeners:',
    '  l: { port: 0 }',
    'pools:',
    '  p: { backends: [http://127.0.0.1:1] }',
    'routes:',
    ...routes,
    '',
  ].join('\n');
}

describe('duplicate keys', () => {
  for (const text of CASES) {
    it(`are the ones yaml finds in ${JSON.stringify(text)}`, () => {
      assert.deepEqual(loaderDuplicates(text).sort(), yamlDuplicates(text));
    });
  }

  it('are found among thousands of routes, at their line', () => {
    const routes = Array.from({ length: 5_000 }, (_, index) => `  r${index}: { pool: p }`);
    routes.splice(4_321, 0, '  r17: { pool: p }');
    assert.deepEqual(loaderDuplicates(withRoutes(routes)), [`${4_321 + 6}:3`]);
  });

  it('do not stop a large route table from loading whole', () => {
    const routes = Array.from({ length: 5_000 }, (_, index) => `  r${index}: { path: /r${index}, pool: p }`);
    const config = parseConfigText(withRoutes(routes), OPTIONS);
    assert.equal(Object.keys(config.routes).length, 5_000);
    assert.equal(config.routes.r4999?.path, '/r4999');
  });
});
