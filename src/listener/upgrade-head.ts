/**
 * The head of a connection's first request, read on the raw socket when it is a plain WebSocket
 * upgrade: `GET /path HTTP/1.1`, an `Upgrade` header and `upgrade` in `Connection`, no body
 * framing, no header sent twice, every byte within the strict grammar of RFC 9112 (token names,
 * visible ASCII values, CRLF line ends, an origin-form target of RFC 3986 characters). What it
 * accepts is a subset of what Node's HTTP parser accepts, read the same way (names lower-cased,
 * values without surrounding whitespace); anything else, a malformed head included, is left to
 * Node's parser, which answers it as before. Nothing is decided here: the upgrade pipeline checks
 * the handshake as it checks one Node parsed.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { listsToken, TOKEN_LIST } from '../protocol/header-rules.ts';

/** More header lines than this, and Node reads the head. */
export const MAX_FIELDS = 100;
const END_OF_HEAD = Buffer.from('\r\n\r\n', 'latin1');
const METHOD_AND_SLASH = 'GET /';
/** What follows the target on the request line. */
const VERSION = Buffer.from(' HTTP/1.1', 'latin1');
const GET_SLASH = Buffer.from(METHOD_AND_SLASH, 'latin1');
const CR = 0x0d;
const LF = 0x0a;
const COLON = 0x3a;

/** Byte classes of the grammar, one bit each. */
const TCHAR = 1; // a character of a token (RFC 9110 §5.6.2)
const VALUE = 2; // a character of a field value with its surrounding whitespace: visible ASCII, SP, HTAB
const TARGET = 4; // a character of an origin-form target (RFC 3986 unreserved, sub-delims, ":@/?%")
const OWS = 8; // a space or a tab
const ALPHANUMERIC = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
const CLASSES = new Uint8Array(256);
function mark(chars: string, bits: number): void {
  for (let i = 0; i < chars.length; i++) {
    const code = chars.charCodeAt(i);
    CLASSES[code] = (CLASSES[code] ?? 0) | bits;
  }
}
for (let code = 0x21; code <= 0x7e; code++) mark(String.fromCharCode(code), VALUE);
mark(`${ALPHANUMERIC}!#$%&'*+-.^_\`|~`, TCHAR);
mark(`${ALPHANUMERIC}-._~!$&'()*+,;=:@/?%`, TARGET);
mark(' \t', VALUE | OWS);

/** Whether `data` holds the bytes of `expected` at `at`. */
function holdsAt(data: Buffer, at: number, expected: Buffer, count = expected.length): boolean {
  if (at + count > data.length) return false;
  for (let i = 0; i < count; i++) if (data[at + i] !== expected[i]) return false;
  return true;
}

/** The class bits of the byte at `at` (none past the end). */
function classOf(data: Buffer, at: number): number {
  return at < data.length ? (CLASSES[data[at] as number] as number) : 0;
}

/**
 * Where the request line at the start of `data` (`GET /…`, an origin-form target, ` HTTP/1.1`)
 * ends, at the byte after its version; -1 when it is not such a line. Its end must then be CRLF.
 */
export function requestLineEnd(data: Buffer): number {
  if (!holdsAt(data, 0, GET_SLASH)) return -1;
  let at = GET_SLASH.length - 1;
  while (classOf(data, at) & TARGET) at++;
  return holdsAt(data, at, VERSION) ? at + VERSION.length : -1;
}

/** Where the fields of one header line lie (reused from line to line). */
export class FieldBounds {
  nameEnd = 0;
  valueStart = 0;
  valueEnd = 0;
}

/**
 * Reads the header line at `start`: a token name, a colon, a value of visible ASCII with spaces
 * and tabs around it. Returns where the line's bytes stop (where its CRLF must be), with the
 * name's end and the value without its surrounding whitespace in `into`; -1 when the line begins
 * with no name or a name without its colon.
 */
export function readField(data: Buffer, start: number, into: FieldBounds): number {
  let at = start;
  while (classOf(data, at) & TCHAR) at++;
  if (at === start || data[at] !== COLON) return -1;
  into.nameEnd = at;
  at++;
  while (classOf(data, at) & OWS) at++;
  into.valueStart = at;
  into.valueEnd = at;
  for (let bits = classOf(data, at); bits & VALUE; bits = classOf(data, ++at)) {
    if (!(bits & OWS)) into.valueEnd = at + 1;
  }
  return at;
}

/** An upgrade's head as read here, in the shape IncomingHead gives it. */
export interface UpgradeHead {
  readonly method: 'GET';
  readonly url: string;
  readonly httpVersion: '1.1';
  readonly httpVersionMajor: 1;
  readonly httpVersionMinor: 1;
  readonly headers: IncomingHttpHeaders;
  readonly rawHeaders: string[];
}

/**
 * What the bytes received so far are: a complete upgrade head (`length` bytes of them), the
 * beginning of what may still be one, or something for Node's parser.
 */
export type HeadRead =
  | { readonly kind: 'upgrade'; readonly head: UpgradeHead; readonly length: number }
  | { readonly kind: 'incomplete' }
  | { readonly kind: 'other' };

const INCOMPLETE: HeadRead = { kind: 'incomplete' };
const OTHER: HeadRead = { kind: 'other' };

/** Whether the first bytes of a connection can begin an upgrade's head (`GET /`, or a prefix of it). */
export function startsLikeUpgrade(data: Buffer): boolean {
  return holdsAt(data, 0, GET_SLASH, Math.min(data.length, GET_SLASH.length));
}

/** Whether a Connection value is a token list with `upgrade` among its elements. */
function asksUpgrade(connection: string | undefined): boolean {
  return connection !== undefined && TOKEN_LIST.test(connection) && listsToken(connection, 'upgrade');
}

/** Reads `data`, the first bytes of a connection; a head longer than `maxHeaderSize` is Node's. */
export function readUpgradeHead(data: Buffer, maxHeaderSize: number): HeadRead {
  if (!startsLikeUpgrade(data)) return OTHER;
  const end = data.indexOf(END_OF_HEAD);
  if (end < 0) return data.length >= maxHeaderSize ? OTHER : INCOMPLETE;
  const length = end + END_OF_HEAD.length;
  if (length > maxHeaderSize) return OTHER;
  const lineEnd = requestLineEnd(data);
  if (lineEnd === -1 || data[lineEnd] !== CR || data[lineEnd + 1] !== LF) return OTHER;
  const url = data.toString('latin1', GET_SLASH.length - 1, lineEnd - VERSION.length);
  const headers: Record<string, string> = {};
  const rawHeaders: string[] = [];
  const field = new FieldBounds();
  // Each name and value is a string of its own, so that a value kept for a tunnel's life (its
  // access-log fields) holds its own bytes, not the whole head.
  for (let start = lineEnd + 2; start < end + 2; ) {
    const stop = readField(data, start, field);
    if (stop === -1 || data[stop] !== CR || data[stop + 1] !== LF) return OTHER;
    if (rawHeaders.length >= MAX_FIELDS * 2) return OTHER;
    const name = data.toString('latin1', start, field.nameEnd);
    const lower = name.toLowerCase();
    // A name seen before, or one every object answers (`constructor`, `__proto__`): Node's heads.
    if (lower in headers) return OTHER;
    if (lower === 'content-length' || lower === 'transfer-encoding') return OTHER;
    const value = data.toString('latin1', field.valueStart, field.valueEnd);
    headers[lower] = value;
    rawHeaders.push(name, value);
    start = stop + 2;
  }
  if (!headers.upgrade || !asksUpgrade(headers.connection)) return OTHER;
  return {
    kind: 'upgrade',
    head: {
      method: 'GET',
      url,
      httpVersion: '1.1',
      httpVersionMajor: 1,
      httpVersionMinor: 1,
      headers,
      rawHeaders,
    },
    length,
  };
}
