/**
 * A strict parser for the head of a backend's HTTP/1.1 response to an upgrade request: status
 * line, header lines, blank line, nothing lenient. Bare LF or CR, obs-fold continuation lines,
 * control characters, a header name that is not a token, a head larger than the cap, and
 * conflicting body framing (two different Content-Lengths, Content-Length with Transfer-Encoding)
 * are all invalid: the gateway answers 502 rather than guess at what a backend meant.
 */

import { isNamed, TOKEN } from '../protocol/header-rules.ts';

/** How the body after a non-101 head ends (RFC 9112 §6.3). */
export type BodyFraming =
  | { readonly kind: 'none' }
  | { readonly kind: 'length'; readonly bytes: number }
  | { readonly kind: 'chunked' }
  | { readonly kind: 'close' };

export interface ResponseHead {
  readonly status: number;
  /** 0 for HTTP/1.0, 1 for HTTP/1.1. */
  readonly minorVersion: 0 | 1;
  /** Names and values in order (name, value, name, value, …), as latin1, like Node's rawHeaders. */
  readonly rawHeaders: readonly string[];
  readonly framing: BodyFraming;
  /** Bytes of the head, blank line included. */
  readonly length: number;
}

export type HeadParse =
  | { readonly kind: 'partial' }
  | { readonly kind: 'invalid'; readonly reason: string }
  | { readonly kind: 'head'; readonly head: ResponseHead };

const PARTIAL: HeadParse = { kind: 'partial' };
const HEAD_END = Buffer.from('\r\n\r\n', 'latin1');
const VERSION_PREFIX = 'HTTP/1.';
const STATUS_LINE = /^HTTP\/1\.([01]) ([1-9][0-9]{2})(?: [\t\x20-\x7e\x80-\xff]*)?$/;
/** A field value with its surrounding whitespace; checked apart from the name, in linear time. */
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
const DIGITS = /^[0-9]{1,15}$/;

function invalid(reason: string): HeadParse {
  return { kind: 'invalid', reason };
}

/** False as soon as the bytes so far cannot begin a status line (a non-HTTP backend fails fast). */
function startsLikeHttp(data: Buffer): boolean {
  const n = Math.min(data.length, VERSION_PREFIX.length);
  return data.toString('latin1', 0, n) === VERSION_PREFIX.slice(0, n);
}

/** `value` without the spaces and tabs around it (not trim(), which also takes obs-text's NBSP). */
function withoutOws(value: string): string {
  let start = 0;
  let end = value.length;
  while (start < end && (value[start] === ' ' || value[start] === '\t')) start++;
  while (end > start && (value[end - 1] === ' ' || value[end - 1] === '\t')) end--;
  return start === 0 && end === value.length ? value : value.slice(start, end);
}

/** Whether bytes `from` to `end` hold a line feed without its carriage return. */
function hasBareLineFeed(data: Buffer, from: number, end: number): boolean {
  for (let at = data.indexOf(0x0a, from); at !== -1 && at < end; at = data.indexOf(0x0a, at + 1)) {
    if (at === 0 || data[at - 1] !== 0x0d) return true;
  }
  return false;
}

/**
 * Parses the head at the start of `data`. `partial` until the blank line arrives (more than
 * `maxBytes` without one is invalid). `scanned` is how many bytes an earlier call saw as
 * `partial`: they are not searched again, so a head arriving byte by byte costs linear time.
 */
export function parseResponseHead(data: Buffer, maxBytes: number, scanned = 0): HeadParse {
  if (scanned < VERSION_PREFIX.length && !startsLikeHttp(data)) return invalid('the answer is not HTTP/1.x');
  const end = data.indexOf(HEAD_END, Math.max(0, scanned - (HEAD_END.length - 1)));
  if (hasBareLineFeed(data, scanned, end === -1 ? data.length : end))
    return invalid('a line ended by a bare LF');
  if (end === -1) return data.length > maxBytes ? invalid(`head larger than ${maxBytes} bytes`) : PARTIAL;
  const length = end + HEAD_END.length;
  if (length > maxBytes) return invalid(`head larger than ${maxBytes} bytes`);
  const lines = data.toString('latin1', 0, end).split('\r\n');
  const status = STATUS_LINE.exec(lines[0] ?? '');
  if (!status) return invalid('malformed status line');
  const rawHeaders: string[] = [];
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i] ?? '';
    if (line.startsWith(' ') || line.startsWith('\t')) return invalid('obs-fold header line');
    // Name and value apart: one pattern with a lazy value before optional whitespace took time
    // quadratic in a run of spaces inside a value.
    const colon = line.indexOf(':');
    const name = line.slice(0, Math.max(colon, 0));
    const value = line.slice(colon + 1);
    if (colon <= 0 || !TOKEN.test(name) || !FIELD_VALUE.test(value)) {
      return invalid(`malformed header line ${i}`);
    }
    rawHeaders.push(name, withoutOws(value));
  }
  const code = Number(status[2]);
  const minorVersion = status[1] === '1' ? 1 : 0;
  const framing = bodyFraming(code, minorVersion, rawHeaders);
  if (typeof framing === 'string') return invalid(framing);
  return { kind: 'head', head: { status: code, minorVersion, rawHeaders, framing, length } };
}

/** The framing of the body, or why it is ambiguous. */
function bodyFraming(
  status: number,
  minorVersion: 0 | 1,
  rawHeaders: readonly string[],
): BodyFraming | string {
  let contentLength: string | undefined;
  let transferEncoding: string | undefined;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i];
    const value = rawHeaders[i + 1] ?? '';
    if (isNamed(name, 'content-length')) {
      for (const part of value.split(',')) {
        const trimmed = part.trim();
        if (!DIGITS.test(trimmed)) return 'malformed Content-Length';
        if (contentLength !== undefined && contentLength !== trimmed) return 'conflicting Content-Length';
        contentLength = trimmed;
      }
    } else if (isNamed(name, 'transfer-encoding')) {
      transferEncoding = transferEncoding === undefined ? value : `${transferEncoding}, ${value}`;
    }
  }
  if (transferEncoding !== undefined && contentLength !== undefined) {
    return 'both Transfer-Encoding and Content-Length';
  }
  // RFC 9112 §6.1: Transfer-Encoding in an HTTP/1.0 message is faulty framing.
  if (transferEncoding !== undefined && minorVersion === 0) return 'Transfer-Encoding in an HTTP/1.0 answer';
  if (status < 200 || status === 204 || status === 304) return { kind: 'none' };
  if (transferEncoding !== undefined) {
    const codings = transferEncoding.split(',').map((coding) => coding.trim().toLowerCase());
    return codings.at(-1) === 'chunked' ? { kind: 'chunked' } : { kind: 'close' };
  }
  if (contentLength !== undefined) return { kind: 'length', bytes: Number(contentLength) };
  return { kind: 'close' };
}

/** The value of header `name` (lower case), or undefined; several are joined with ", ". */
export function headerValue(head: ResponseHead, name: string): string | undefined {
  let value: string | undefined;
  const raw = head.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    if (!isNamed(raw[i], name)) continue;
    const next = raw[i + 1] ?? '';
    value = value === undefined ? next : `${value}, ${next}`;
  }
  return value;
}
