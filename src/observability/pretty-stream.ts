/**
 * A tiny human-readable rendering of pino's JSON lines for `log.format: pretty`:
 * `12:00:01.234 INFO  message key=value ...`. It runs in-process and writes synchronously, so no
 * line is lost at exit, and it needs no extra dependency.
 */
import type { DestinationStream } from 'pino';

const OMIT = new Set(['level', 'time', 'msg', 'pid']);

function renderValue(value: unknown): string {
  if (typeof value === 'string') return /[\s"=]/.test(value) ? JSON.stringify(value) : value;
  return JSON.stringify(value) ?? String(value);
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
  return `${time} ${level} ${String(record.msg ?? '')}${fields ? ` ${fields}` : ''}\n`;
}

/** Wraps a destination so that every JSON line is rendered before it is written. */
export function createPrettyStream(target: DestinationStream): DestinationStream {
  return { write: (line: string) => target.write(renderPrettyLine(line)) };
}
