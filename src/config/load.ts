/**
 * Loading a configuration file: YAML with positions, environment expansion, the schema, then the
 * semantic checks, with every problem from every stage mapped back to a line and column and
 * reported together in one ConfigError. Loading is total: every input yields a deep-frozen Config
 * or a ConfigError, never another exception, so `wsgate check` and a start-up share one path.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import {
  type Document,
  isAlias,
  isCollection,
  isMap,
  isScalar,
  isSeq,
  LineCounter,
  parseDocument,
  type YAMLError,
} from 'yaml';
import { ConfigError, type ConfigProblem, formatPath } from './config-error.ts';
import { type Environment, expandEnvInDocument } from './env.ts';
import { type Config, createConfigSchema } from './schema.ts';
import { checkSemantics } from './semantics.ts';
import { keyText, locate, offsetOf, type Path, type PendingProblem, pathAtOffset } from './yaml-locate.ts';
import { issueProblems, naturalMessage } from './zod-issues.ts';

/** Where a configuration text came from and what to resolve it against. */
export interface ParseOptions {
  /** The name shown in problems (usually the path as the user gave it). */
  readonly file: string;
  /** Directory relative file paths (certificates, CA bundles) resolve against. */
  readonly baseDir: string;
  /** Variables for `${NAME}` references. */
  readonly env: Environment;
}

// ---------------------------------------------------------------------------------------------
// YAML syntax and structure

function lowerFirst(text: string): string {
  return text.charAt(0).toLowerCase() + text.slice(1);
}

const QUOTE_STAR = '(to write a value that starts with "*", quote it: "*.example.com")';

/** YAML errors about well-formed text (the rest are syntax errors, which come in cascades). */
const NOT_SYNTAX = new Set(['DUPLICATE_KEY', 'MULTIPLE_DOCS', 'BAD_ALIAS', 'TAG_RESOLVE_FAILED']);

/**
 * The first syntax error, if any: after one, the parser's view of the rest of the file is
 * unreliable and every later line would be reported as an "unexpected token".
 */
function firstSyntaxError(errors: readonly YAMLError[]): YAMLError | undefined {
  return errors.find((error) => !NOT_SYNTAX.has(error.code));
}

/** Whether `line` opens `[` or `{` before a `${` with no quote in between (one linear scan). */
function unquotedReferenceInFlow(line: string): boolean {
  let open = false;
  for (let i = 0; i < line.length; i++) {
    const char = line[i];
    if (char === '[' || char === '{') open = true;
    else if (char === '"' || char === "'") open = false;
    else if (open && char === '$' && line[i + 1] === '{') return true;
  }
  return false;
}

/** A syntax error, with a hint when its line holds an unquoted `${…}` inside `[…]` or `{…}`. */
function syntaxProblem(text: string, error: YAMLError): PendingProblem {
  const offset = error.pos[0];
  const lineStart = text.lastIndexOf('\n', offset - 1) + 1;
  const lineEnd = text.indexOf('\n', offset);
  const line = text.slice(lineStart, lineEnd === -1 ? text.length : lineEnd);
  const hint = unquotedReferenceInFlow(line)
    ? ` (inside [ ] or { }, a \${...} reference must be quoted: "\${PORT}")`
    : '';
  return { offset, path: [], message: `${lowerFirst(error.message)}${hint}` };
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
  if (error.code === 'BAD_ALIAS') {
    return {
      offset,
      path: pathAtOffset(doc, offset).path,
      message: `${lowerFirst(error.message)} ${QUOTE_STAR}`,
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
      // An empty alias ("*" alone) is already a syntax error.
      if (node.source !== '' && node.resolve(doc) === undefined) {
        // "*.example.com" is a wildcard host written without quotes, not a reference.
        const hint = node.source.startsWith('.') ? ` ${QUOTE_STAR}` : '';
        problems.push({
          offset: node.range?.[0],
          path,
          message: `alias *${node.source} has no anchor before it${hint}`,
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

/**
 * True when some mapping holds two scalar keys with the same value: yaml's `uniqueKeys` test
 * (which never counts NaN as equal to itself), with a set per mapping.
 */
function hasDuplicateKeys(node: unknown): boolean {
  if (isMap(node)) {
    const seen = new Set<unknown>();
    for (const pair of node.items) {
      if (isScalar(pair.key) && !Number.isNaN(pair.key.value)) {
        if (seen.has(pair.key.value)) return true;
        seen.add(pair.key.value);
      }
      if (hasDuplicateKeys(pair.key) || hasDuplicateKeys(pair.value)) return true;
    }
  } else if (isSeq(node)) {
    for (const item of node.items) if (hasDuplicateKeys(item)) return true;
  }
  return false;
}

/**
 * The YAML document and its line index. yaml's own duplicate key check compares every key of a
 * mapping with every key before it, which makes a file with thousands of routes take seconds; so
 * the text is parsed without it, checked with a set per mapping, and parsed again with yaml's check
 * (for its exact errors) only when there is a duplicate to report.
 */
function parseYaml(text: string): { doc: Document; lines: LineCounter } {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: false, prettyErrors: false });
  if (!hasDuplicateKeys(doc.contents)) return { doc, lines };
  const checkedLines = new LineCounter();
  const checked = parseDocument(text, { lineCounter: checkedLines, uniqueKeys: true, prettyErrors: false });
  return { doc: checked, lines: checkedLines };
}

function parseUnchecked(text: string, options: ParseOptions): Config {
  const { file } = options;
  const { doc, lines } = parseYaml(text);
  const failure = (pending: readonly PendingProblem[]) =>
    new ConfigError(file, toProblems(file, lines, pending));

  const syntax = firstSyntaxError(doc.errors);
  if (syntax) throw failure([syntaxProblem(text, syntax)]);
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

  const schema = createConfigSchema({ baseDir: options.baseDir, env: options.env });
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

/** The largest configuration file read: far above any real one (10,000 routes take under 1 MiB). */
const MAX_CONFIG_BYTES = 16 * 1024 * 1024;

/** Reads `file` as UTF-8, refusing more than MAX_CONFIG_BYTES (a device or a runaway file). */
function readBounded(file: string): string {
  const fd = openSync(file, 'r');
  try {
    const buffer = Buffer.alloc(MAX_CONFIG_BYTES + 1);
    let length = 0;
    for (;;) {
      const read = readSync(fd, buffer, length, buffer.length - length, null);
      if (read === 0) break;
      length += read;
      if (length > MAX_CONFIG_BYTES) {
        throw Object.assign(new Error('larger than 16 MiB'), { code: 'EFBIG' });
      }
    }
    return buffer.toString('utf8', 0, length);
  } finally {
    closeSync(fd);
  }
}

/** Why a configuration file could not be read, in words (with the system's code). */
function readFailure(error: unknown): string {
  const code = errorReason(error);
  const words: Record<string, string> = {
    ENOENT: 'no such file',
    EACCES: 'permission denied',
    EISDIR: 'it is a directory, not a file',
    ENOTDIR: 'a part of the path is not a directory',
    EFBIG: 'it is larger than 16 MiB',
  };
  return words[code] ? `${words[code]} (${code})` : code;
}

/** The text of the configuration file `file` (bounded in size), or a ConfigError saying why not. */
export function readConfigText(file: string): string {
  try {
    return readBounded(file);
  } catch (error) {
    throw new ConfigError(file, [
      { file, line: 0, column: 0, path: '', message: `cannot read the file: ${readFailure(error)}` },
    ]);
  }
}

/** The configuration in `text`, read from `file` (relative paths in it resolve against its directory). */
export function parseConfigFileText(file: string, text: string, env: Environment = process.env): Config {
  return parseConfigText(text, { file, baseDir: dirname(resolve(file)), env });
}

/**
 * Reads and validates a configuration file; relative paths inside it resolve against its
 * directory. `env` defaults to `process.env`. Throws a ConfigError when the file cannot be read
 * or is not a valid configuration.
 */
export function loadConfigFile(file: string, env: Environment = process.env): Config {
  return parseConfigFileText(file, readConfigText(file), env);
}
