// biome-ignore-all lint/suspicious/noTemplateCurlyInString: "${NAME}" here is the configuration's reference syntax.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, it } from 'node:test';
import { caseInsensitivePattern } from '../../../scripts/case-insensitive-pattern.ts';
import {
  CONFIG_JSON_SCHEMA_PATH,
  configJsonSchema,
  DURATION_PATTERN,
  ENV_REFERENCE_PATTERN,
  ENV_TEMPLATE_PATTERN,
  renderConfigJsonSchema,
  SIZE_PATTERN,
} from '../../../scripts/config-json-schema.ts';
import { type Environment, expandString } from '../../../src/config/env.ts';
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

/** Every variable is set, to a value no sample contains: a substitution shows in the result. */
const SUBSTITUTE = '\u0000';
const EVERY_VARIABLE_SET: Environment = new Proxy({}, { get: () => SUBSTITUTE });

/** Text with references, escapes and near misses, to compare the patterns with env.ts on. */
const REFERENCE_SAMPLES = [
  '${PORT}',
  '${PORT:-8080}',
  '${PORT:-}',
  '${_A1}',
  '${A:-a:-b}',
  '${A:-$x}',
  '${A:-x$}',
  '${A:-${B}}',
  '${A:-$${B}',
  '${1A}',
  '${A-x}',
  '${A:x}',
  '${}',
  '${ A}',
  '${A',
  '$${A}',
  '$$${A}',
  '$$$${A}',
  '$${A}${B}',
  'x${A}',
  '${A}x',
  '${A}${B}',
  '80${PORT}',
  'chat.${DOMAIN}',
  '${PREFIX}/chat',
  '$A',
  '$',
  'a$b{c}',
  '{A}',
  '${1}${A}',
  '${A:-}}',
  'plain',
  '',
];

describe('${ENV} references in the JSON Schema', () => {
  it('single-reference pattern: exactly the values env.ts re-reads as YAML after expanding', () => {
    const pattern = new RegExp(ENV_REFERENCE_PATTERN, 'u');
    for (const text of REFERENCE_SAMPLES) {
      const expansion = expandString(text, EVERY_VARIABLE_SET);
      const retyped = expansion.single && expansion.problems.length === 0;
      assert.equal(pattern.test(text), retyped, JSON.stringify(text));
    }
  });

  it('template pattern: exactly the strings in which env.ts substitutes a reference', () => {
    const pattern = new RegExp(ENV_TEMPLATE_PATTERN, 'u');
    for (const text of REFERENCE_SAMPLES) {
      const substituted = expandString(text, EVERY_VARIABLE_SET).text.includes(SUBSTITUTE);
      assert.equal(pattern.test(text), substituted, JSON.stringify(text));
    }
  });

  it('lets numbers, booleans, enums and patterned strings take a reference, but not map keys', () => {
    const text = JSON.stringify(configJsonSchema());
    const port = JSON.stringify(configJsonSchema().properties);
    assert.ok(
      port.includes('{"type":"integer","minimum":0,"maximum":65535},{"$ref":"#/definitions/envReference"}'),
    );
    assert.ok(text.includes('{"type":"boolean"},{"$ref":"#/definitions/envReference"}'));
    assert.ok(text.includes('"enum":["json","pretty"]},{"$ref":"#/definitions/envTemplate"}'));
    assert.ok(text.includes('"propertyNames":{"type":"string","pattern":"^[A-Za-z0-9][A-Za-z0-9_.-]*$"}'));
  });
});

describe('caseInsensitivePattern', () => {
  const HOST = '^(\\*\\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$';

  it('matches what the original matches after lower-casing, for a host pattern', () => {
    const original = new RegExp(HOST, 'u');
    const rewritten = new RegExp(caseInsensitivePattern(HOST) ?? 'missing', 'u');
    const samples = [
      'chat.example.com',
      'Chat.Example.COM',
      '*.EU.example.com',
      'a-b.c',
      'A-',
      '-a',
      'a b',
      '',
      'É.com',
    ];
    for (const text of samples) {
      assert.equal(rewritten.test(text), original.test(text.toLowerCase()), JSON.stringify(text));
    }
  });

  it('behaves like the i flag on classes, ranges, escapes and quantifiers', () => {
    const cases = [
      '[x-]',
      '[-x]',
      '[^a-c]+',
      '[!-~]',
      '[A-z]',
      '\\.x{2,3}',
      '(?:ab|c)\\d\\w',
      '[\\]a]',
      'é',
      '[é]',
    ];
    const samples = [
      'x',
      'X',
      '-',
      'B',
      'b',
      'Q',
      '.xX',
      '.XXX',
      'AB1_',
      'C9z',
      ']',
      'A',
      'É',
      'é',
      '~',
      '[',
    ];
    for (const pattern of cases) {
      const rewritten = caseInsensitivePattern(pattern);
      assert.ok(rewritten !== undefined, pattern);
      const expected = new RegExp(pattern, 'iu');
      for (const text of samples) {
        assert.equal(new RegExp(rewritten, 'u').test(text), expected.test(text), `${pattern} on ${text}`);
      }
    }
  });

  it('gives up on syntax it cannot rewrite faithfully', () => {
    for (const pattern of [
      '\\u0041',
      '\\x41',
      '\\p{L}',
      '(?<name>a)\\k<name>',
      '(a)\\1',
      '[\\u0041-Z]',
      '[À-ÿ]',
      'ß',
    ]) {
      assert.equal(caseInsensitivePattern(pattern), undefined, pattern);
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
