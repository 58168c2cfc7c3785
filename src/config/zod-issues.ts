/**
 * Turning zod issues into problems a person can act on: natural wording for zod's built-in
 * messages, one problem per unknown key with a "did you mean" suggestion, union issues reduced to
 * the branch that fits, and a hint about units where a duration or size lacks one.
 */
import type { Document } from 'yaml';
import { z } from 'zod';
import { parseDuration, parseSize } from './units.ts';
import { locate, offsetOf, type Path, type PendingProblem } from './yaml-locate.ts';

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
export function naturalMessage(issue: z.core.$ZodRawIssue): string | undefined {
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
  // A value of another type, or not the one word a branch takes (`off`, `memory`): not meant for it.
  const wrongShape = (branch: readonly z.core.$ZodIssue[]) =>
    branch.some(
      (inner) => inner.path.length === 0 && (inner.code === 'invalid_type' || inner.code === 'invalid_value'),
    );
  const meant = issue.errors.filter((branch) => !wrongShape(branch));
  const [first] = meant;
  if (first) return first;
  const expected = issue.errors.flatMap((branch) =>
    branch.flatMap((inner) => {
      if (inner.path.length !== 0) return [];
      if (inner.code === 'invalid_type') return [noun(inner.expected)];
      if (inner.code === 'invalid_value') return inner.values.map((value) => JSON.stringify(value));
      return [];
    }),
  );
  return expected.length > 0 ? `must be ${[...new Set(expected)].join(' or ')}` : issue.message;
}

export function issueProblems(
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
