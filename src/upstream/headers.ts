/**
 * The heads of a WebSocket handshake as they cross the gateway, by the rules of
 * protocol/header-rules.ts. Toward the backend: hop-by-hop headers and underscore spellings of
 * controlled headers dropped, X-Forwarded-* replaced with the values computed for this request,
 * the other proxy-set headers (X-Real-IP, X-Forwarded-Port, -Prefix, -Server: many backends
 * believe X-Real-IP) passed on from a trusted proxy only, X-Request-Id set to the request id.
 * The route's stages may remove headers and set others (front/request-stage.ts). Everything else,
 * including Sec-WebSocket-Key, -Protocol, -Extensions and -Version, goes through unchanged and in order, so the backend chooses the subprotocol and permessage-deflate stays end
 * to end. Toward the client, the backend's 101 minus its hop-by-hop headers; a Connection header
 * never removes a framing or handshake header (requests that try are refused earlier, in
 * routing/request-target.ts).
 */

import type { ForwardedFor } from '../listener/client-address.ts';
import {
  connectionTokens,
  isHopByHop,
  isNamed,
  isReplacedForwarding,
  isUnderscoreAlias,
  PROXY_SET_HEADERS,
  REQUEST_ID_HEADER,
} from '../protocol/header-rules.ts';
import { removes, type UpstreamEdits } from './edits.ts';

export interface UpstreamHeadOptions {
  readonly forwarded: ForwardedFor;
  /** What the route's stages remove and set. */
  readonly edits: UpstreamEdits;
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
    if (isHopByHop(lower, listed) || isReplacedForwarding(lower) || isUnderscoreAlias(lower)) continue;
    if (lower === REQUEST_ID_HEADER) continue;
    if (!options.forwarded.fromTrustedProxy && PROXY_SET_HEADERS.has(lower)) continue;
    if (lower === 'host' && options.hostOverride !== undefined) continue;
    if (removes(options.edits, lower)) continue;
    out.push(name, rawHeaders[i + 1] ?? '');
  }
  for (const [name, value] of options.edits.set) out.push(name, value);
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
 * `fallbackProtocol` is named when the backend chose no subprotocol (the token marker the client
 * offered, see auth/token-sources.ts).
 */
export function downstreamUpgradeHeaders(rawHeaders: readonly string[], fallbackProtocol?: string): string[] {
  const listed = connectionTokens(rawHeaders);
  const out: string[] = [];
  let protocol = false;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i] ?? '';
    if (isHopByHop(name, listed)) continue;
    if (isNamed(name, 'sec-websocket-protocol')) protocol = true;
    out.push(name, rawHeaders[i + 1] ?? '');
  }
  // A browser that offered subprotocols fails a 101 that names none: the token's marker it offered stands in.
  if (!protocol && fallbackProtocol !== undefined) out.push('Sec-WebSocket-Protocol', fallbackProtocol);
  out.push('Upgrade', 'websocket', 'Connection', 'Upgrade');
  return out;
}
