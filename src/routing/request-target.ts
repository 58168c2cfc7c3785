/**
 * Refuses requests that a backend could read differently from the router, before any route is
 * matched. The router matches the raw request target and the gateway forwards it verbatim, so a
 * target is accepted only when every reader agrees on its path:
 * - origin-form only (RFC 9112 §3.2.1): it starts with "/"; absolute-form and "*" are refused;
 * - no backslash, which URL parsers read as "/" (WHATWG URL) while the router does not;
 * - no "#": a fragment is never part of a request target (RFC 9112 §3.2), and parsers that drop
 *   it would see a different path than the one matched;
 * - no dot segment ("." or "..", raw or percent-encoded, RFC 3986 §5.2.4, also with path
 *   parameters: "..;x") in the path part: `/public/../admin` matches a `/public` route but means
 *   `/admin` to any backend that normalizes. The query is not checked.
 * A request with several Host headers is refused as well (RFC 9112 §3.2): which one a backend
 * believes is anybody's guess, and the router saw only the first. So is a request whose
 * Connection header names a header that frames or routes it (Content-Length, Transfer-Encoding,
 * Host, Sec-WebSocket-*): a sender must not do that (RFC 9110 §7.6.1), and a proxy that obeyed
 * would forward a body without its length, i.e. smuggle it in as a second request.
 * Used by the upgrade pipeline and the plain HTTP pass alike.
 */
import { connectionNamesFraming, isNamed } from '../protocol/header-rules.ts';

/**
 * Why a request's HTTP version is refused (505), or undefined for HTTP/1.0 and HTTP/1.1. Node's
 * parser also accepts `HTTP/2.0` and `HTTP/0.9` request lines on an HTTP/1 connection; forwarded,
 * they would reach the backend as HTTP/1.1 requests of a protocol the client never spoke.
 */
export function unsupportedHttpVersion(req: {
  readonly httpVersionMajor: number;
  readonly httpVersionMinor: number;
}): string | undefined {
  if (req.httpVersionMajor === 1 && (req.httpVersionMinor === 0 || req.httpVersionMinor === 1)) {
    return undefined;
  }
  return `HTTP/${req.httpVersionMajor}.${req.httpVersionMinor}`;
}

/** "." or "..", each dot raw or percent-encoded (%2e, any case). */
const DOT_SEGMENT = /^(?:\.|%2e){1,2}$/i;

/**
 * Whether a path holds a dot segment, also one followed by path parameters (`..;x`), which
 * servlet containers strip before they resolve dots: `/api/..;/admin` is `/admin` to them.
 */
export function hasDotSegment(path: string): boolean {
  for (const segment of path.split('/')) {
    const semicolon = segment.indexOf(';');
    if (DOT_SEGMENT.test(semicolon === -1 ? segment : segment.slice(0, semicolon))) return true;
  }
  return false;
}

/** Why `target` (a request's raw target, `req.url`) is refused, or undefined when it is fine. */
export function checkRequestTarget(target: string): string | undefined {
  if (!target.startsWith('/')) return 'the request target is not a path';
  if (target.includes('\\')) return 'the request target holds a backslash';
  if (target.includes('#')) return 'the request target holds a fragment';
  const queryAt = target.indexOf('?');
  if (hasDotSegment(queryAt === -1 ? target : target.slice(0, queryAt))) {
    return 'the request path holds a dot segment';
  }
  return undefined;
}

/** How many `name` (lower case) header lines a raw header list (name, value, name, value, …) holds. */
export function headerCount(rawHeaders: readonly string[], name: string): number {
  let count = 0;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (isNamed(rawHeaders[i], name)) count++;
  }
  return count;
}

/** uri-host[:port] (RFC 9110 §7.2): a bracketed IPv6 address, or a name or IPv4 address. */
const HOST_VALUE = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_.])?)(?::(\d{1,5}))?$/;

/**
 * Why a Host value is refused, if it is: anything but host[:port]. `a:1@b`, `a, b`, `a/b` or
 * `[name]` would be routed on one reading here and read as another host by a backend that
 * parses it as a URL authority. An empty value is what RFC 9112 §3.2 asks for when the target
 * has no authority.
 */
export function checkHostValue(value: string): string | undefined {
  if (value === '') return undefined;
  const match = HOST_VALUE.exec(value);
  if (!match || value.includes('..'))
    return 'the Host header is not a host name or address with an optional port';
  if (match[1] !== undefined && Number(match[1]) > 65_535) return 'the Host header names a port above 65535';
  return undefined;
}

/** Why a request is refused as malformed (target or Host headers), or undefined when it is fine. */
export function checkRequest(req: {
  readonly url?: string | undefined;
  readonly rawHeaders: readonly string[];
  /** HTTP/1.1 requires a Host header (RFC 9112 §3.2); HTTP/1.0 does not. */
  readonly httpVersion?: string;
}): string | undefined {
  const hosts = headerCount(req.rawHeaders, 'host');
  if (hosts > 1) return 'several Host headers';
  // Node reads the first Authorization and forwards an upgrade's raw headers: a second one, which
  // a backend may read instead, would travel unchecked (RFC 9110 §11.6.2 allows one).
  if (headerCount(req.rawHeaders, 'authorization') > 1) return 'several Authorization headers';
  if (hosts === 0 && req.httpVersion === '1.1') return 'no Host header';
  const hostAt = req.rawHeaders.findIndex((name, index) => index % 2 === 0 && isNamed(name, 'host'));
  const host = hostAt === -1 ? undefined : checkHostValue((req.rawHeaders[hostAt + 1] ?? '').trim());
  if (host) return host;
  const framing = connectionNamesFraming(req.rawHeaders);
  if (framing) return `the Connection header names ${framing}`;
  return checkRequestTarget(req.url ?? '');
}
