/**
 * The header rules of HTTP/1.1 as a proxy must apply them, shared by every part that reads or
 * writes a head: which headers are hop-by-hop (RFC 9110 §7.6.1: Connection and every header it
 * names, Keep-Alive, Proxy-Connection, TE, Trailer, Transfer-Encoding, Upgrade,
 * Proxy-Authorization), which frame or route a message and so stay end to end whatever a
 * Connection header lists (Content-Length, Transfer-Encoding, Host, Sec-WebSocket-*: dropping
 * Content-Length while the body still flows turns the body into a second request), which the
 * gateway computes or passes from trusted proxies only, and the underscore spellings of all of
 * these (`X_Forwarded_For`), which CGI, WSGI and PHP backends read as the real names.
 */

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'proxy-authorization',
  'http2-settings',
]);

/** Forwarding headers the gateway computes itself and always replaces. */
const FORWARDED = new Set(['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'forwarded']);

/** Whether `lower` (a lower-cased name) is a forwarding header the gateway replaces. */
export function isReplacedForwarding(lower: string): boolean {
  return FORWARDED.has(lower);
}

/** Headers a proxy sets that the gateway does not compute: kept from a trusted proxy only. */
export const PROXY_SET_HEADERS: ReadonlySet<string> = new Set([
  'x-real-ip',
  'x-forwarded-port',
  'x-forwarded-prefix',
  'x-forwarded-server',
]);

/** Headers that frame or route a message: end to end whatever a Connection header says. */
const FRAMING_AND_ROUTING = new Set([
  'content-length',
  'transfer-encoding',
  'host',
  'sec-websocket-key',
  'sec-websocket-version',
  'sec-websocket-protocol',
  'sec-websocket-extensions',
  'sec-websocket-accept',
]);

/** The correlation header the gateway sets (see upgrade and HTTP access logs). */
export const REQUEST_ID_HEADER = 'x-request-id';

/** Every header whose presence or value the gateway decides: their `_` spellings never pass. */
const CONTROLLED = new Set([
  ...HOP_BY_HOP,
  ...FORWARDED,
  ...PROXY_SET_HEADERS,
  ...FRAMING_AND_ROUTING,
  REQUEST_ID_HEADER,
]);

/** Whether a header is one that only a trusted proxy may pass on (`name` in any case). */
export function isProxySet(name: string): boolean {
  return PROXY_SET_HEADERS.has(name.toLowerCase());
}

/** Whether `name` (lower-cased) is an underscore spelling of a header the gateway controls. */
export function isUnderscoreAlias(lower: string): boolean {
  return lower.includes('_') && CONTROLLED.has(lower.replaceAll('_', '-'));
}

/** One character of a token (RFC 9110 §5.6.2), as a pattern. */
const TCHAR = "[!#$%&'*+\\-.^_`|~0-9A-Za-z]";

/** A token: a header name, a method, an element of Connection or Upgrade. */
export const TOKEN: RegExp = new RegExp(`^${TCHAR}+$`);

/** A comma-separated list whose every element is a token (spaces and tabs around the commas). */
export const TOKEN_LIST: RegExp = new RegExp(`^${TCHAR}+(?:[ \\t]*,[ \\t]*${TCHAR}+)*$`);

/** Whether `code` is optional whitespace (RFC 9110 §5.6.3: a space or a tab). */
function isOws(code: number): boolean {
  return code === 0x20 || code === 0x09;
}

/** Whether `text` from `start` to `end` is `lower` (lower case) in any ASCII case. */
function sameIgnoringCase(text: string, start: number, end: number, lower: string): boolean {
  if (end - start !== lower.length) return false;
  for (let i = 0; i < lower.length; i++) {
    const code = text.charCodeAt(start + i);
    // Only A–Z fold: no other character may stand for a letter of the token.
    if ((code >= 0x41 && code <= 0x5a ? code + 0x20 : code) !== lower.charCodeAt(i)) return false;
  }
  return true;
}

/** Whether `text` from `start` to `end`, without the spaces and tabs around it, is `lower` in any ASCII case. */
function elementIs(text: string, start: number, end: number, lower: string): boolean {
  let first = start;
  let last = end;
  while (first < last && isOws(text.charCodeAt(first))) first++;
  while (last > first && isOws(text.charCodeAt(last - 1))) last--;
  return sameIgnoringCase(text, first, last, lower);
}

/** Whether header name `name` is `lower` (a lower-case name) in any case. */
export function isNamed(name: string | undefined, lower: string): boolean {
  return name !== undefined && sameIgnoringCase(name, 0, name.length, lower);
}

/**
 * Whether a comma-separated header value lists `token` (lower case; compared in any ASCII case,
 * each element without the spaces and tabs around it). Only those are whitespace there (RFC 9110
 * §5.6.3): `websocket\xa0` is not the token `websocket`, in a client's Upgrade or a backend's
 * Connection. (Where a Connection header names headers to drop, listedTokens trims more widely:
 * there, reading more names costs nothing but a header dropped.) Allocates nothing: it runs on
 * every handshake, several times.
 */
export function listsToken(value: string | undefined, token: string): boolean {
  if (!value) return false;
  let start = 0;
  while (start <= value.length) {
    const comma = value.indexOf(',', start);
    const end = comma === -1 ? value.length : comma;
    if (elementIs(value, start, end, token)) return true;
    start = end + 1;
  }
  return false;
}

/** Every token of the Connection header(s), lower-cased. */
function listedTokens(rawHeaders: readonly string[]): string[] {
  const tokens: string[] = [];
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (!isNamed(rawHeaders[i], 'connection')) continue;
    for (const token of (rawHeaders[i + 1] ?? '').split(',')) {
      const name = token.trim().toLowerCase();
      if (name) tokens.push(name);
    }
  }
  return tokens;
}

/** Whether a Connection value lists nothing but `upgrade` (the value of nearly every handshake). */
function onlyUpgrade(rawHeaders: readonly string[]): boolean {
  let seen = false;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (!isNamed(rawHeaders[i], 'connection')) continue;
    const value = rawHeaders[i + 1] ?? '';
    if (!elementIs(value, 0, value.length, 'upgrade')) return false;
    seen = true;
  }
  return seen;
}

/**
 * Header names the Connection header(s) make hop-by-hop, lower-cased; a header that frames or
 * routes the message is never among them, whatever is listed.
 */
export function connectionTokens(rawHeaders: readonly string[]): ReadonlySet<string> {
  if (onlyUpgrade(rawHeaders)) return NONE_LISTED;
  let listed: Set<string> | undefined;
  for (const name of listedTokens(rawHeaders)) {
    // Hop-by-hop headers go whether listed or not: `Connection: Upgrade` leaves nothing to add.
    if (HOP_BY_HOP.has(name) || FRAMING_AND_ROUTING.has(name)) continue;
    listed ??= new Set();
    listed.add(name);
  }
  return listed ?? NONE_LISTED;
}

const NONE_LISTED: ReadonlySet<string> = new Set();

/**
 * The first header a Connection header names that frames or routes the message (Content-Length,
 * Transfer-Encoding, Host, Sec-WebSocket-*), if any. RFC 9110 §7.6.1 forbids a sender to list
 * such a header; a request that does is refused.
 */
export function connectionNamesFraming(rawHeaders: readonly string[]): string | undefined {
  if (onlyUpgrade(rawHeaders)) return undefined;
  return listedTokens(rawHeaders).find((name) => FRAMING_AND_ROUTING.has(name));
}

/** Whether a header must not cross the gateway (hop-by-hop, or named by Connection). */
export function isHopByHop(name: string, connectionListed: ReadonlySet<string>): boolean {
  const lower = name.toLowerCase();
  return HOP_BY_HOP.has(lower) || connectionListed.has(lower);
}
