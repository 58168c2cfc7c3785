/**
 * The request head sent to a backend. Hop-by-hop headers (RFC 9110 §7.6.1: Connection and every
 * header it names, Keep-Alive, Proxy-Connection, TE, Trailer, Transfer-Encoding, Upgrade,
 * Proxy-Authorization) belong to the client's connection and are dropped; the X-Forwarded-*
 * headers are replaced with the values computed for this request, and the other headers only a
 * proxy sets (X-Real-IP, X-Forwarded-Port, -Prefix, -Server: many backends believe X-Real-IP) are
 * passed on from a trusted proxy only; X-Request-Id carries the gateway's request id. Everything
 * else, including
 * Sec-WebSocket-Key, -Protocol, -Extensions and -Version, goes through unchanged and in order, so
 * the backend chooses the subprotocol and permessage-deflate stays end to end.
 *
 * Two guards against a peer that tries to make the gateway rewrite a message for it:
 * - A Connection header can never remove a header that frames or routes the message
 *   (Content-Length, Transfer-Encoding, Host, Sec-WebSocket-*): dropping Content-Length while the
 *   body still flows turns the body into a second request (smuggling). Requests that try are
 *   refused before this point (routing/request-target.ts); responses keep the header.
 * - Underscore spellings of the headers the gateway controls (`X_Forwarded_For`, `Content_Length`)
 *   are dropped: CGI, WSGI and PHP backends read `_` and `-` as the same character, so
 *   `X_Real_IP` would pass for the X-Real-IP the gateway refused to forward.
 */
import type { ForwardedFor } from '../listener/client-address.ts';

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

const FORWARDED = new Set(['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'forwarded']);

/** Headers a proxy sets that the gateway does not compute: kept from a trusted proxy only. */
const PROXY_SET = new Set(['x-real-ip', 'x-forwarded-port', 'x-forwarded-prefix', 'x-forwarded-server']);

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
  ...PROXY_SET,
  ...FRAMING_AND_ROUTING,
  REQUEST_ID_HEADER,
]);

/** Whether a header is one that only a trusted proxy may pass on (`name` in any case). */
export function isProxySet(name: string): boolean {
  return PROXY_SET.has(name.toLowerCase());
}

/** Whether `name` (lower-cased) is an underscore spelling of a header the gateway controls. */
export function isUnderscoreAlias(lower: string): boolean {
  return lower.includes('_') && CONTROLLED.has(lower.replaceAll('_', '-'));
}

/** Every token of the Connection header(s), lower-cased. */
function listedTokens(rawHeaders: readonly string[]): string[] {
  const tokens: string[] = [];
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (rawHeaders[i]?.toLowerCase() !== 'connection') continue;
    for (const token of (rawHeaders[i + 1] ?? '').split(',')) {
      const name = token.trim().toLowerCase();
      if (name) tokens.push(name);
    }
  }
  return tokens;
}

/**
 * Header names the Connection header(s) make hop-by-hop, lower-cased; a header that frames or
 * routes the message is never among them, whatever is listed.
 */
export function connectionTokens(rawHeaders: readonly string[]): Set<string> {
  return new Set(listedTokens(rawHeaders).filter((name) => !FRAMING_AND_ROUTING.has(name)));
}

/**
 * The first header a Connection header names that frames or routes the message (Content-Length,
 * Transfer-Encoding, Host, Sec-WebSocket-*), if any. RFC 9110 §7.6.1 forbids a sender to list
 * such a header; a request that does is refused.
 */
export function connectionNamesFraming(rawHeaders: readonly string[]): string | undefined {
  return listedTokens(rawHeaders).find((name) => FRAMING_AND_ROUTING.has(name));
}

/** Whether a header must not cross the gateway (hop-by-hop, or named by Connection). */
export function isHopByHop(name: string, connectionListed: ReadonlySet<string>): boolean {
  const lower = name.toLowerCase();
  return HOP_BY_HOP.has(lower) || connectionListed.has(lower);
}

export interface UpstreamHeadOptions {
  readonly forwarded: ForwardedFor;
  /** Replaces the Host header (the backend's own host) when set. */
  readonly hostOverride: string | undefined;
  /** Sent as X-Request-Id, replacing whatever the client sent (see listener/request-id.ts). */
  readonly requestId: string;
}

/**
 * The raw header list (name, value, name, value, …) for the backend's upgrade request: the
 * client's end-to-end headers, then Connection/Upgrade and the forwarding headers.
 */
export function upstreamUpgradeHeaders(
  rawHeaders: readonly string[],
  options: UpstreamHeadOptions,
): string[] {
  const listed = connectionTokens(rawHeaders);
  const out: string[] = [];
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i] ?? '';
    const lower = name.toLowerCase();
    if (isHopByHop(lower, listed) || FORWARDED.has(lower) || isUnderscoreAlias(lower)) continue;
    if (lower === REQUEST_ID_HEADER) continue;
    if (!options.forwarded.fromTrustedProxy && PROXY_SET.has(lower)) continue;
    if (lower === 'host' && options.hostOverride !== undefined) continue;
    out.push(name, rawHeaders[i + 1] ?? '');
  }
  if (options.hostOverride !== undefined) out.push('Host', options.hostOverride);
  out.push('Connection', 'Upgrade', 'Upgrade', 'websocket');
  appendForwarded(out, options.forwarded);
  out.push('X-Request-Id', options.requestId);
  return out;
}

/** Appends X-Forwarded-For/-Proto/-Host to a raw header list. */
export function appendForwarded(out: string[], forwarded: ForwardedFor): void {
  out.push('X-Forwarded-For', forwarded.xForwardedFor, 'X-Forwarded-Proto', forwarded.xForwardedProto);
  if (forwarded.xForwardedHost !== undefined) out.push('X-Forwarded-Host', forwarded.xForwardedHost);
}

/**
 * The raw header list of the 101 sent to the client: the backend's headers (Sec-WebSocket-Accept,
 * -Protocol, -Extensions, Set-Cookie, …) minus hop-by-hop ones, then Upgrade and Connection.
 */
export function downstreamUpgradeHeaders(rawHeaders: readonly string[]): string[] {
  const listed = connectionTokens(rawHeaders);
  const out: string[] = [];
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i] ?? '';
    if (isHopByHop(name, listed)) continue;
    out.push(name, rawHeaders[i + 1] ?? '');
  }
  out.push('Upgrade', 'websocket', 'Connection', 'Upgrade');
  return out;
}
