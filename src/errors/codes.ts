/**
 * The one table of outcome codes. Every way a handshake, an HTTP request or a tunnel can end
 * that is not a plain success has a code here, with the phase it belongs to, what each side is
 * told (an HTTP status before the 101; after it, the close frame the gateway writes to the client
 * and to the backend), who caused it and the log level it deserves. The tunnel reads its close
 * frames from here and nowhere else. Metrics and access logs label with these codes, never with
 * free text, and `docs/errors.md` lists every one of them (a test keeps the two in sync).
 * The rows for tunnels (after the 101) are in tunnel-codes.ts.
 */
import type { CodeInfo } from './code-info.ts';
import { TUNNEL_CODES } from './tunnel-codes.ts';

export type { CloseFrame, Closes, CodeInfo, LogLevel, Phase, Source } from './code-info.ts';

export const CODES = {
  // Handshake, answered by the gateway before any backend is contacted.
  HANDSHAKE_METHOD_NOT_ALLOWED: {
    phase: 'handshake',
    status: 405,
    closes: {},
    source: 'downstream',
    level: 'debug',
    description: 'The upgrade request used a method other than GET (RFC 6455 §4.2.1 item 1).',
  },
  HANDSHAKE_MALFORMED: {
    phase: 'handshake',
    status: 400,
    closes: {},
    source: 'downstream',
    level: 'debug',
    description:
      'Upgrade, Connection, Sec-WebSocket-Key or Host missing or invalid, or HTTP/1.0 (RFC 6455 §4.2.1).',
  },
  ORIGIN_REFUSED: {
    phase: 'handshake',
    status: 403,
    closes: {},
    source: 'downstream',
    level: 'info',
    description:
      "The request's Origin is not in the route's `origins.allow`, is not an origin, or is missing where `origins.missing` is `refuse`; the backend is never contacted.",
  },
  AUTH_TOKEN_MISSING: {
    phase: 'handshake',
    status: 401,
    closes: {},
    source: 'downstream',
    level: 'info',
    description:
      'The route asks for a token (`auth.keySet`) and none was found where `auth.tokenFrom` looks; answered with `WWW-Authenticate: Bearer` (RFC 6750 §3). Plain HTTP requests too.',
  },
  AUTH_TOKEN_INVALID: {
    phase: 'handshake',
    status: 401,
    closes: {},
    source: 'downstream',
    level: 'info',
    description:
      'The token is malformed, signed with an algorithm the route does not allow or a key it does not know, has a bad signature, is expired or not yet valid (beyond `clockTolerance`), has the wrong `iss` or `aud`, or lacks `exp`; answered with `WWW-Authenticate: Bearer error="invalid_token"`. The log line says which (`reason`).',
  },
  AUTH_INSUFFICIENT: {
    phase: 'handshake',
    status: 403,
    closes: {},
    source: 'downstream',
    level: 'info',
    description:
      'The token is valid but lacks a claim value in `auth.requiredClaims`; answered with `WWW-Authenticate: Bearer error="insufficient_scope"`.',
  },
  AUTH_KEYS_UNAVAILABLE: {
    phase: 'handshake',
    status: 503,
    closes: {},
    source: 'gateway',
    level: 'warn',
    description:
      "The route's JWKS was never fetched (the identity provider has been unreachable since start): tokens cannot be checked, so they are refused (fail closed); answered with Retry-After.",
  },
  SUBJECT_CONNECTIONS_EXCEEDED: {
    phase: 'handshake',
    status: 429,
    closes: {},
    source: 'downstream',
    level: 'info',
    description:
      "The token's subject (`iss` and `sub`) holds `admission.perSubject.maxConnections` WebSocket connections already; answered with Retry-After.",
  },
  HANDSHAKE_VERSION_UNSUPPORTED: {
    phase: 'handshake',
    status: 426,
    closes: {},
    source: 'downstream',
    level: 'debug',
    description:
      'Sec-WebSocket-Version is not 13; answered with `Sec-WebSocket-Version: 13` (RFC 6455 §4.4).',
  },
  ROUTE_NOT_FOUND: {
    phase: 'handshake',
    status: 404,
    closes: {},
    source: 'downstream',
    level: 'debug',
    description: 'No route matches the request host and path (also used for plain HTTP requests).',
  },
  REQUEST_MALFORMED: {
    phase: 'handshake',
    status: 400,
    closes: {},
    source: 'downstream',
    level: 'debug',
    description:
      'A request a backend could read differently from the router (upgrades and plain HTTP): several Host headers, none on HTTP/1.1, or one that is not host[:port] (`a:1@b`, `a, b`); several Authorization headers; a Connection header naming Content-Length, Transfer-Encoding, Host or a Sec-WebSocket-* header (request smuggling); a request target that is not a plain path ("/…") or holds a backslash, a fragment ("#") or a dot segment (".", "..", also encoded or as "..;x"); an encoded slash (%2F, %5C) that would move the request to another route or hides a dot segment. The connection is closed after the answer.',
  },
  HTTP_VERSION_UNSUPPORTED: {
    phase: 'handshake',
    status: 505,
    closes: {},
    source: 'downstream',
    level: 'debug',
    description:
      'The request line names an HTTP version other than 1.0 or 1.1 (e.g. `HTTP/2.0` or `HTTP/0.9` on an HTTP/1 connection), which the gateway would otherwise forward as HTTP/1.1 (RFC 9110 §15.6.6).',
  },
  GATEWAY_FULL: {
    phase: 'handshake',
    status: 503,
    closes: {},
    source: 'gateway',
    level: 'warn',
    description:
      'The gateway holds `admission.maxConnections` WebSocket connections already; answered with Retry-After.',
  },
  CLIENT_CONNECTIONS_EXCEEDED: {
    phase: 'handshake',
    status: 429,
    closes: {},
    source: 'downstream',
    level: 'info',
    description:
      'The client address holds `admission.perClient.maxConnections` WebSocket connections already; answered with Retry-After.',
  },
  HANDSHAKE_RATE_LIMITED: {
    phase: 'handshake',
    status: 429,
    closes: {},
    source: 'downstream',
    level: 'info',
    description:
      'The client address went over `admission.perClient.handshakeRate`; answered with Retry-After (the seconds until its next token).',
  },
  LIMIT_STORE_UNREACHABLE: {
    phase: 'handshake',
    status: 503,
    closes: {},
    source: 'gateway',
    level: 'warn',
    description:
      'The Redis limit store could not be asked (not connected, an error, or no answer within its `timeout`) and `admission.store.redis.whenUnreachable` is `closed`; answered with Retry-After.',
  },
  CLIENT_TRACKING_FULL: {
    phase: 'handshake',
    status: 429,
    closes: {},
    source: 'gateway',
    level: 'warn',
    description:
      'Every one of the `admission.maxTrackedClients` remembered addresses is busy, so a new address cannot be tracked: a flood of addresses.',
  },
  GATEWAY_DRAINING: {
    phase: 'handshake',
    status: 503,
    closes: {},
    source: 'gateway',
    level: 'info',
    description: 'The gateway is shutting down and accepts no new upgrades or requests.',
  },
  CLIENT_GONE: {
    phase: 'handshake',
    status: 0,
    closes: {},
    source: 'downstream',
    level: 'debug',
    description: 'The client disconnected before the handshake completed.',
  },
  NO_BACKEND: {
    phase: 'handshake',
    status: 503,
    closes: {},
    source: 'gateway',
    level: 'warn',
    description:
      "The route's pool has no backend: every entry is discovered (`discover`) and no lookup has found an address yet. Plain HTTP requests too.",
  },
  // Handshake, decided by what the backend did.
  UPSTREAM_CONNECT_FAILED: {
    phase: 'handshake',
    status: 502,
    closes: {},
    source: 'upstream',
    level: 'warn',
    description: 'Connecting to every candidate backend failed (refused, reset, DNS or TLS error).',
  },
  UPSTREAM_CONNECT_TIMEOUT: {
    phase: 'handshake',
    status: 504,
    closes: {},
    source: 'upstream',
    level: 'warn',
    description: 'The last candidate backend did not accept the connection within `connectTimeout`.',
  },
  UPSTREAM_HANDSHAKE_TIMEOUT: {
    phase: 'handshake',
    status: 504,
    closes: {},
    source: 'upstream',
    level: 'warn',
    description:
      'The backend accepted the connection but did not answer the upgrade within `handshakeTimeout`.',
  },
  UPSTREAM_REJECTED: {
    phase: 'handshake',
    status: 0,
    closes: {},
    source: 'upstream',
    level: 'info',
    description:
      'The backend answered the upgrade with a 4xx status; its status, headers and body are relayed.',
  },
  UPSTREAM_BAD_RESPONSE: {
    phase: 'handshake',
    status: 502,
    closes: {},
    source: 'upstream',
    level: 'warn',
    description:
      'The backend answered the upgrade with neither 101 nor 4xx, or broke the connection before answering.',
  },
  INTERNAL_ERROR: {
    phase: 'handshake',
    status: 500,
    closes: { client: [1011, 'internal error'], backend: [1011, 'internal error'] },
    source: 'gateway',
    level: 'error',
    description: 'A bug in the gateway; the stack is logged. After the 101 the client gets close code 1011.',
  },
  // Plain HTTP requests (long-polling, SSE, xhr-streaming fallbacks).
  TRANSFER_CODING_UNSUPPORTED: {
    phase: 'http',
    status: 501,
    closes: {},
    source: 'downstream',
    level: 'debug',
    description:
      'A request body sent with a Transfer-Encoding other than plain `chunked` (`gzip, chunked`, `identity`, …): backends disagree on how to read such a body, a way to smuggle a request through the ones that read it differently (RFC 9112 §6.1 lets a server refuse a coding with 501).',
  },
  HTTP_CLIENT_GONE: {
    phase: 'http',
    status: 0,
    closes: {},
    source: 'downstream',
    level: 'debug',
    description:
      'The client closed its connection before any answer was sent; logged and counted with status 499, as nginx does.',
  },
  HTTP_UPSTREAM_FAILED: {
    phase: 'http',
    status: 502,
    closes: {},
    source: 'upstream',
    level: 'warn',
    description: 'A proxied HTTP request failed before the backend answered (connect error or reset).',
  },
  HTTP_UPSTREAM_TIMEOUT: {
    phase: 'http',
    status: 504,
    closes: {},
    source: 'upstream',
    level: 'warn',
    description:
      'A proxied HTTP request could not connect within `connectTimeout`, or the backend did not start its answer within `responseTimeout`.',
  },
  HTTP_UPSTREAM_BAD_RESPONSE: {
    phase: 'http',
    status: 502,
    closes: {},
    source: 'upstream',
    level: 'warn',
    description:
      'The backend answered a proxied HTTP request with a status that cannot be relayed (below 200 or above 999), switched protocols (101) on a plain request, or closed the connection without an answer.',
  },
  HTTP_UPSTREAM_ABORTED: {
    phase: 'http',
    status: 0,
    closes: {},
    source: 'upstream',
    level: 'info',
    description:
      'The backend broke a proxied HTTP response after its status line; the client connection is cut.',
  },
  ...TUNNEL_CODES,
} as const satisfies Record<string, CodeInfo>;

/** A code's row, typed as a row (indexing CODES with a union of codes gives a union of literals). */
export function codeInfo(code: ErrorCode): CodeInfo {
  return CODES[code];
}

export type ErrorCode = keyof typeof CODES;

/**
 * The `Retry-After` (RFC 9110 §10.2.3) sent with every 503 the gateway answers, in seconds: long
 * enough for a load balancer to pick another instance, short enough not to stall a reconnect.
 */
const RETRY_AFTER_SECONDS = '1';

/** Headers every answer of the gateway with `status` carries (Retry-After with a 503). */
export function headersForStatus(status: number): Readonly<Record<string, string>> {
  return status === 503 ? { 'retry-after': RETRY_AFTER_SECONDS } : {};
}
