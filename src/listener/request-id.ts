/**
 * The request id that ties together the gateway's log lines for a request or a WebSocket and the
 * backend's own (sent to it as `X-Request-Id`). A trusted proxy's id is kept, so that one id
 * follows the request from the edge to the backend; from anyone else the header is replaced,
 * since a client could otherwise choose ids that collide with other requests in the logs.
 */
import { randomUUID } from 'node:crypto';
import { REQUEST_ID_HEADER } from '../protocol/header-rules.ts';

/** What an id may look like to be kept: visible ASCII, of a sensible length. */
const KEEPABLE = /^[\x21-\x7e]{1,200}$/;

/** The id for a request whose headers are `headers`, from a trusted proxy or not. */
export function requestIdFor(
  headers: Readonly<Record<string, string | string[] | undefined>>,
  fromTrustedProxy: boolean,
): string {
  const sent = headers[REQUEST_ID_HEADER];
  if (fromTrustedProxy && typeof sent === 'string' && KEEPABLE.test(sent)) return sent;
  return randomUUID();
}
