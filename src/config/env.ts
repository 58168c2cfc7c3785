/**
 * Environment variable expansion in configuration values: `${NAME}`, `${NAME:-default}` and the
 * `$${` escape for a literal `${`. It works on the parsed YAML document rather than on the raw
 * text, so a variable's value can never inject YAML structure, every problem keeps the position of
 * its scalar, and a plain scalar that is a single reference (`port: ${PORT}`) is re-typed by the
 * YAML core schema just as if the value had been written in its place.
 */
import { type Document, isMap, isPair, isScalar, isSeq, type Node, parseDocument, type Scalar } from 'yaml';

/** The variables references are resolved against (usually `process.env`). */
export type Environment = Readonly<Record<string, string | undefined>>;

/** The result of expanding the references in one string. */
export interface Expansion {
  /** The text with every reference replaced (unresolvable references are left as written). */
  readonly text: string;
  /** One message per reference that could not be resolved. */
  readonly problems: readonly string[];
  /** True when the whole input is exactly one `${...}` reference. */
  readonly single: boolean;
}

/** A reference that could not be resolved, located at its YAML scalar. */
export interface EnvProblem {
  /** Character offset of the scalar in the source text. */
  readonly offset: number;
  /** Map keys and sequence indices leading to the scalar. */
  readonly path: readonly (string | number)[];
  readonly message: string;
}

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const DEFAULT_SEPARATOR = ':-';

/**
 * Replaces `${NAME}` and `${NAME:-default}` in `text`. The default applies when the variable is
 * unset or empty; it is literal text up to the first `}`. `$${` stands for a literal `${`.
 */
export function expandString(text: string, env: Environment): Expansion {
  let out = '';
  let index = 0;
  const problems: string[] = [];
  while (index < text.length) {
    const dollar = text.indexOf('$', index);
    if (dollar === -1) {
      out += text.slice(index);
      break;
    }
    out += text.slice(index, dollar);
    if (text.startsWith('$${', dollar)) {
      out += '${';
      index = dollar + 3;
      continue;
    }
    if (text[dollar + 1] !== '{') {
      out += '$';
      index = dollar + 1;
      continue;
    }
    const close = text.indexOf('}', dollar + 2);
    if (close === -1) {
      problems.push(
        `unterminated reference "${text.slice(dollar)}" (missing "}"; write $\${ for a literal \${)`,
      );
      out += text.slice(dollar);
      break;
    }
    const reference = text.slice(dollar, close + 1);
    const body = text.slice(dollar + 2, close);
    const separator = body.indexOf(DEFAULT_SEPARATOR);
    const name = separator === -1 ? body : body.slice(0, separator);
    index = close + 1;
    if (!NAME.test(name)) {
      problems.push(
        `"${reference}" is not a valid reference (use \${NAME} or \${NAME:-default}; write $\${ for a literal \${)`,
      );
      out += reference;
      continue;
    }
    if (separator !== -1 && body.includes('${', separator)) {
      problems.push(`"${reference}}": a default cannot contain another reference`);
      out += reference;
      continue;
    }
    const value = env[name];
    if (separator !== -1 && (value === undefined || value === '')) {
      out += body.slice(separator + DEFAULT_SEPARATOR.length);
    } else if (value === undefined) {
      problems.push(`environment variable ${name} is not set`);
      out += reference;
    } else {
      out += value;
    }
  }
  const single = text.startsWith('${') && text.indexOf('}') === text.length - 1;
  return { text: out, problems, single };
}

/**
 * The value a plain YAML scalar written as `text` would have under the core schema: a number,
 * boolean or null when it reads as one, otherwise the text itself.
 */
export function retypePlain(text: string): unknown {
  const trimmed = text.trim();
  if (trimmed === '') return null;
  const doc = parseDocument(trimmed, { schema: 'core' });
  const node = doc.contents;
  const plain =
    doc.errors.length === 0 &&
    doc.warnings.length === 0 &&
    isScalar(node) &&
    node.type === 'PLAIN' &&
    node.tag === undefined &&
    node.anchor === undefined &&
    !node.comment &&
    !node.commentBefore &&
    node.source === trimmed;
  return plain ? node.value : text;
}

function expandScalar(
  scalar: Scalar,
  path: readonly (string | number)[],
  env: Environment,
  out: EnvProblem[],
) {
  if (typeof scalar.value !== 'string' || !scalar.value.includes('$')) return;
  const expansion = expandString(scalar.value, env);
  const offset = scalar.range?.[0] ?? 0;
  for (const message of expansion.problems) out.push({ offset, path, message });
  if (expansion.problems.length > 0) return;
  const retype = expansion.single && scalar.type === 'PLAIN' && scalar.tag === undefined;
  scalar.value = retype ? retypePlain(expansion.text) : expansion.text;
}

function keyOf(key: unknown): string {
  if (isScalar(key)) return String(key.value);
  return String(key);
}

function walk(node: Node | null, path: readonly (string | number)[], env: Environment, out: EnvProblem[]) {
  if (isScalar(node)) {
    expandScalar(node, path, env, out);
  } else if (isMap(node)) {
    for (const pair of node.items) {
      if (isPair(pair) && (isScalar(pair.value) || isMap(pair.value) || isSeq(pair.value))) {
        walk(pair.value, [...path, keyOf(pair.key)], env, out);
      }
    }
  } else if (isSeq(node)) {
    node.items.forEach((item, index) => {
      if (isScalar(item) || isMap(item) || isSeq(item)) walk(item, [...path, index], env, out);
    });
  }
}

/**
 * Expands references in every value scalar of `doc`, in place (keys are left alone). Returns one
 * problem per reference that could not be resolved; such scalars keep their text unchanged.
 */
export function expandEnvInDocument(doc: Document, env: Environment): EnvProblem[] {
  const problems: EnvProblem[] = [];
  walk(doc.contents, [], env, problems);
  return problems;
}
