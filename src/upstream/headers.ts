/**
 * The request head sent to a backend. Hop-by-hop headers (RFC 9110 §7.6.1: Connection and every
 * header it names, Keep-Alive, Proxy-Connection, TE, Trailer, Transfer-Encoding, Upgrade,
 * Proxy-Authorization) belong to the client's connection and are dropped; the X-Forwarded-*
 * headers are replaced with the values computed for this request, and the other headers only a
 * proxy sets (X-Real-IP, X-Forwarded-Port, -Prefix, -Server: many backends believe X-Real-IP) are
 * passed on from a trusted proxy only. Everything else, including
 * Sec-WebSocket-Key, -Protocol, -Extensions and -Version, goes through unchanged and in order, so
 * the backend chooses the subprotocol and permessage-deflate stays end to end.
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

/** Whether a header is one that only a trusted proxy may pass on (`name` in any case). */
export function isProxySet(name: string): boolean {
  return PROXY_SET.has(name.toLowerCase());
}

/** Header names listed in the Connection header(s), lower-cased. */
export function connectionTokens(rawHeaders: readonly string[]): Set<string> {
  const tokens = new Set<string>();
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (rawHeaders[i]?.toLowerCase() !== 'connection') continue;
    for (const token of (rawHeaders[i + 1] ?? '').split(',')) {
      const name = token.trim().toLowerCase();
      if (name) tokens.add(name);
    }
  }
  return tokens;
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
    if (isHopByHop(lower, listed) || FORWARDED.has(lower)) continue;
    if (!options.forwarded.fromTrustedProxy && PROXY_SET.has(lower)) continue;
    if (lower === 'host' && options.hostOverride !== undefined) continue;
    out.push(name, rawHeaders[i + 1] ?? '');
  }
  if (options.hostOverride !== undefined) out.push('Host', options.hostOverride);
  out.push('Connection', 'Upgrade', 'Upgrade', 'websocket');
  appendForwarded(out, options.forwarded);
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
