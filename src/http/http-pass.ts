/**
 * Plain HTTP on the same routes as the WebSockets: the long-polling, SSE and xhr-streaming
 * fallbacks of Socket.IO and SockJS must reach the same pool. Requests and responses are streamed
 * both ways by http-proxy-3 (nothing is buffered), over keep-alive connections per pool. A request
 * without a body whose connect fails is retried on the next candidate, like an upgrade; one with a
 * body is not, since its bytes may already be gone.
 *
 * The response head is written here rather than by http-proxy-3: only the backend's end-to-end
 * headers are relayed, so the client's own connection (Connection, Keep-Alive, framing) is left to
 * Node, and a response the backend breaks off cuts the client connection instead of hanging it.
 * `connectTimeout` is enforced here too, up to `secureConnect` for https:// backends, because
 * http-proxy-3's own timer stops at the TCP connect and a silent TLS peer would hang the request.
 */
import { type IncomingMessage, type ServerResponse, STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import { createProxyServer, type ProxyServer } from 'http-proxy-3';
import { CODES, type ErrorCode } from '../errors/codes.ts';
import { forwardedFor, type TrustedProxies } from '../listener/client-address.ts';
import type { ConnectionRegistry } from '../listener/registry.ts';
import type { Logger } from '../observability/logger.ts';
import type { GatewayMetrics } from '../observability/metrics.ts';
import { hostName } from '../routing/host.ts';
import type { Router } from '../routing/router.ts';
import type { ListenerInfo } from '../upgrade/context.ts';
import { connectionTokens, isHopByHop } from '../upstream/headers.ts';
import type { Backend, Pool } from '../upstream/pool.ts';

/** Errors that happen before a connection to the backend exists: safe to retry elsewhere. */
const CONNECT_ERRORS = new Set([
  'ECONNREFUSED',
  'ECONNECT_TIMEOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/** Headers that belong to the client's hop and must not reach the backend. Body framing stays. */
const KEEP_FRAMING = new Set(['transfer-encoding']);

/** What the proxy's events need to know about the attempt a request is on. */
interface Attempt {
  readonly route: string;
  readonly backend: Backend;
  readonly connectTimeoutMs: number;
}

export interface HttpPassOptions {
  readonly router: Router;
  readonly pools: ReadonlyMap<string, Pool>;
  readonly trustedProxies: TrustedProxies;
  readonly metrics: GatewayMetrics;
  readonly registry: ConnectionRegistry;
  readonly log: Logger;
  readonly isDraining: () => boolean;
}

function errorCodeOf(error: unknown): string {
  return error instanceof Error && 'code' in error ? String(error.code) : '';
}

function hasBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

/**
 * Destroys a new backend socket that is not connected (TCP, and TLS for https://) within
 * `timeoutMs`; the request then fails with ECONNECT_TIMEOUT. A reused keep-alive socket is ready.
 */
function armConnectTimeout(socket: Socket, timeoutMs: number): void {
  if (!socket.connecting) return;
  const ready = socket instanceof TLSSocket ? 'secureConnect' : 'connect';
  const clear = (): void => {
    clearTimeout(timer);
    socket.off(ready, clear);
    socket.off('close', clear);
  };
  const timer = setTimeout(() => {
    clear();
    const error: NodeJS.ErrnoException = new Error(`not connected within ${timeoutMs} ms`);
    error.code = 'ECONNECT_TIMEOUT';
    socket.destroy(error);
  }, timeoutMs);
  socket.once(ready, clear);
  socket.once('close', clear);
}

export class HttpPass {
  readonly #options: HttpPassOptions;
  readonly #proxy: ProxyServer;
  readonly #attempts = new WeakMap<IncomingMessage, Attempt>();

  constructor(options: HttpPassOptions) {
    this.#options = options;
    this.#proxy = createProxyServer({ xfwd: false, ws: false, selfHandleResponse: true });
    // Not emitted for a request carrying Expect, which `handle` removes (Node answered it already).
    this.#proxy.on('proxyReq', (_proxyReq, req, _res, _options, socket) => {
      const attempt = this.#attempts.get(req);
      if (attempt) armConnectTimeout(socket, attempt.connectTimeoutMs);
    });
    this.#proxy.on('proxyRes', (proxyRes, req, res) => this.#relay(proxyRes, req, res));
  }

  /** The `request` event handler of a listener's HTTP server. */
  handle(req: IncomingMessage, res: ServerResponse, listener: ListenerInfo): void {
    const { router, pools, metrics } = this.#options;
    const route = router.match(hostName(req.headers.host), req.url ?? '/');
    const routeName = route?.name ?? '';
    this.#options.registry.addRequest(res);
    res.once('close', () => metrics.httpRequests.inc({ route: routeName, status: String(res.statusCode) }));
    if (this.#options.isDraining()) {
      res.shouldKeepAlive = false;
      this.#fail(req, res, 'GATEWAY_DRAINING', routeName);
      return;
    }
    // A WebSocket handshake without `Connection: Upgrade` is malformed, not a plain request.
    if ((req.headers.upgrade ?? '').toLowerCase().includes('websocket')) {
      this.#fail(req, res, 'HANDSHAKE_MALFORMED', routeName);
      return;
    }
    const pool = route ? pools.get(route.poolName) : undefined;
    if (!route || !pool) {
      this.#fail(req, res, 'ROUTE_NOT_FOUND', routeName);
      return;
    }
    const socket = req.socket as Socket;
    const forwarded = forwardedFor(
      this.#options.trustedProxies,
      socket.remoteAddress ?? '',
      listener.encrypted,
      req.headers,
    );
    const listed = connectionTokens(req.rawHeaders);
    for (const name of Object.keys(req.headers)) {
      if (isHopByHop(name, listed) && !KEEP_FRAMING.has(name)) delete req.headers[name];
    }
    delete req.headers.forwarded;
    // Node's server has already answered `Expect: 100-continue` (RFC 9110 §10.1.1).
    delete req.headers.expect;
    req.headers['x-forwarded-for'] = forwarded.xForwardedFor;
    req.headers['x-forwarded-proto'] = forwarded.xForwardedProto;
    if (forwarded.xForwardedHost !== undefined) req.headers['x-forwarded-host'] = forwarded.xForwardedHost;
    else delete req.headers['x-forwarded-host'];
    this.#proxyTo(req, res, pool, routeName, pool.candidates(), hasBody(req));
  }

  /** Stops the keep-alive connections to backends. */
  close(): void {
    this.#proxy.close();
  }

  #proxyTo(
    req: IncomingMessage,
    res: ServerResponse,
    pool: Pool,
    routeName: string,
    candidates: readonly Backend[],
    withBody: boolean,
  ): void {
    const [backend, ...rest] = candidates;
    if (!backend) return;
    this.#attempts.set(req, { route: routeName, backend, connectTimeoutMs: pool.config.connectTimeout });
    this.#proxy.web(
      req,
      res,
      {
        target: backend.url,
        agent: backend.secure ? pool.httpsAgent : pool.httpAgent,
        changeOrigin: !pool.config.preserveHost,
        selfHandleResponse: true,
        secure: pool.tls.rejectUnauthorized,
        ...(pool.tls.ca ? { ca: pool.tls.ca.toString() } : {}),
      },
      (error) => {
        const code = errorCodeOf(error);
        const beforeConnect = CONNECT_ERRORS.has(code);
        const errorCode: ErrorCode =
          code === 'ECONNECT_TIMEOUT' ? 'HTTP_UPSTREAM_TIMEOUT' : 'HTTP_UPSTREAM_FAILED';
        this.#options.metrics.upstreamConnectFailures.inc({
          pool: pool.name,
          backend: backend.id,
          code: errorCode,
        });
        if (beforeConnect && !withBody && rest.length > 0 && !res.headersSent && !req.socket.destroyed) {
          this.#options.log.warn(
            { backend: backend.id, err: code },
            'backend attempt failed, trying the next one',
          );
          this.#proxyTo(req, res, pool, routeName, rest, withBody);
          return;
        }
        this.#fail(req, res, res.headersSent ? 'HTTP_UPSTREAM_ABORTED' : errorCode, routeName, {
          backend: backend.id,
          err: code || (error instanceof Error ? error.message : String(error)),
        });
      },
    );
  }

  /** Writes the backend's status and end-to-end headers, then streams its body to the client. */
  #relay(proxyRes: IncomingMessage, req: IncomingMessage, res: ServerResponse): void {
    const raw = proxyRes.rawHeaders;
    const listed = connectionTokens(raw);
    const headers: string[] = [];
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i] ?? '';
      if (!isHopByHop(name, listed)) headers.push(name, raw[i + 1] ?? '');
    }
    // While draining, keep-alive connections are wound down after their current response.
    if (this.#options.isDraining()) headers.push('Connection', 'close');
    const attempt = this.#attempts.get(req);
    const route = attempt?.route ?? '';
    const backend = attempt?.backend.id;
    // Node's client parser lets through statuses (e.g. 099) that `writeHead` throws on: a backend
    // must not be able to crash the gateway with one.
    const status = proxyRes.statusCode ?? 0;
    try {
      if (status < 200 || status > 999) throw new RangeError(`backend answered status ${status}`);
      res.writeHead(status, proxyRes.statusMessage, headers);
    } catch (error) {
      proxyRes.destroy();
      this.#fail(req, res, 'HTTP_UPSTREAM_BAD_RESPONSE', route, { backend, err: String(error) });
      return;
    }
    // Errors show as an incomplete response at 'close'; the listener keeps them from throwing.
    proxyRes.on('error', () => {});
    proxyRes.once('close', () => {
      if (proxyRes.complete || res.destroyed) return;
      this.#fail(req, res, 'HTTP_UPSTREAM_ABORTED', route, { backend });
    });
    proxyRes.pipe(res);
  }

  #fail(
    req: IncomingMessage,
    res: ServerResponse,
    code: ErrorCode,
    route: string,
    fields: Record<string, unknown> = {},
  ): void {
    const info = CODES[code];
    this.#options.log[info.level](
      { route, path: req.url, method: req.method, code, ...fields },
      'http request failed',
    );
    if (info.status === 0 || res.headersSent) {
      res.destroy();
      return;
    }
    const body = `${STATUS_CODES[info.status] ?? 'Error'}\n`;
    res.writeHead(info.status, {
      'content-type': 'text/plain; charset=utf-8',
      'content-length': Buffer.byteLength(body),
      ...(code === 'GATEWAY_DRAINING' ? { connection: 'close' } : {}),
    });
    res.end(body);
  }
}
