/**
 * The head of a plain HTTP request as it leaves for the backend, rewritten in place on the
 * incoming request (http-proxy-3 copies `req.headers`): hop-by-hop headers dropped (body framing
 * kept), `Expect` dropped (Node's server answered it already, RFC 9110 §10.1.1), Forwarded and
 * X-Forwarded-For/-Proto/-Host replaced with the values computed for this request, and the other
 * proxy-set headers (X-Real-IP, X-Forwarded-Port, -Prefix, -Server) kept from a trusted proxy
 * only, underscore spellings of all of these dropped, and X-Request-Id set to the request id; then
 * what the route's stages remove and set (front/request-stage.ts). The same rules as an upgrade's
 * head (upstream/headers.ts).
 */
import type { IncomingMessage } from 'node:http';
import type { ForwardedFor } from '../listener/client-address.ts';
import {
  connectionTokens,
  isHopByHop,
  isProxySet,
  isUnderscoreAlias,
  REQUEST_ID_HEADER,
} from '../protocol/header-rules.ts';
import { removes, type UpstreamEdits } from '../upstream/edits.ts';

/** Hop-by-hop headers that still describe the body the backend receives. */
const KEEP_FRAMING = new Set(['transfer-encoding']);

/** Rewrites `req.headers` (and the target, if a stage changed it) into the head sent to the backend. */
export function prepareRequestHead(
  req: IncomingMessage,
  forwarded: ForwardedFor,
  requestId: string,
  edits: UpstreamEdits,
): void {
  const listed = connectionTokens(req.rawHeaders);
  for (const name of Object.keys(req.headers)) {
    if (removes(edits, name)) delete req.headers[name];
    if (isHopByHop(name, listed) && !KEEP_FRAMING.has(name)) delete req.headers[name];
    else if (isUnderscoreAlias(name)) delete req.headers[name];
    else if (!forwarded.fromTrustedProxy && isProxySet(name)) delete req.headers[name];
  }
  delete req.headers.forwarded;
  delete req.headers.expect;
  req.headers['x-forwarded-for'] = forwarded.xForwardedFor;
  req.headers['x-forwarded-proto'] = forwarded.xForwardedProto;
  req.headers[REQUEST_ID_HEADER] = requestId;
  if (forwarded.xForwardedHost !== undefined) req.headers['x-forwarded-host'] = forwarded.xForwardedHost;
  else delete req.headers['x-forwarded-host'];
  for (const [name, value] of edits.set) req.headers[name.toLowerCase()] = value;
  if (edits.target !== undefined) req.url = edits.target;
}

/** Whether the request has a body (whose bytes may be gone once sent: never replayed). */
export function hasBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}
