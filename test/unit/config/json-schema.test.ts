import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, it } from 'node:test';
import {
  CONFIG_JSON_SCHEMA_PATH,
  configJsonSchema,
  DURATION_PATTERN,
  renderConfigJsonSchema,
  SIZE_PATTERN,
} from '../../../scripts/config-json-schema.ts';
import { RANGE_META } from '../../../src/config/schema.ts';
import { parseDuration, parseSize } from '../../../src/config/units.ts';

const ROOT = resolve(import.meta.dirname, '../../..');

/** Every field path of the JSON Schema, as written in the docs: `pools.<name>.backends[].url`. */
function fieldPaths(node: unknown, prefix = ''): string[] {
  if (typeof node !== 'object' || node === null) return [];
  const schema = node as Record<string, unknown>;
  const paths: string[] = [];
  const properties = schema.properties;
  if (typeof properties === 'object' && properties !== null) {
    for (const [key, child] of Object.entries(properties)) {
      const path = prefix === '' ? key : `${prefix}.${key}`;
      paths.push(path, ...fieldPaths(child, path));
    }
  }
  if (typeof schema.additionalProperties === 'object') {
    paths.push(...fieldPaths(schema.additionalProperties, `${prefix}.<name>`));
  }
  if (typeof schema.items === 'object') paths.push(...fieldPaths(schema.items, `${prefix}[]`));
  for (const option of Array.isArray(schema.anyOf) ? schema.anyOf : [])
    paths.push(...fieldPaths(option, prefix));
  return paths;
}

describe('docs/config.schema.json', () => {
  it('is what scripts/config-json-schema.ts generates (run it after changing the schema)', () => {
    assert.equal(readFileSync(CONFIG_JSON_SCHEMA_PATH, 'utf8'), renderConfigJsonSchema());
  });

  it('describes the input: units as strings, required fields, no unknown keys', () => {
    const schema = configJsonSchema();
    assert.deepEqual(schema.required, ['listeners', 'routes', 'pools']);
    assert.equal(schema.additionalProperties, false);
    const text = JSON.stringify(schema);
    assert.ok(!text.includes('"format":"starts_with"'));
    assert.ok(text.includes('"default":"30s"'));
  });

  it('states the range of durations and sizes in their descriptions', () => {
    const text = JSON.stringify(configJsonSchema());
    assert.ok(!text.includes(RANGE_META));
    assert.ok(text.includes('Range: 1ms–596h.'));
    assert.ok(text.includes('Range: 0s–596h.'));
    assert.ok(text.includes('Range: 1KiB–1MiB.'));
  });

  it('uses patterns that accept exactly what the unit parsers accept', () => {
    const duration = new RegExp(DURATION_PATTERN);
    const size = new RegExp(SIZE_PATTERN);
    const samples = ['250ms', '30s', '5m', '1h', '1.5s', ' 10 s ', '10', '1d', '10S', '-1s', '1.s', 's', ''];
    const sizes = [
      '512B',
      '64KiB',
      '16MiB',
      '1GiB',
      '64KB',
      '1.5KiB',
      '16k',
      '16kib',
      '1TB',
      '-1B',
      'KiB',
      '',
    ];
    for (const text of [...samples, ...sizes]) {
      assert.equal(
        duration.test(text),
        parseDuration(text) !== undefined,
        `duration ${JSON.stringify(text)}`,
      );
      assert.equal(size.test(text), parseSize(text) !== undefined, `size ${JSON.stringify(text)}`);
    }
  });
});

describe('configuration documentation', () => {
  const fields = fieldPaths(configJsonSchema());

  it('lists every field in the reference of docs/configuration.md', () => {
    const docs = readFileSync(resolve(ROOT, 'docs/configuration.md'), 'utf8');
    assert.ok(fields.length > 30);
    for (const field of fields)
      assert.ok(docs.includes(`\`${field}\``), `docs/configuration.md lacks ${field}`);
  });

  it('shows every field in config.example.yaml, set or commented out', () => {
    const example = readFileSync(resolve(ROOT, 'config.example.yaml'), 'utf8');
    for (const field of fields) {
      const key =
        field
          .split(/[.[\]]+/)
          .filter((part) => part !== '' && part !== '<name>')
          .pop() ?? field;
      assert.match(example, new RegExp(`^[ #]*(- )?${key}:`, 'm'), `config.example.yaml lacks ${field}`);
    }
  });
});
