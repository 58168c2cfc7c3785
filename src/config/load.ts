/**
 * Loading a configuration file: YAML with positions, environment expansion, the schema, then the
 * semantic checks, with every problem from every stage mapped back to a line and column and
 * reported together in one ConfigError. Loading is total: any input yields a deep-frozen Config
 * or a ConfigError, never another exception, so `wsgate check` and a start-up share one path.
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import {
  type Document,
  isAlias,
  isCollection,
  isMap,
  isScalar,
  isSeq,
  LineCounter,
  type Node,
  parseDocument,
  type YAMLError,
} from 'yaml';
import { z } from 'zod';
import { ConfigError, type ConfigProblem, formatPath } from './config-error.ts';
import { type Environment, expandEnvInDocument } from './env.ts';
import { type Config, createConfigSchema } from './schema.ts';
import { checkSemantics } from './semantics.ts';
import { parseDuration, parseSize } from './units.ts';

/** Where a configuration text came from and what to resolve it against. */
export interface ParseOptions {
  /** The name shown in problems (usually the path as the user gave it). */
  readonly file: string;
  /** Directory relative file paths (certificates, CA bundles) resolve against. */
  readonly baseDir: string;
  /** Variables for `${NAME}` references. */
  readonly env: Environment;
}

type Path = readonly PropertyKey[];

/** Problems are collected with a source offset (or none) and turned into lines and columns at the end. */
interface PendingProblem {
  readonly offset: number | undefined;
  readonly path: Path;
  readonly message: string;
}

// ---------------------------------------------------------------------------------------------
// YAML node lookup

function keyText(key: unknown): string {
  return isScalar(key) ? String(key.value) : String(key);
}

interface Located {
  /** The node at the deepest path segment that exists (null when a key has no value). */
  readonly node: Node | null;
  /** The key of the last map entry walked through, if any. */
  readonly key: Node | undefined;
  /** True when every segment of the path exists in the document. */
  readonly complete: boolean;
  /** The document's top-level node. */
  readonly root: Node | null;
}

/** Walks `path` through the document, following aliases, as far as it exists. */
function locate(doc: Document, path: Path): Located {
  let node: Node | null = doc.contents;
  let key: Node | undefined;
  for (const segment of path) {
    const current: Node | null | undefined = isAlias(node) ? node.resolve(doc) : node;
    let next: Node | null | undefined;
    let nextKey: Node | undefined;
    if (isMap(current)) {
      const pair = current.items.find((item) => keyText(item.key) === String(segment));
      if (pair) {
        next = isCollection(pair.value) || isScalar(pair.value) || isAlias(pair.value) ? pair.value : null;
        nextKey = isScalar(pair.key) ? pair.key : undefined;
      }
    } else if (isSeq(current) && typeof segment === 'number') {
      const item = current.items[segment];
      if (isCollection(item) || isScalar(item) || isAlias(item)) next = item;
    }
    if (next === undefined) return { node, key, complete: false, root: doc.contents };
    node = next;
    key = nextKey;
  }
  return { node, key, complete: true, root: doc.contents };
}

/** Where to point for a problem about `located`: a key for collections, the value otherwise. */
function offsetOf(located: Located): number | undefined {
  const { node, key } = located;
  // A top-level key that is missing has nowhere better to point than the whole file.
  if (!located.complete && node === located.root) return undefined;
  if (key?.range && (node === null || isCollection(node))) return key.range[0];
  return node?.range?.[0];
}

/** The start and end offsets of a node, if it has a position. */
function span(node: unknown): readonly [number, number] | undefined {
  if (!(isCollection(node) || isScalar(node) || isAlias(node)) || !node.range) return undefined;
  return [node.range[0], node.range[2]];
}

function contains(range: readonly [number, number] | undefined, offset: number): boolean {
  return range !== undefined && offset >= range[0] && offset < range[1];
}

/** The path to the innermost entry holding `offset`, and the key written there when it is in a key. */
function pathAtOffset(doc: Document, offset: number): { path: Path; key: Node | undefined } {
  const path: PropertyKey[] = [];
  let node: unknown = doc.contents;
  for (;;) {
    if (isMap(node)) {
      const pair = node.items.find((item) => {
        const start = span(item.key)?.[0] ?? span(item.value)?.[0];
        const end = span(item.value)?.[1] ?? span(item.key)?.[1];
        return start !== undefined && end !== undefined && contains([start, end], offset);
      });
      if (!pair) break;
      if (contains(span(pair.key), offset)) return { path, key: isScalar(pair.key) ? pair.key : undefined };
      path.push(keyText(pair.key));
      node = pair.value;
    } else if (isSeq(node)) {
      const index = node.items.findIndex((item) => contains(span(item), offset));
      if (index === -1) break;
      path.push(index);
      node = node.items[index];
    } else {
      break;
    }
  }
  return { path, key: undefined };
}

// ---------------------------------------------------------------------------------------------
// YAML syntax and structure

function lowerFirst(text: string): string {
  return text.charAt(0).toLowerCase() + text.slice(1);
}

function yamlProblem(doc: Document, error: YAMLError): PendingProblem {
  const offset = error.pos[0];
  if (error.code === 'DUPLICATE_KEY') {
    const { path, key } = pathAtOffset(doc, offset);
    const name = isScalar(key) ? String(key.value) : '';
    return { offset, path, message: name === '' ? 'duplicate key' : `duplicate key "${name}"` };
  }
  if (error.code === 'MULTIPLE_DOCS') {
    return {
      offset,
      path: [],
      message: 'a configuration file holds one YAML document (found another "---")',
    };
  }
  if (error.code === 'TAG_RESOLVE_FAILED') {
    return { offset, path: pathAtOffset(doc, offset).path, message: lowerFirst(error.message) };
  }
  return { offset, path: [], message: lowerFirst(error.message) };
}

/** Aliases to missing anchors and non-scalar keys: valid YAML the configuration cannot use. */
function structureProblems(doc: Document): PendingProblem[] {
  const problems: PendingProblem[] = [];
  const visit = (node: unknown, path: Path): void => {
    if (isAlias(node)) {
      if (node.resolve(doc) === undefined) {
        problems.push({
          offset: node.range?.[0],
          path,
          message: `alias *${node.source} has no anchor before it`,
        });
      }
    } else if (isMap(node)) {
      for (const pair of node.items) {
        if (!isScalar(pair.key) && pair.key !== null) {
          const offset = isCollection(pair.key) || isAlias(pair.key) ? pair.key.range?.[0] : undefined;
          problems.push({ offset, path, message: 'keys must be plain names, not lists or mappings' });
          continue;
        }
        visit(pair.value, [...path, keyText(pair.key)]);
      }
    } else if (isSeq(node)) {
      node.items.forEach((item, index) => {
        visit(item, [...path, index]);
      });
    }
  };
  visit(doc.contents, []);
  return problems;
}

// ---------------------------------------------------------------------------------------------
// Schema issues

const NOUNS: Record<string, string> = {
  number: 'a number',
  int: 'a whole number',
  bigint: 'a whole number',
  string: 'a string',
  boolean: 'true or false',
  object: 'a mapping',
  record: 'a mapping',
  map: 'a mapping',
  array: 'a list',
  tuple: 'a list',
  null: 'empty',
};

function noun(expected: string): string {
  return NOUNS[expected] ?? `of type ${expected}`;
}

function quote(value: unknown): string {
  return typeof value === 'string' ? `"${value}"` : String(value);
}

/** Natural wording for zod's built-in messages; messages written in the schema take precedence. */
function naturalMessage(issue: z.core.$ZodRawIssue): string | undefined {
  switch (issue.code) {
    case 'invalid_type':
      return issue.input === undefined ? 'is required' : `must be ${noun(issue.expected)}`;
    case 'invalid_value':
      return issue.values.length === 1
        ? `must be ${quote(issue.values[0])}`
        : `must be one of: ${issue.values.map(String).join(', ')}`;
    case 'too_small': {
      const bound = String(issue.minimum);
      if (issue.origin === 'array' || issue.origin === 'set') return `needs at least ${bound} item(s)`;
      if (issue.origin === 'string') return `needs at least ${bound} character(s)`;
      return issue.inclusive === false ? `must be greater than ${bound}` : `must be at least ${bound}`;
    }
    case 'too_big': {
      const bound = String(issue.maximum);
      if (issue.origin === 'array' || issue.origin === 'set') return `takes at most ${bound} item(s)`;
      if (issue.origin === 'string') return `takes at most ${bound} character(s)`;
      return issue.inclusive === false ? `must be less than ${bound}` : `must be at most ${bound}`;
    }
    case 'invalid_format':
      if (issue.format === 'starts_with' && 'prefix' in issue)
        return `must start with ${quote(issue.prefix)}`;
      if (issue.format === 'regex' && 'pattern' in issue) return `must match ${String(issue.pattern)}`;
      return `must be a valid ${issue.format}`;
    case 'invalid_key':
      return 'is not a valid key';
    case 'invalid_union':
      return 'does not match any accepted form';
    default:
      return undefined;
  }
}

/**
 * Schemas a value of `schema` may be checked against, with wrappers (optional, default, pipes)
 * removed; the defaults met on the way are added to `defaults`.
 */
function unwrap(schema: z.core.$ZodType, defaults: unknown[] = []): z.core.$ZodType[] {
  if (schema instanceof z.core.$ZodDefault || schema instanceof z.core.$ZodPrefault) {
    defaults.push(schema._zod.def.defaultValue);
    return unwrap(schema._zod.def.innerType, defaults);
  }
  if (
    schema instanceof z.core.$ZodOptional ||
    schema instanceof z.core.$ZodNullable ||
    schema instanceof z.core.$ZodReadonly ||
    schema instanceof z.core.$ZodNonOptional ||
    schema instanceof z.core.$ZodCatch
  ) {
    return unwrap(schema._zod.def.innerType, defaults);
  }
  if (schema instanceof z.core.$ZodPipe) return unwrap(schema._zod.def.in, defaults);
  if (schema instanceof z.core.$ZodUnion)
    return schema._zod.def.options.flatMap((option) => unwrap(option, defaults));
  return [schema];
}

function childSchemas(schema: z.core.$ZodType, segment: PropertyKey): z.core.$ZodType[] {
  if (schema instanceof z.core.$ZodObject) {
    const child = Object.hasOwn(schema._zod.def.shape, segment)
      ? schema._zod.def.shape[String(segment)]
      : undefined;
    return child ? [child] : [];
  }
  if (schema instanceof z.core.$ZodRecord) return [schema._zod.def.valueType];
  if (schema instanceof z.core.$ZodArray) return [schema._zod.def.element];
  return [];
}

/** The schemas that check the value at `path`, and the defaults declared for it. */
function schemasAt(schema: z.core.$ZodType, path: Path): { schemas: z.core.$ZodType[]; defaults: unknown[] } {
  let defaults: unknown[] = [];
  let schemas = unwrap(schema, defaults);
  for (const segment of path) {
    const found: unknown[] = [];
    schemas = schemas.flatMap((c) => childSchemas(c, segment)).flatMap((c) => unwrap(c, found));
    defaults = found;
  }
  return { schemas, defaults };
}

/** The keys the schema allows in the mapping at `path`. */
function knownKeys(schema: z.core.$ZodType, path: Path): string[] {
  const { schemas } = schemasAt(schema, path);
  return schemas.flatMap((c) => (c instanceof z.core.$ZodObject ? Object.keys(c._zod.def.shape) : []));
}

/**
 * Durations and sizes are strings with a unit; a bare number there deserves a better hint than
 * "must be a string". They are recognized by their default, which every one of them has.
 */
function unitHint(schema: z.core.$ZodType, path: Path): string | undefined {
  for (const value of schemasAt(schema, path).defaults) {
    if (typeof value !== 'string') continue;
    if (parseDuration(value) !== undefined)
      return `must be a duration with a unit, e.g. "${value}" (ms, s, m, h)`;
    if (parseSize(value) !== undefined)
      return `must be a size with a unit, e.g. "${value}" (B, KiB, MiB, GiB, KB, MB, GB)`;
  }
  return undefined;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, index) => index);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      current[j] = Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, (previous[j - 1] ?? 0) + cost);
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}

/** The known key closest to `key` (edit distance at most 2, ignoring case), if any. */
export function suggestKey(key: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = 3;
  for (const candidate of known) {
    const distance = editDistance(key.toLowerCase(), candidate.toLowerCase());
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

/** Replaces a union failure by the issues of the alternative the value was meant for, when there is one. */
function unionIssues(issue: z.core.$ZodIssueInvalidUnion): z.core.$ZodIssue[] | string {
  const wrongShape = (branch: readonly z.core.$ZodIssue[]) =>
    branch.some((inner) => inner.path.length === 0 && inner.code === 'invalid_type');
  const meant = issue.errors.filter((branch) => !wrongShape(branch));
  const [first] = meant;
  if (first) return first;
  const expected = issue.errors.flatMap((branch) =>
    branch.flatMap((inner) =>
      inner.path.length === 0 && inner.code === 'invalid_type' ? [noun(inner.expected)] : [],
    ),
  );
  return expected.length > 0 ? `must be ${[...new Set(expected)].join(' or ')}` : issue.message;
}

function issueProblems(
  doc: Document,
  schema: z.core.$ZodType,
  issues: readonly z.core.$ZodIssue[],
  base: Path,
  out: PendingProblem[],
): void {
  for (const issue of issues) {
    const path = [...base, ...issue.path];
    if (issue.code === 'invalid_union') {
      const replacement = unionIssues(issue);
      if (typeof replacement !== 'string') {
        issueProblems(doc, schema, replacement, path, out);
        continue;
      }
      out.push({ offset: offsetOf(locate(doc, path)), path, message: replacement });
    } else if (issue.code === 'unrecognized_keys') {
      const known = knownKeys(schema, path);
      for (const key of issue.keys) {
        const located = locate(doc, [...path, key]);
        const suggestion = suggestKey(key, known);
        out.push({
          offset: located.complete ? located.key?.range?.[0] : offsetOf(located),
          path,
          message: `unknown key "${key}"${suggestion ? ` (did you mean "${suggestion}"?)` : ''}`,
        });
      }
    } else if (issue.code === 'invalid_key') {
      const located = locate(doc, path);
      const reasons = issue.issues.map((inner) => inner.message).join('; ');
      const name = String(path[path.length - 1]);
      out.push({
        offset: located.complete ? located.key?.range?.[0] : offsetOf(located),
        path: path.slice(0, -1),
        message: `invalid name "${name}": ${reasons}`,
      });
    } else if (issue.code === 'invalid_type' && path.length === 0) {
      out.push({
        offset: offsetOf(locate(doc, path)),
        path,
        message: 'must be a mapping (of listeners, routes, pools, ...)',
      });
    } else {
      const hint =
        issue.code === 'invalid_type' && issue.message !== 'is required' ? unitHint(schema, path) : undefined;
      out.push({ offset: offsetOf(locate(doc, path)), path, message: hint ?? issue.message });
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Loading

/** Freezes `value` and everything reachable from it, except Buffers (which cannot be frozen). */
function deepFreeze<T>(value: T): T {
  if (typeof value !== 'object' || value === null || ArrayBuffer.isView(value) || Object.isFrozen(value)) {
    return value;
  }
  for (const child of Object.values(value)) deepFreeze(child);
  return Object.freeze(value);
}

function errorReason(error: unknown): string {
  if (error instanceof Error)
    return 'code' in error && typeof error.code === 'string' ? error.code : error.message;
  return String(error);
}

function toProblems(file: string, lines: LineCounter, pending: readonly PendingProblem[]): ConfigProblem[] {
  return pending.map((problem) => {
    const position = problem.offset === undefined ? undefined : lines.linePos(problem.offset);
    return {
      file,
      line: position?.line ?? 0,
      column: position?.col ?? 0,
      path: formatPath(problem.path),
      message: problem.message,
    };
  });
}

const EMPTY = 'the file is empty; a configuration needs at least listeners, routes and pools';

function parseUnchecked(text: string, options: ParseOptions): Config {
  const { file } = options;
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: false });
  const failure = (pending: readonly PendingProblem[]) =>
    new ConfigError(file, toProblems(file, lines, pending));

  const pending: PendingProblem[] = [...doc.errors, ...doc.warnings].map((error) => yamlProblem(doc, error));
  if (doc.contents === null && doc.errors.length === 0) {
    throw failure([...pending, { offset: undefined, path: [], message: EMPTY }]);
  }
  const structure = structureProblems(doc);
  const envProblems = expandEnvInDocument(doc, options.env);
  pending.push(...structure, ...envProblems);
  if (doc.errors.length > 0 || structure.length > 0) throw failure(pending);

  let input: unknown;
  try {
    input = doc.toJS();
  } catch (error) {
    throw failure([
      ...pending,
      { offset: undefined, path: [], message: `cannot be read as data (${errorReason(error)})` },
    ]);
  }

  const schema = createConfigSchema({ baseDir: options.baseDir });
  const result = schema.safeParse(input, { error: naturalMessage });
  if (!result.success) {
    const expanded = new Set(envProblems.map((problem) => formatPath(problem.path)));
    const schemaProblems: PendingProblem[] = [];
    issueProblems(doc, schema, result.error.issues, [], schemaProblems);
    // A reference that could not be expanded is already reported; its raw text would only add noise.
    pending.push(...schemaProblems.filter((problem) => !expanded.has(formatPath(problem.path))));
    throw failure(pending);
  }
  for (const problem of checkSemantics(result.data)) {
    pending.push({
      offset: offsetOf(locate(doc, problem.path)),
      path: problem.path,
      message: problem.message,
    });
  }
  if (pending.length > 0) throw failure(pending);
  return deepFreeze(result.data);
}

/**
 * Parses and validates configuration text. Returns the deep-frozen Config, or throws a ConfigError
 * listing every problem found (YAML syntax, environment references, schema, cross-field checks).
 */
export function parseConfigText(text: string, options: ParseOptions): Config {
  try {
    return parseUnchecked(text, options);
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    throw new ConfigError(options.file, [
      {
        file: options.file,
        line: 0,
        column: 0,
        path: '',
        message: `unexpected failure while loading (${errorReason(error)})`,
      },
    ]);
  }
}

/**
 * Reads and validates a configuration file; relative paths inside it resolve against its
 * directory. `env` defaults to `process.env`. Throws a ConfigError when the file cannot be read
 * or is not a valid configuration.
 */
export function loadConfigFile(file: string, env: Environment = process.env): Config {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new ConfigError(file, [
      { file, line: 0, column: 0, path: '', message: `cannot read the file (${errorReason(error)})` },
    ]);
  }
  return parseConfigText(text, { file, baseDir: dirname(resolve(file)), env });
}
