/**
 * Checks that an upgrade request is a well-formed WebSocket opening handshake (RFC 6455 §4.2.1)
 * before anything else is spent on it: GET over HTTP/1.1, a Host, `Upgrade: websocket`,
 * `Connection: Upgrade`, a Sec-WebSocket-Key of 16 base64-encoded bytes and version 13.
 */
import { listsToken } from '../../protocol/header-rules.ts';
import type { IncomingHead } from '../../protocol/incoming-head.ts';
import { unsupportedHttpVersion } from '../../routing/request-target.ts';
import type { Rejection, UpgradeStage } from '../context.ts';

const KEY = /^[A-Za-z0-9+/]{22}==$/;

/** The rejection for a request that is not a valid opening handshake, if it is not. */
export function checkHandshake(req: IncomingHead): Rejection | undefined {
  const version = unsupportedHttpVersion(req);
  if (version) return { code: 'HTTP_VERSION_UNSUPPORTED', detail: version };
  // RFC 6455 §4.2.1 item 1: the method MUST be GET, the version at least HTTP/1.1.
  if (req.method !== 'GET') {
    return {
      code: 'HANDSHAKE_METHOD_NOT_ALLOWED',
      headers: [['Allow', 'GET']],
      detail: `method ${req.method}`,
    };
  }
  if (req.httpVersionMajor < 1 || (req.httpVersionMajor === 1 && req.httpVersionMinor < 1)) {
    return { code: 'HANDSHAKE_MALFORMED', detail: `HTTP/${req.httpVersion}` };
  }
  const headers = req.headers;
  if (!headers.host) return { code: 'HANDSHAKE_MALFORMED', detail: 'no Host header' };
  if (!listsToken(headers.upgrade, 'websocket')) {
    return { code: 'HANDSHAKE_MALFORMED', detail: `Upgrade: ${headers.upgrade ?? ''}` };
  }
  if (!listsToken(headers.connection, 'upgrade')) {
    return { code: 'HANDSHAKE_MALFORMED', detail: 'Connection header lacks "upgrade"' };
  }
  const key = headers['sec-websocket-key'];
  if (typeof key !== 'string' || !KEY.test(key.trim())) {
    return { code: 'HANDSHAKE_MALFORMED', detail: 'missing or invalid Sec-WebSocket-Key' };
  }
  // RFC 6455 §4.4: answer an unsupported version with the versions we speak.
  if (headers['sec-websocket-version']?.trim() !== '13') {
    return {
      code: 'HANDSHAKE_VERSION_UNSUPPORTED',
      headers: [['Sec-WebSocket-Version', '13']],
      detail: `version ${headers['sec-websocket-version'] ?? 'missing'}`,
    };
  }
  return undefined;
}

export const handshakeStage: UpgradeStage = { name: 'handshake', run: (ctx) => checkHandshake(ctx.req) };
