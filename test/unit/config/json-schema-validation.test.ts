// biome-ignore-all lint/suspicious/noTemplateCurlyInString: "${NAME}" here is the configuration's reference syntax.
/**
 * docs/config.schema.json checked with a real validator (ajv, the draft the file declares), the
 * way an editor checks a YAML file against it: the example and every valid fixture pass, values
 * written as `${ENV}` references pass wherever the loader expands them, and plain mistakes fail.
 * Each document is also given to the loader, so the two are seen to agree on every case.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, it } from 'node:test';
import { Ajv } from 'ajv';
import { parse } from 'yaml';
import { z } from 'zod';
import { CONFIG_JSON_SCHEMA_PATH, inputJsonSchema } from '../../../scripts/config-json-schema.ts';
import { ConfigError } from '../../../src/config/config-error.ts';
import { parseConfigText } from '../../../src/config/load.ts';

const ROOT = resolve(import.meta.dirname, '../../..');
const VALID_DIR = resolve(ROOT, 'test/fixtures/configs/valid');

// strict: the schema itself must be clean (no unknown keywords, no type mistakes). zod pairs each
// string format it emits with a pattern, which is what gets checked; formats themselves are not.
const ajv = new Ajv({ strict: true, allErrors: true, allowUnionTypes: true, validateFormats: false });
const validate = ajv.compile(JSON.parse(readFileSync(CONFIG_JSON_SCHEMA_PATH, 'utf8')));

function schemaErrors(text: string): string[] {
  if (validate(parse(text))) return [];
  return (validate.errors ?? []).map((error) => `${error.instancePath} ${error.message ?? ''}`);
}

/** The environment the documents below are loaded with. */
const ENV = { PORT: '8081', ENABLED: 'false', FORMAT: 'pretty', DOMAIN: 'example.com', PREFIX: '/ws' };

function loaderAccepts(text: string, baseDir = ROOT): boolean {
  try {
    parseConfigText(text, { file: 'test.yaml', baseDir, env: ENV });
    return true;
  } catch (error) {
    if (error instanceof ConfigError) return false;
    throw error;
  }
}

/** A valid configuration with `changes` (YAML lines) in its top level, its listener and its route. */
function document(changes: { readonly listener?: string; readonly top?: string; readonly route?: string }) {
  return [
    changes.top ?? '',
    'listeners:',
    '  public:',
    `    ${changes.listener ?? 'port: 8080'}`,
    'routes:',
    '  echo:',
    '    pool: echo',
    `    ${changes.route ?? 'path: /'}`,
    'pools:',
    '  echo:',
    '    backends: [http://127.0.0.1:9001]',
    '',
  ].join('\n');
}

describe('docs/config.schema.json, checked by ajv', () => {
  it('accepts config.example.yaml', () => {
    const text = readFileSync(resolve(ROOT, 'config.example.yaml'), 'utf8');
    assert.deepEqual(schemaErrors(text), []);
    assert.ok(text.includes('${WSGATE_LOG_FORMAT:-json}'), 'the example still shows a reference in an enum');
  });

  it('accepts every valid fixture', () => {
    const names = readdirSync(VALID_DIR).filter((name) => name.endsWith('.yaml'));
    assert.ok(names.length >= 2);
    for (const name of names) {
      const text = readFileSync(resolve(VALID_DIR, name), 'utf8');
      assert.deepEqual(schemaErrors(text), [], name);
      assert.ok(loaderAccepts(text, VALID_DIR), `the loader accepts ${name}`);
    }
  });

  const references: Record<string, string> = {
    'a number': document({ listener: 'port: ${PORT}' }),
    'a number with a default': document({ listener: 'port: ${UNSET_PORT:-8080}' }),
    'a boolean': document({ top: 'admin:\n  enabled: ${ENABLED:-true}' }),
    'an enum': document({ top: 'log:\n  format: ${FORMAT:-json}' }),
    'a duration': document({ listener: 'port: 8080\n    handshakeTimeout: ${TIMEOUT:-10s}' }),
    'a host pattern': document({ route: 'hosts: ["chat.${DOMAIN}", "*.${DOMAIN}"]' }),
    'a path pattern': document({ route: 'path: ${PREFIX}/chat' }),
    'a host in capitals (lower-cased by the loader)': document({ route: 'hosts: [Chat.Example.COM]' }),
  };
  for (const [what, text] of Object.entries(references)) {
    it(`accepts ${what}`, () => {
      assert.deepEqual(schemaErrors(text), []);
      assert.ok(loaderAccepts(text), 'the loader accepts it too');
    });
  }

  const mistakes: Record<string, string> = {
    'a wrong type': document({ listener: 'port: [8080]' }),
    'a boolean written as a word': document({ top: 'admin: { enabled: "yes" }' }),
    'an unknown key': document({ listener: 'port: 8080\n    prot: 8081' }),
    'an unknown top-level key': document({ top: 'logging: { level: info }' }),
    'a value outside an enum': document({ top: 'log: { level: loud }' }),
    'text where a number is expected': document({ listener: 'port: "abc"' }),
    'a number out of range': document({ listener: 'port: 70000' }),
    'text around a reference where a number is expected': document({ listener: 'port: 80${PORT}' }),
    'an unterminated reference': document({ listener: 'port: "${PORT"' }),
    'an escaped reference, which is literal text': document({ top: 'log: { level: "$${LEVEL}" }' }),
    'a reference with an invalid name': document({ top: 'log: { level: "${1LEVEL}" }' }),
    'a duration without a unit': document({ listener: 'port: 8080\n    handshakeTimeout: 10' }),
    'a host with a space': document({ route: 'hosts: ["chat example.com"]' }),
    'a path without its leading slash': document({ route: 'path: chat' }),
  };
  for (const [what, text] of Object.entries(mistakes)) {
    it(`rejects ${what}`, () => {
      assert.notDeepEqual(schemaErrors(text), []);
      assert.ok(!loaderAccepts(text), 'the loader rejects it too');
    });
  }
});

describe('the generator on field kinds the configuration may gain', () => {
  const schema = z.strictObject({
    count: z.number().int().min(1).max(9).optional(),
    ratio: z.number().nullable().optional(),
    mode: z.literal('fast').optional(),
    flags: z.array(z.boolean()).optional(),
    kind: z.union([z.enum(['a', 'b']), z.number()]).optional(),
    mail: z.email().optional(),
    code: z
      .string()
      .toUpperCase()
      .regex(/^[A-Z]{3}$/)
      .optional(),
    slug: z
      .string()
      .trim()
      .regex(/^[a-z]+$/)
      .optional(),
    nested: z.strictObject({ on: z.boolean().default(false) }).optional(),
    byName: z.record(z.string().regex(/^[a-z]+$/), z.number()).optional(),
  });
  const check = new Ajv({
    strict: true,
    allErrors: true,
    allowUnionTypes: true,
    validateFormats: false,
  }).compile(inputJsonSchema(schema));

  it('accepts a reference wherever a scalar is checked', () => {
    const value = {
      count: '${COUNT}',
      ratio: '${RATIO:-}',
      mode: '${MODE:-fast}',
      flags: ['${FLAG}', true],
      kind: '${KIND}',
      mail: 'ops@${DOMAIN}',
      code: '${CODE}',
      slug: '${SLUG}',
      nested: { on: '${ON:-true}' },
      byName: { a: '${A}' },
    };
    assert.ok(check(value), JSON.stringify(check.errors));
  });

  it('accepts values as written that the schema normalizes before checking', () => {
    const value = { code: 'eur', slug: '  abc  ' };
    assert.ok(schema.safeParse(value).success);
    assert.ok(check(value), JSON.stringify(check.errors));
  });

  it('still rejects plain mistakes, as zod does', () => {
    const mistakes = [
      { count: 'many' },
      { count: 10 },
      { count: '9${N}' },
      { mode: 'slow' },
      { flags: ['yes'] },
      { kind: 'c' },
      { mail: 'not an address' },
      { code: 'EURO' },
      { nested: { on: 'on' } },
      { byName: { A: 1 } },
      { unknown: 1 },
    ];
    for (const value of mistakes) {
      assert.ok(!check(value), `${JSON.stringify(value)} is rejected`);
      assert.ok(!schema.safeParse(value).success, `zod rejects ${JSON.stringify(value)} too`);
    }
  });
});
