/**
 * Plain HTTP on the same routes as the WebSockets: the long-polling, SSE and xhr-streaming
 * fallbacks of Socket.IO and SockJS must reach the same pool. Requests and responses are streamed
 * both ways by http-proxy-3 (nothing is buffered), over keep-alive connections per pool, and the
 * request target goes to the backend verbatim (`toProxy`), exactly as the router matched it; a
 * target or Host a backend could read differently is refused first (routing/request-target.ts).
 *
 * Retries: a request without a body whose connect fails moves on to the next candidate, like an
 * upgrade; one with a body does not, since its bytes may already be gone. A body-less idempotent
 * request whose reused keep-alive connection the backend had just closed (ECONNRESET before any
 * answer) is sent once more on a fresh connection, to the next candidate if there is one.
 *
 * The response head is written here rather than by http-proxy-3: only the backend's end-to-end
 * headers are relayed, so the client's own connection (Connection, Keep-Alive, framing) is left to
 * Node, and a response the backend breaks off cuts the client connection instead of hanging it.
 * `connectTimeout` and `responseTimeout` bound the wait for the backend's status line (see
 * backend-timers.ts).
 */
import type { ClientRequest, IncomingMessage, ServerResponse } from 'node:http';
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import { createProxyServer, type ProxyServer } from 'http-proxy-3';
import { CODES, type ErrorCode, headersForStatus } from '../errors/codes.ts';
import {
  type FrontContext,
  noDownstreamEdits,
  noEdits,
  noFindings,
  type Rejection,
  runStages,
} from '../front/request-stage.ts';
import { type RouteTable, resolveRoute } from '../front/resolve-route.ts';
import { stickyKey } from '../front/sticky-key.ts';
import type { Phase } from '../lifecycle.ts';
import { forwardedFor, type TrustedProxies } from '../listener/client-address.ts';
import type { ListenerInfo } from '../listener/listener.ts';
import type { ConnectionRegistry } from '../listener/registry.ts';
import { RequestIds, requestIdFor } from '../listener/request-id.ts';
import { capped } from '../observability/log-fields.ts';
import type { Logger } from '../observability/logger.ts';
import type { GatewayMetrics } from '../observability/metrics.ts';
import { connectionTokens, isHopByHop } from '../protocol/header-rules.ts';
import { checkRequest, unsupportedHttpVersion } from '../routing/request-target.ts';
import type { Backend, Pool } from '../upstream/pool.ts';
import type { HttpAccessLog, RequestRecord } from './access-line.ts';
import {
  armConnectTimeout,
  armResponseTimeout,
  CONNECT_TIMEOUT,
  RESPONSE_TIMEOUT,
} from './backend-timers.ts';
import { hasBody, prepareRequestHead } from './request-head.ts';

/** The status logged and counted for a request whose client left before any answer. */
const HTTP_CLIENT_GONE_STATUS = 499;

/** Errors that happen before a connection to the backend exists: safe to retry elsewhere. */
const CONNECT_ERRORS = new Set([
  'ECONNREFUSED',
  CONNECT_TIMEOUT,
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/** Methods a proxy may send again after a broken connection (RFC 9110 §9.2.2). */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

/** What the proxy's events need to know about the attempt a request is on. */
interface Attempt {
  readonly pool: Pool;
  readonly backend: Backend;
  readonly connectTimeoutMs: number;
  readonly responseTimeoutMs: number;
  /** Ends the attempt's share of its backend's load (once; again is harmless). */
  readonly release: () => void;
  /** Set when the request is given its backend socket. */
  proxyReq?: ClientRequest;
}

/** How one request is being tried: its remaining candidates and what retries it has used. */
interface Plan {
  readonly pool: Pool;
  readonly withBody: boolean;
  /** This attempt is the one resend after a reset on a reused connection: on a new connection. */
  readonly fresh: boolean;
  readonly resent: boolean;
}

/** What one configuration gives the HTTP pass. */
export interface HttpPassSnapshot {
  /** Routes, pools and policies, resolved as the upgrades resolve them. */
  readonly table: RouteTable;
  readonly trustedProxies: TrustedProxies;
  readonly accessLog: HttpAccessLog;
}

export interface HttpPassOptions {
  /** The configuration in force: each request takes it once, when it arrives. */
  readonly current: () => HttpPassSnapshot;
  readonly metrics: GatewayMetrics;
  readonly registry: ConnectionRegistry;
  readonly log: Logger;
  /** From `stopping` on, responses close their connections; `draining` refuses new requests. */
  readonly phase: () => Phase;
}

/**
 * Undoes http-proxy-3's `deleteLength` pass, which gives a DELETE or OPTIONS without
 * Content-Length a `Content-Length: 0` and drops its Transfer-Encoding while the chunked body
 * still flows: the backend would read that body as a second request (smuggling). The client's own
 * framing, already checked by Node's parser, is put back before the request is sent. If the pass
 * is ever renamed, `before` throws at start-up rather than letting requests through unguarded.
 */
function keepRequestFraming(proxy: ProxyServer): void {
  const framing = new WeakMap<
    IncomingMessage,
    { length: string | undefined; encoding: string | undefined }
  >();
  proxy.before('web', 'deleteLength', (req) => {
    // Only the requests that pass rewrites (DELETE and OPTIONS without a length) are remembered.
    if ((req.method !== 'DELETE' && req.method !== 'OPTIONS') || req.headers['content-length']) return;
    framing.set(req, {
      length: req.headers['content-length'],
      encoding: req.headers['transfer-encoding'],
    });
  });
  proxy.before('web', 'timeout', (req) => {
    const original = framing.get(req);
    if (!original) return;
    if (original.length === undefined) delete req.headers['content-length'];
    else req.headers['content-length'] = original.length;
    if (original.encoding === undefined) delete req.headers['transfer-encoding'];
    else req.headers['transfer-encoding'] = original.encoding;
  });
}

function errorCodeOf(error: unknown): string {
  return error instanceof Error && 'code' in error ? String(error.code) : '';
}

export class HttpPass {
  readonly #options: HttpPassOptions;
  readonly #proxy: ProxyServer;
  readonly #attempts = new WeakMap<IncomingMessage, Attempt>();
  readonly #records = new WeakMap<IncomingMessage, RequestRecord>();
  /** Headers the front half adds to a request's answer (the affinity cookie). */
  readonly #added = new WeakMap<IncomingMessage, readonly (readonly [string, string])[]>();
  readonly #requestIds = new RequestIds();

  constructor(options: HttpPassOptions) {
    this.#options = options;
    this.#proxy = createProxyServer({ xfwd: false, ws: false, selfHandleResponse: true });
    keepRequestFraming(this.#proxy);
    // Not emitted for a request carrying Expect, which `handle` removes (Node answered it already).
    this.#proxy.on('proxyReq', (proxyReq, req, res, _options, socket) => {
      const attempt = this.#attempts.get(req);
      if (!attempt) return;
      attempt.proxyReq = proxyReq;
      armConnectTimeout(socket, attempt.connectTimeoutMs);
      armResponseTimeout(proxyReq, attempt.responseTimeoutMs);
      // A 101 to a plain request: Node would drop the socket silently and leave the client waiting.
      proxyReq.once('upgrade', (_response: IncomingMessage, upgraded: Socket) => {
        upgraded.destroy();
        this.#fail(req, res, 'HTTP_UPSTREAM_BAD_RESPONSE', {
          backend: attempt.backend.id,
          err: 'the backend switched protocols on a plain request',
        });
      });
      // Errors have their own path; this catches a request that ends with neither (after them).
      proxyReq.once('close', () => setImmediate(() => this.#endedUnanswered(req, res, attempt)));
    });
    this.#proxy.on('proxyRes', (proxyRes, req, res) => this.#relay(proxyRes, req, res));
  }

  /** The `request` event handler of a listener's HTTP server. */
  handle(req: IncomingMessage, res: ServerResponse, listener: ListenerInfo): void {
    const { metrics } = this.#options;
    const { table, trustedProxies, accessLog } = this.#options.current();
    const startedAt = performance.now();
    this.#options.registry.addRequest(res);
    const socket = req.socket as Socket;
    const forwarded = forwardedFor(
      trustedProxies,
      listener.peerAddress(socket),
      listener.encrypted,
      req.headers,
    );
    const record: RequestRecord = {
      requestId: requestIdFor(req.headers, forwarded.fromTrustedProxy, this.#requestIds),
      listener: listener.name,
      client: forwarded.clientAddress,
      startedAt,
      route: '',
      pool: undefined,
      backend: undefined,
      code: undefined,
      detail: {},
    };
    this.#records.set(req, record);
    res.once('close', () => {
      // Nothing was sent: the client left first (499, as nginx counts it), unless the gateway cut it.
      if (!res.headersSent) record.code ??= 'HTTP_CLIENT_GONE';
      const status = res.headersSent ? res.statusCode : HTTP_CLIENT_GONE_STATUS;
      metrics.httpRequests.inc({ route: record.route, status: String(status) });
      accessLog.write(req, record, status, res.writableFinished);
    });
    if (this.#options.phase() === 'draining') {
      res.shouldKeepAlive = false;
      this.#fail(req, res, 'GATEWAY_DRAINING');
      return;
    }
    const version = unsupportedHttpVersion(req);
    if (version) {
      this.#fail(req, res, 'HTTP_VERSION_UNSUPPORTED', { detail: version });
      return;
    }
    // Before matching: a target or Host that a backend could read differently from the router.
    const malformed = checkRequest(req);
    if (malformed) {
      this.#fail(req, res, 'REQUEST_MALFORMED', { detail: malformed });
      return;
    }
    // Node read the body as chunked; the backend must read it so too, whatever it makes of codings.
    const coding = req.headers['transfer-encoding'];
    if (coding !== undefined) {
      if (coding.trim().toLowerCase() !== 'chunked') {
        this.#fail(req, res, 'TRANSFER_CODING_UNSUPPORTED', { detail: capped(coding) });
        return;
      }
      req.headers['transfer-encoding'] = 'chunked';
    }
    const resolved = resolveRoute(req, table);
    if (!resolved.ok && resolved.code === 'REQUEST_MALFORMED') {
      this.#fail(req, res, 'REQUEST_MALFORMED', { detail: resolved.detail ?? '' });
      return;
    }
    record.route = resolved.ok ? resolved.route.name : '';
    // A WebSocket handshake without `Connection: Upgrade` is malformed, not a plain request.
    if ((req.headers.upgrade ?? '').toLowerCase().includes('websocket')) {
      this.#fail(req, res, 'HANDSHAKE_MALFORMED');
      return;
    }
    if (!resolved.ok) {
      this.#fail(req, res, 'ROUTE_NOT_FOUND');
      return;
    }
    const { pool } = resolved;
    record.pool = pool.name;
    const front: FrontContext = {
      pass: 'request',
      req,
      listener,
      forwarded,
      requestId: record.requestId,
      log: this.#options.log,
      upstream: noEdits(),
      downstream: noDownstreamEdits(),
      auth: noFindings(),
    };
    // The route's own checks, those that apply to plain requests (long-polling must not skip them).
    const refused = runStages(resolved.stages, front);
    if (refused instanceof Promise) {
      refused.then(
        (rejection) => this.#admit(req, res, front, pool, rejection),
        (error: unknown) => {
          this.#options.log.error(
            { err: error, requestId: record.requestId },
            'request stage failed unexpectedly',
          );
          this.#fail(req, res, 'INTERNAL_ERROR');
        },
      );
    } else {
      this.#admit(req, res, front, pool, refused);
    }
  }

  /** After the route's stages: refuses the request, or sends it to the pool with their edits. */
  #admit(
    req: IncomingMessage,
    res: ServerResponse,
    front: FrontContext,
    pool: Pool,
    refused: Rejection | undefined,
  ): void {
    if (refused) {
      this.#fail(req, res, refused.code, { detail: capped(refused.detail ?? '') }, refused.headers);
      return;
    }
    if (res.destroyed) return; // the client left while the stages ran
    prepareRequestHead(req, front.forwarded, front.requestId, front.upstream);
    const plan: Plan = { pool, withBody: hasBody(req), fresh: false, resent: false };
    const candidates = pool.candidates(stickyKey(pool, front));
    if (candidates.length === 0) {
      this.#fail(req, res, 'NO_BACKEND', { detail: `pool ${pool.name} has no backend yet` });
      return;
    }
    if (front.downstream.headers.length > 0) this.#added.set(req, front.downstream.headers);
    this.#proxyTo(req, res, plan, candidates);
  }

  /** Stops the keep-alive connections to backends. */
  close(): void {
    this.#proxy.close();
  }

  #proxyTo(req: IncomingMessage, res: ServerResponse, plan: Plan, candidates: readonly Backend[]): void {
    const [backend, ...rest] = candidates;
    if (!backend) return;
    const { pool } = plan;
    // The request is load on its backend until it fails or its response is over.
    backend.activeRequests++;
    let held = true;
    const release = (): void => {
      if (held) backend.activeRequests--;
      held = false;
    };
    res.once('close', release);
    const attempt: Attempt = {
      pool,
      backend,
      connectTimeoutMs: pool.config.connectTimeout,
      responseTimeoutMs: pool.config.responseTimeout,
      release,
    };
    this.#attempts.set(req, attempt);
    const record = this.#records.get(req);
    if (record) record.backend = backend.id;
    try {
      this.#proxy.web(
        req,
        res,
        {
          target: backend.url,
          // The one resend after a reset goes on a new connection, never on another idle one.
          agent: plan.fresh ? false : backend.secure ? pool.httpsAgent : pool.httpAgent,
          // Not `changeOrigin`: a discovered backend's target is its address, not its name.
          ...(pool.config.preserveHost ? {} : { headers: { host: backend.authority } }),
          selfHandleResponse: true,
          // The request target is sent as received: http-proxy-3 would otherwise parse it as a URL
          // (resolving dot segments and backslashes, or throwing on what it cannot parse).
          toProxy: true,
          secure: pool.tls.rejectUnauthorized,
          ...(pool.tls.ca ? { ca: pool.tls.ca.toString() } : {}),
        },
        (error) => this.#attemptFailed(req, res, plan, attempt, rest, error),
      );
    } catch (error) {
      this.#fail(req, res, 'INTERNAL_ERROR', { backend: backend.id, err: error });
    }
  }

  /** Retries when it is safe, otherwise answers the client (or cuts it if the answer began). */
  #attemptFailed(
    req: IncomingMessage,
    res: ServerResponse,
    plan: Plan,
    attempt: Attempt,
    rest: readonly Backend[],
    error: unknown,
  ): void {
    attempt.release();
    const { pool } = plan;
    const { backend } = attempt;
    const code = errorCodeOf(error);
    const errorCode: ErrorCode =
      code === CONNECT_TIMEOUT || code === RESPONSE_TIMEOUT
        ? 'HTTP_UPSTREAM_TIMEOUT'
        : 'HTTP_UPSTREAM_FAILED';
    this.#options.metrics.upstreamConnectFailures.inc({
      pool: pool.name,
      backend: backend.label,
      code: errorCode,
    });
    // Only the backend's own failures count against it: a connect that failed, or a reset or a
    // response timeout before any answer while the client was still there (not a client that left).
    const unanswered = !res.headersSent && !req.socket.destroyed;
    const silent = (code === 'ECONNRESET' || code === RESPONSE_TIMEOUT) && unanswered;
    if (CONNECT_ERRORS.has(code) || code === CONNECT_TIMEOUT || silent) pool.failed(backend);
    const untouched = !res.headersSent && !req.socket.destroyed;
    let next: readonly Backend[] | undefined;
    let resend = false;
    if (untouched && !plan.withBody && CONNECT_ERRORS.has(code) && rest.length > 0) {
      next = rest;
    } else if (
      untouched &&
      !plan.withBody &&
      !plan.resent &&
      code === 'ECONNRESET' &&
      attempt.proxyReq?.reusedSocket === true &&
      IDEMPOTENT.has(req.method ?? '')
    ) {
      // The backend closed an idle keep-alive connection as the request went out on it.
      next = rest.length > 0 ? rest : [backend];
      resend = true;
    }
    if (next) {
      this.#options.log.warn(
        { backend: backend.id, err: code, reused: resend || undefined },
        'backend attempt failed, trying again',
      );
      this.#proxyTo(req, res, { ...plan, fresh: plan.fresh || resend, resent: plan.resent || resend }, next);
      return;
    }
    this.#fail(req, res, res.headersSent ? 'HTTP_UPSTREAM_ABORTED' : errorCode, {
      backend: backend.id,
      err: code || (error instanceof Error ? error.message : String(error)),
    });
  }

  /** The backend request closed without a response, an error or a retry: the client is answered. */
  #endedUnanswered(req: IncomingMessage, res: ServerResponse, attempt: Attempt): void {
    if (this.#attempts.get(req) !== attempt) return; // a retry took over
    if (res.headersSent || res.writableEnded || res.destroyed) return;
    if (this.#records.get(req)?.code !== undefined) return;
    this.#fail(req, res, 'HTTP_UPSTREAM_BAD_RESPONSE', {
      backend: attempt.backend.id,
      err: 'the backend closed the connection without an answer',
    });
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
    // From SIGTERM on, keep-alive connections are wound down after their current response, so that
    // clients reconnect through a load balancer that no longer picks this instance.
    if (this.#options.phase() !== 'running') {
      res.shouldKeepAlive = false;
      headers.push('Connection', 'close');
    }
    for (const [name, value] of this.#added.get(req) ?? []) headers.push(name, value);
    const attempt = this.#attempts.get(req);
    const backend = attempt?.backend.id;
    if (attempt) attempt.pool.succeeded(attempt.backend);
    // Node's client parser lets through statuses (e.g. 099) that `writeHead` throws on: a backend
    // must not be able to crash the gateway with one.
    const status = proxyRes.statusCode ?? 0;
    try {
      if (status < 200 || status > 999) throw new RangeError(`backend answered status ${status}`);
      res.writeHead(status, proxyRes.statusMessage, headers);
    } catch (error) {
      proxyRes.destroy();
      this.#fail(req, res, 'HTTP_UPSTREAM_BAD_RESPONSE', { backend, err: String(error) });
      return;
    }
    // Errors show as an incomplete response at 'close'; the listener keeps them from throwing.
    proxyRes.on('error', () => {});
    proxyRes.once('close', () => {
      if (proxyRes.complete || res.destroyed) return;
      this.#fail(req, res, 'HTTP_UPSTREAM_ABORTED', { backend });
    });
    proxyRes.pipe(res);
  }

  /** Answers (or cuts) the request with `code`; its access line will say so. */
  #fail(
    req: IncomingMessage,
    res: ServerResponse,
    code: ErrorCode,
    fields: Record<string, unknown> = {},
    headers: Rejection['headers'] = [],
  ): void {
    const info = CODES[code];
    const record = this.#records.get(req);
    if (record) {
      record.code = code;
      record.detail = fields;
    }
    if (info.status === 0 || res.headersSent) {
      res.destroy();
      return;
    }
    const body = `${STATUS_CODES[info.status] ?? 'Error'}\n`;
    // A client that sent a malformed request gets no second chance on the same connection: what
    // follows on it may be the rest of an attempt to smuggle one.
    const close = code === 'GATEWAY_DRAINING' || (info.source === 'downstream' && code !== 'ROUTE_NOT_FOUND');
    if (close) res.shouldKeepAlive = false;
    res.writeHead(info.status, {
      'content-type': 'text/plain; charset=utf-8',
      'content-length': Buffer.byteLength(body),
      ...(close ? { connection: 'close' } : {}),
      ...headersForStatus(info.status),
      ...Object.fromEntries(headers),
    });
    res.end(body);
  }
}
