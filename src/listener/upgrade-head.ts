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
import { listsToken, TOKEN, TOKEN_LIST } from '../protocol/header-rules.ts';

/** The request line accepted: GET, an origin-form target, HTTP/1.1. */
const REQUEST_LINE = /^GET (\/[A-Za-z0-9\-._~!$&'()*+,;=:@/?%]*) HTTP\/1\.1$/;
/** A field value with its surrounding whitespace: visible ASCII, spaces and tabs only. */
const FIELD_VALUE = /^[\t\x20-\x7e]*$/;
/** More header lines than this, and Node reads the head. */
export const MAX_FIELDS = 100;
const END_OF_HEAD = Buffer.from('\r\n\r\n', 'latin1');
const CRLF = Buffer.from('\r\n', 'latin1');
const METHOD_AND_SLASH = 'GET /';

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
  const prefix = Math.min(data.length, METHOD_AND_SLASH.length);
  return data.toString('latin1', 0, prefix) === METHOD_AND_SLASH.slice(0, prefix);
}

/** The target of an upgrade's request line, or undefined when the line is not one. */
export function requestTarget(line: string): string | undefined {
  return REQUEST_LINE.exec(line)?.[1];
}

/** A header line's name and its value with surrounding whitespace, when both fit the grammar. */
export function splitField(line: string): { readonly name: string; readonly padded: string } | undefined {
  const colon = line.indexOf(':');
  if (colon <= 0) return undefined;
  const name = line.slice(0, colon);
  const padded = line.slice(colon + 1);
  return TOKEN.test(name) && FIELD_VALUE.test(padded) ? { name, padded } : undefined;
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
  const firstEnd = data.indexOf(CRLF, 0);
  const url = requestTarget(data.toString('latin1', 0, firstEnd));
  if (url === undefined) return OTHER;
  const headers: Record<string, string> = {};
  const rawHeaders: string[] = [];
  // Each line is a string of its own, so that a value kept for a tunnel's life (its access-log
  // fields) holds its own line, not the whole head.
  for (let start = firstEnd + CRLF.length; start < length - CRLF.length; ) {
    const lineEnd = data.indexOf(CRLF, start);
    const line = data.toString('latin1', start, lineEnd);
    start = lineEnd + CRLF.length;
    if (rawHeaders.length >= MAX_FIELDS * 2) return OTHER;
    const field = splitField(line);
    if (field === undefined) return OTHER;
    const { name, padded } = field;
    const lower = name.toLowerCase();
    // A name seen before, or one every object answers (`constructor`, `__proto__`): Node's heads.
    if (lower in headers) return OTHER;
    if (lower === 'content-length' || lower === 'transfer-encoding') return OTHER;
    // Only spaces and tabs can surround a value that passed FIELD_VALUE, and trim() takes both.
    const value = padded.trim();
    headers[lower] = value;
    rawHeaders.push(name, value);
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
