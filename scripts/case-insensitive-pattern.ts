/**
 * Rewrites a regular expression source so that it matches without regard to case, as the `i` flag
 * would, for JSON Schema `pattern`s, which cannot carry flags: every letter also admits its other
 * case, in literals, in character classes and in ranges. It is used where the schema lower-cases a
 * value before matching it, so that the pattern accepts the value as written. Syntax it does not
 * know how to rewrite faithfully (`\u`, `\x`, `\p`, `\k`, `\c`, back references, non-ASCII
 * ranges, letters whose other case is longer than one character) gives undefined.
 */

/** The other case of a one-character letter, or undefined when there is none of one character. */
function otherCase(char: string): string | undefined {
  const lower = char.toLowerCase();
  const upper = char.toUpperCase();
  if (lower === upper) return undefined;
  const other = char === lower ? upper : lower;
  return other.length === char.length ? other : undefined;
}

/** Whether a letter's case mapping cannot be written as one more character. */
function unmappable(char: string): boolean {
  return char.toLowerCase() !== char.toUpperCase() && otherCase(char) === undefined;
}

/** Escapes that stand for themselves or for a class with both cases in it, so they are kept. */
const KEPT_ESCAPES = new Set(['d', 'D', 's', 'S', 'w', 'W', 'b', 'B', 'n', 'r', 't', 'f', 'v', '0']);

const A = 'A'.charCodeAt(0);
const Z = 'Z'.charCodeAt(0);
const a = 'a'.charCodeAt(0);
const z = 'z'.charCodeAt(0);
const CASE_DISTANCE = a - A;
const ASCII_LIMIT = 0x80;

function rangeText(low: number, high: number): string {
  const char = (code: number) => String.fromCharCode(code);
  return low === high ? char(low) : `${char(low)}-${char(high)}`;
}

/** The other-case letters of the range `low`–`high` (ASCII only), as class text. */
function otherCaseOfRange(low: number, high: number): string {
  let extra = '';
  const upperLow = Math.max(low, A);
  const upperHigh = Math.min(high, Z);
  if (upperLow <= upperHigh) extra += rangeText(upperLow + CASE_DISTANCE, upperHigh + CASE_DISTANCE);
  const lowerLow = Math.max(low, a);
  const lowerHigh = Math.min(high, z);
  if (lowerLow <= lowerHigh) extra += rangeText(lowerLow - CASE_DISTANCE, lowerHigh - CASE_DISTANCE);
  return extra;
}

/** One class member: a literal character (with its source text) or a class escape. */
interface ClassAtom {
  readonly source: string;
  /** The character it stands for; undefined for class escapes such as `\d`. */
  readonly char: string | undefined;
}

/** Reads one atom of a character class at `index`, or undefined for unsupported syntax. */
function classAtom(pattern: string, index: number): ClassAtom | undefined {
  const char = pattern[index];
  if (char === undefined) return undefined;
  if (char !== '\\') return { source: char, char };
  const next = pattern[index + 1];
  if (next === undefined) return undefined;
  if (/[A-Za-z0-9]/.test(next)) {
    if (!KEPT_ESCAPES.has(next)) return undefined;
    return { source: `\\${next}`, char: undefined };
  }
  return { source: `\\${next}`, char: next };
}

/** Rewrites the class starting at `start` (just after `[`); returns the text and where it ended. */
function rewriteClass(pattern: string, start: number): { text: string; end: number } | undefined {
  let index = start;
  let text = '';
  if (pattern[index] === '^') {
    text += '^';
    index++;
  }
  let extra = '';
  while (index < pattern.length && pattern[index] !== ']') {
    const first = classAtom(pattern, index);
    if (first === undefined) return undefined;
    index += first.source.length;
    const dash = pattern[index] === '-' && pattern[index + 1] !== ']' && index + 1 < pattern.length;
    if (dash && first.char !== undefined) {
      const last = classAtom(pattern, index + 1);
      if (last?.char === undefined) return undefined;
      index += 1 + last.source.length;
      const low = first.char.charCodeAt(0);
      const high = last.char.charCodeAt(0);
      if (high >= ASCII_LIMIT) return undefined;
      text += `${first.source}-${last.source}`;
      extra += otherCaseOfRange(low, high);
      continue;
    }
    // A literal "-" is written escaped, so that no letter added at the end can turn it into a range.
    text += first.char === '-' ? '\\-' : first.source;
    if (first.char !== undefined) {
      if (unmappable(first.char)) return undefined;
      extra += otherCase(first.char) ?? '';
    }
  }
  if (pattern[index] !== ']') return undefined;
  return { text: `[${text}${extra}]`, end: index + 1 };
}

/** Group openings kept as written: `(?:`, look-arounds. Named groups are not supported. */
const GROUP_OPENINGS = ['(?:', '(?=', '(?!', '(?<=', '(?<!'];

/** `pattern` rewritten to match regardless of case, or undefined when it cannot be rewritten. */
export function caseInsensitivePattern(pattern: string): string | undefined {
  let out = '';
  let index = 0;
  while (index < pattern.length) {
    const char = pattern[index] ?? '';
    if (char === '\\') {
      const next = pattern[index + 1];
      if (next === undefined) return undefined;
      if (/[A-Za-z0-9]/.test(next) && !KEPT_ESCAPES.has(next)) return undefined;
      out += `\\${next}`;
      index += 2;
    } else if (char === '[') {
      const rewritten = rewriteClass(pattern, index + 1);
      if (rewritten === undefined) return undefined;
      out += rewritten.text;
      index = rewritten.end;
    } else if (char === '(') {
      const opening = GROUP_OPENINGS.find((candidate) => pattern.startsWith(candidate, index));
      if (opening === undefined && pattern[index + 1] === '?') return undefined;
      out += opening ?? '(';
      index += (opening ?? '(').length;
    } else if (char === '{') {
      const close = pattern.indexOf('}', index);
      if (close === -1 || !/^\{\d+(,\d*)?\}$/.test(pattern.slice(index, close + 1))) return undefined;
      out += pattern.slice(index, close + 1);
      index = close + 1;
    } else {
      if (unmappable(char)) return undefined;
      const other = otherCase(char);
      out += other === undefined ? char : `[${char}${other}]`;
      index += char.length;
    }
  }
  return out;
}
