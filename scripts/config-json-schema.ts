// biome-ignore-all lint/suspicious/noTemplateCurlyInString: "${NAME}" here is the configuration's reference syntax.
/**
 * Generates `docs/config.schema.json`, the JSON Schema of the configuration file as written (the
 * input side of the zod schema), for editors that complete and check YAML. Durations and sizes get
 * the patterns the loader accepts, and their ranges in the description. Every value the loader
 * would read after `${ENV}` expansion (numbers, booleans, enums, strings with a pattern) also
 * accepts a `${...}` reference, since the loader expands references before validation; patterns
 * of strings the schema lower-cases first accept either case. A test compares the committed file
 * with this output, so the two cannot drift apart.
 *
 *   node scripts/config-json-schema.ts           write docs/config.schema.json
 *   node scripts/config-json-schema.ts --stdout  print it instead
 *   node scripts/config-json-schema.ts --check   exit 1 when the committed file is stale
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { z } from 'zod';
import { KIND_META } from '../src/config/measures.ts';
import { createConfigSchema, RANGE_META } from '../src/config/schema.ts';
import { caseInsensitivePattern } from './case-insensitive-pattern.ts';

/** Where the generated schema is committed. */
export const CONFIG_JSON_SCHEMA_PATH = resolve(import.meta.dirname, '..', 'docs', 'config.schema.json');

/** Patterns equivalent to what `parseDuration` and `parseSize` accept (a test keeps them in step). */
export const DURATION_PATTERN = '^\\s*\\d+(\\.\\d+)?\\s*(ms|s|m|h)\\s*$';
export const SIZE_PATTERN = '^\\s*\\d+(\\.\\d+)?\\s*(B|KiB|MiB|GiB|KB|MB|GB)\\s*$';

/** `format` values JSON Schema defines; zod also emits its own (e.g. "starts_with"), which editors reject. */
const STANDARD_FORMATS = new Set([
  'date-time',
  'date',
  'time',
  'duration',
  'email',
  'hostname',
  'ipv4',
  'ipv6',
  'uri',
  'uuid',
]);

/** A `${NAME}` or `${NAME:-default}` reference as env.ts reads it (a default holds no `${`). */
const REFERENCE = '\\$\\{[A-Za-z_][A-Za-z0-9_]*(:-([^}$]|\\$(?!\\{))*)?\\}';
/**
 * A value that is exactly one reference: after expansion the loader reads it again as YAML, so it
 * can become a number or a boolean.
 */
export const ENV_REFERENCE_PATTERN = `^${REFERENCE}$`;
/**
 * A string holding at least one reference, read the way env.ts reads it from the left: `$${` is a
 * literal `${`, a reference ends at the first `}`, any other `$` is itself.
 */
export const ENV_TEMPLATE_PATTERN = `^([^$]|\\$\\$\\{|\\$(?!\\{|\\$\\{)|\\$\\{[^}]*\\})*${REFERENCE}`;

/** Where the two reference schemas live in the generated file. */
const ENV_REFERENCE_REF = '#/definitions/envReference';
const ENV_TEMPLATE_REF = '#/definitions/envTemplate';
const ENV_DEFINITIONS = {
  envReference: {
    description:
      'A ${NAME} or ${NAME:-default} reference to an environment variable, replaced by its value before the file is checked.',
    type: 'string',
    pattern: ENV_REFERENCE_PATTERN,
  },
  envTemplate: {
    description:
      'Text with ${NAME} or ${NAME:-default} references to environment variables, replaced by their values before the file is checked.',
    type: 'string',
    pattern: ENV_TEMPLATE_PATTERN,
  },
};

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** `pattern` (anchored, allowing spaces around) that also accepts `off`. */
function orOff(pattern: string): string {
  return `^\\s*(off|${pattern.slice('^\\s*'.length, -'\\s*$'.length)})\\s*$`;
}

function annotate(node: unknown): void {
  if (Array.isArray(node)) {
    for (const item of node) annotate(item);
    return;
  }
  if (!isRecord(node)) return;
  if (typeof node.format === 'string' && !STANDARD_FORMATS.has(node.format)) delete node.format;
  // The range is not a JSON Schema keyword: it becomes words in the description.
  const range = typeof node[RANGE_META] === 'string' ? ` Range: ${node[RANGE_META]}.` : '';
  delete node[RANGE_META];
  const kind = typeof node[KIND_META] === 'string' ? node[KIND_META] : undefined;
  delete node[KIND_META];
  if (node.type === 'string' && kind !== undefined) {
    const description = typeof node.description === 'string' ? `${node.description} ` : '';
    const off = kind.endsWith('|off');
    const [pattern, words] = kind.startsWith('duration')
      ? [DURATION_PATTERN, 'A duration: 250ms, 30s, 5m, 1h']
      : [SIZE_PATTERN, 'A size: 512B, 64KiB, 16MiB (or decimal 64KB)'];
    node.pattern = off ? orOff(pattern) : pattern;
    node.description = `${description}${words}${off ? ', or off' : ''}.${range}`;
  }
  for (const value of Object.values(node)) annotate(value);
}

/** Keywords that describe a value without constraining it: they stay outside the `anyOf`. */
const ANNOTATIONS = new Set([
  'title',
  'description',
  'default',
  'examples',
  'deprecated',
  'readOnly',
  'writeOnly',
  '$comment',
]);
/** Types a single reference can turn into when the loader reads the expanded text as YAML again. */
const RETYPED = new Set(['number', 'integer', 'boolean', 'null']);
/** Keywords that restrict which strings are accepted. */
const STRING_CONSTRAINTS = ['pattern', 'format', 'enum', 'const', 'minLength', 'maxLength', 'allOf'];
/** Keywords holding one subschema, and those holding a list or a map of them. */
const SUBSCHEMA = ['additionalProperties', 'items', 'additionalItems', 'contains', 'if', 'then', 'else'];
const SUBSCHEMA_LISTS = ['anyOf', 'oneOf', 'allOf', 'items', 'prefixItems'];
const SUBSCHEMA_MAPS = ['properties', 'patternProperties', 'definitions', '$defs'];

function typesOf(node: Record<string, unknown>): string[] {
  if (typeof node.type === 'string') return [node.type];
  if (Array.isArray(node.type)) return node.type.filter((type) => typeof type === 'string');
  // An enum or const without a type: the types of its values.
  const values = Array.isArray(node.enum) ? node.enum : 'const' in node ? [node.const] : [];
  return values.map((value) => (value === null ? 'null' : typeof value));
}

/** The reference schema a scalar needs next to it, if the loader may accept a reference there. */
function referenceFor(node: Record<string, unknown>): string | undefined {
  const types = typesOf(node);
  if (types.includes('string')) {
    return STRING_CONSTRAINTS.some((keyword) => keyword in node) ? ENV_TEMPLATE_REF : undefined;
  }
  return types.some((type) => RETYPED.has(type)) ? ENV_REFERENCE_REF : undefined;
}

/**
 * Lets every scalar that a `${...}` reference could stand for accept one, in place: the node's
 * constraints move into the first branch of an `anyOf` whose second branch is the reference, and
 * its description and default stay where editors show them. Map keys (`propertyNames`) are never
 * expanded, so they are left alone.
 */
function acceptEnvReferences(node: unknown): void {
  if (!isRecord(node)) return;
  const reference = referenceFor(node);
  if (reference !== undefined) {
    const constraints: Record<string, unknown> = {};
    for (const [keyword, value] of Object.entries(node)) {
      if (ANNOTATIONS.has(keyword)) continue;
      constraints[keyword] = value;
      delete node[keyword];
    }
    node.anyOf = [constraints, { $ref: reference }];
    return;
  }
  for (const keyword of SUBSCHEMA) acceptEnvReferences(node[keyword]);
  for (const keyword of SUBSCHEMA_LISTS) {
    const list = node[keyword];
    if (Array.isArray(list)) for (const item of list) acceptEnvReferences(item);
  }
  for (const keyword of SUBSCHEMA_MAPS) {
    const map = node[keyword];
    if (isRecord(map)) for (const child of Object.values(map)) acceptEnvReferences(child);
  }
}

/**
 * Loosens the constraints of a string that the schema normalizes before checking them, so that they
 * hold for the text as written: case-insensitive patterns after a change of case, none otherwise.
 */
function relaxNormalized(node: Record<string, unknown>, caseOnly: boolean): void {
  const relaxPattern = (schema: Record<string, unknown>) => {
    if (typeof schema.pattern !== 'string') return;
    const rewritten = caseOnly ? caseInsensitivePattern(schema.pattern) : undefined;
    if (rewritten === undefined) delete schema.pattern;
    else schema.pattern = rewritten;
  };
  relaxPattern(node);
  if (Array.isArray(node.allOf)) for (const part of node.allOf) if (isRecord(part)) relaxPattern(part);
  if (!caseOnly) {
    // A value that is trimmed or otherwise rewritten before its checks cannot be described as written.
    for (const keyword of ['format', 'minLength', 'maxLength', 'enum', 'const']) delete node[keyword];
  }
}

/**
 * zod checks a string after its normalizing steps (`.toLowerCase()`, `.trim()`), so the patterns it
 * emits describe the normalized text, which would reject what the loader accepts ("Chat.Example.com").
 * A step that only changes case makes the patterns case-insensitive; any other drops them.
 */
function describeInputOfNormalizedStrings(ctx: {
  zodSchema: z.core.$ZodType;
  jsonSchema: Record<string, unknown>;
}): void {
  if (!(ctx.zodSchema instanceof z.core.$ZodString)) return;
  const checks = ctx.zodSchema._zod.def.checks ?? [];
  const first = checks.findIndex((check) => check instanceof z.core.$ZodCheckOverwrite);
  const normalize = checks[first];
  if (!(normalize instanceof z.core.$ZodCheckOverwrite) || first === checks.length - 1) return;
  const probe = String(normalize._zod.def.tx(' aZ '));
  relaxNormalized(ctx.jsonSchema, probe === ' az ' || probe === ' AZ ');
}

/**
 * The JSON Schema (draft-07, which most YAML editors support) of what `schema` accepts as written
 * in a configuration file, `${ENV}` references included.
 */
export function inputJsonSchema(schema: z.core.$ZodType): Record<string, unknown> {
  const generated = z.toJSONSchema(schema, {
    io: 'input',
    target: 'draft-7',
    unrepresentable: 'any',
    override: describeInputOfNormalizedStrings,
  });
  annotate(generated);
  acceptEnvReferences(generated);
  const { definitions, ...rest } = generated;
  return { ...rest, definitions: { ...(isRecord(definitions) ? definitions : {}), ...ENV_DEFINITIONS } };
}

/** The JSON Schema of the configuration file. */
export function configJsonSchema(): Record<string, unknown> {
  const { $schema, ...rest } = inputJsonSchema(createConfigSchema({ baseDir: '.', env: {} }));
  return {
    $schema,
    $comment: 'Generated by scripts/config-json-schema.ts from src/config/schema.ts; do not edit.',
    title: 'wsgate configuration',
    description: 'The YAML configuration file of the wsgate WebSocket gateway (docs/configuration.md).',
    ...rest,
  };
}

/** The file content: the schema as indented JSON with a final newline. */
export function renderConfigJsonSchema(): string {
  return `${JSON.stringify(configJsonSchema(), null, 2)}\n`;
}

function main(args: readonly string[]): number {
  const text = renderConfigJsonSchema();
  if (args.includes('--stdout')) {
    process.stdout.write(text);
    return 0;
  }
  if (args.includes('--check')) {
    let committed = '';
    try {
      committed = readFileSync(CONFIG_JSON_SCHEMA_PATH, 'utf8');
    } catch {
      // A missing file is stale too.
    }
    if (committed === text) return 0;
    process.stderr.write(`${CONFIG_JSON_SCHEMA_PATH} is stale; run: node scripts/config-json-schema.ts\n`);
    return 1;
  }
  writeFileSync(CONFIG_JSON_SCHEMA_PATH, text);
  process.stdout.write(`wrote ${CONFIG_JSON_SCHEMA_PATH}\n`);
  return 0;
}

if (import.meta.main) process.exitCode = main(process.argv.slice(2));
