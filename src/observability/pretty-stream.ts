/**
 * A tiny human-readable rendering of pino's JSON lines for `log.format: pretty`:
 * `12:00:01.234 INFO  message key=value ...`. It runs in-process and writes synchronously, so no
 * line is lost at exit, and it needs no extra dependency.
 */
import type { DestinationStream } from 'pino';

const OMIT = new Set(['level', 'time', 'msg', 'pid']);

/** C0 controls, DEL, C1 controls (NEL, CSI, …) and the line and paragraph separators. */
function isControl(code: number): boolean {
  return code < 0x20 || (code >= 0x7f && code <= 0x9f) || code === 0x2028 || code === 0x2029;
}

/** `text` with every control character written as a JSON unicode escape (or, with `blank`, a space). */
function escapeControls(text: string, blank = false): string {
  let out = '';
  for (const char of text) {
    const code = char.charCodeAt(0);
    if (!isControl(code)) out += char;
    else out += blank ? ' ' : `\\u${code.toString(16).padStart(4, '0')}`;
  }
  return out;
}

/** A string value needs quotes when it holds a space, `"`, `=` or a control character. */
function needsQuotes(text: string): boolean {
  for (const char of text) {
    const code = char.charCodeAt(0);
    if (char === '"' || char === '=' || /\s/.test(char) || isControl(code)) return true;
  }
  return false;
}

/** JSON text with every control character escaped (JSON.stringify leaves C1 and U+2028/9 raw). */
function safeJson(value: unknown): string {
  return escapeControls(JSON.stringify(value) ?? String(value));
}

function renderValue(value: unknown): string {
  if (typeof value === 'string') return needsQuotes(value) ? safeJson(value) : value;
  return safeJson(value);
}

/** Renders one pino JSON line; returns the input unchanged when it is not JSON. */
export function renderPrettyLine(line: string): string {
  let record: Record<string, unknown>;
  try {
    record = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line;
  }
  const time = typeof record.time === 'string' ? record.time.slice(11, 23) : '';
  const level = String(record.level ?? '')
    .toUpperCase()
    .padEnd(5);
  const fields = Object.entries(record)
    .filter(([key]) => !OMIT.has(key))
    .map(([key, value]) => `${key}=${renderValue(value)}`)
    .join(' ');
  const message = escapeControls(String(record.msg ?? ''), true);
  return `${time} ${level} ${message}${fields ? ` ${fields}` : ''}\n`;
}

/** Wraps a destination so that every JSON line is rendered before it is written. */
export function createPrettyStream(target: DestinationStream): DestinationStream {
  return { write: (line: string) => target.write(renderPrettyLine(line)) };
}
