/**
 * Decides and carries out one WebSocket upgrade: run the pipeline stages (cheap checks first),
 * connect to a backend of the route's pool (moving on to the next candidate when a connect fails
 * before any byte was sent), relay the backend's answer, and on a 101 hand both sockets to a
 * tunnel. Every exit is accounted for: a metric with the outcome code and one log line, and the
 * socket is always either closed or owned by a registered tunnel.
 */
import type { Socket } from 'node:net';
import { CODES, type ErrorCode } from '../errors/codes.ts';
import { noDownstreamEdits, noEdits, noFindings, runStages } from '../front/request-stage.ts';
import { stickyKey } from '../front/sticky-key.ts';
import { forwardedFor } from '../listener/client-address.ts';
import type { ListenerInfo } from '../listener/listener.ts';
import type { ConnectionRegistry } from '../listener/registry.ts';
import { RequestIds, requestIdFor } from '../listener/request-id.ts';
import { ConnectionLog, type EventLog } from '../observability/connection-log.ts';
import { capped, loggedHeader, loggedPath } from '../observability/log-fields.ts';
import { type Logger, moreSevere } from '../observability/logger.ts';
import type { GatewayMetrics } from '../observability/metrics.ts';
import type { RoutePolicy } from '../policy/route-policy.ts';
import type { IncomingHead } from '../protocol/incoming-head.ts';
import type { Route } from '../routing/router.ts';
import type { Side } from '../tunnel/sides.ts';
import {
  holdSocket,
  linkSocket,
  releaseSocket,
  type SocketEvent,
  type SocketEvents,
} from '../tunnel/socket-link.ts';
import { Tunnel, type TunnelSession, type TunnelSettings, type TunnelSummary } from '../tunnel/tunnel.ts';
import { type ClientPresence, connectUpstream, type UpstreamOutcome } from '../upstream/connect.ts';
import { downstreamUpgradeHeaders, upstreamUpgradeHeaders } from '../upstream/headers.ts';
import type { Backend, Pool } from '../upstream/pool.ts';
import { headerValue } from '../upstream/response-head.ts';
import type { Rejection, UpgradeContext, UpgradeSnapshot } from './context.ts';
import { allowedRsvBits, deflateParameters } from './extensions.ts';
import { relayResponse, writeResponse } from './respond.ts';
import { RouteMeters } from './route-meters.ts';

export interface UpgradeHandlerOptions {
  /** The configuration in force: each upgrade takes it once, when it arrives. */
  readonly current: () => UpgradeSnapshot;
  readonly registry: ConnectionRegistry;
  readonly metrics: GatewayMetrics;
  readonly log: Logger;
  readonly tunnels: TunnelSettings;
  readonly nextId: () => string;
  /** True once shutdown began: new upgrades are refused with 503. */
  readonly isDraining: () => boolean;
  /** Wall-clock milliseconds, to place a token's expiry on the sweeper's clock. */
  readonly wallNow: () => number;
}

/**
 * Reads the client socket while the backend is being connected: its leaving is told to the
 * attempt, an early chunk is kept and reading stops. It reaches only the socket, `early` and the
 * presence (not the handshake's context), and the socket lets go of it when it stops: a socket
 * would otherwise keep the whole handshake alive for as long as the tunnel lives.
 */
class ClientWatch implements SocketEvents {
  readonly client: ClientPresence = { gone: false, onGone: undefined };
  readonly #socket: Socket;
  readonly #early: Buffer[];

  constructor(socket: Socket, early: Buffer[]) {
    this.#socket = socket;
    this.#early = early;
    linkSocket(socket, this, 'client');
    socket.resume();
  }

  socketEvent(_side: Side, event: SocketEvent, value: Buffer | Error | undefined): void {
    if (event === 'data') {
      this.#early.push(value as Buffer);
      this.#socket.pause();
    } else if (event === 'close' || event === 'end') {
      this.client.gone = true;
      this.client.onGone?.();
    }
  }

  stop(): void {
    releaseSocket(this.#socket);
    this.#socket.pause();
  }
}

/** The client closed, reset or half-closed its connection (a FIN ends a handshake too). */
function clientGone(socket: Socket): boolean {
  return socket.destroyed || socket.readableEnded;
}

/**
 * What the access-log lines of a WebSocket say about its handshake, copied out of the request so
 * that a tunnel does not keep the request alive. Field names use the words of the metric labels.
 */
interface HandshakeFields {
  readonly listener: string;
  readonly route: string | undefined;
  readonly client: string;
  readonly host: string | undefined;
  readonly origin: string | undefined;
  readonly userAgent: string | undefined;
  readonly path: string;
}

/** The fixed fields of a tunnel's access-log line (flattened only when a line is written). */
interface AccessFields {
  readonly handshake: HandshakeFields;
  readonly log: EventLog;
  readonly route: string;
  readonly pool: string;
  readonly backend: string;
  readonly subprotocol: string | undefined;
  readonly extensions: string | undefined;
  readonly handshakeMs: number;
}

export class UpgradeHandler {
  readonly #options: UpgradeHandlerOptions;
  /** The metric cells of each route, bound once (a reload's new routes get their own). */
  readonly #meters = new WeakMap<Route, RouteMeters>();
  readonly #requestIds = new RequestIds();

  constructor(options: UpgradeHandlerOptions) {
    this.#options = options;
  }

  /** Takes an upgrade from a listener (read by its first-request reader or by Node's server). */
  handle(req: IncomingHead, socket: Socket, head: Buffer, listener: ListenerInfo): void {
    // Listened to first: a reset during the handshake must never crash the process.
    holdSocket(socket, 'client');
    const { registry } = this.#options;
    registry.addPending(socket);
    const id = this.#options.nextId();
    const snapshot = this.#options.current();
    const forwarded = forwardedFor(
      snapshot.trustedProxies,
      listener.peerAddress(socket),
      listener.encrypted,
      req.headers,
    );
    const requestId = requestIdFor(req.headers, forwarded.fromTrustedProxy, this.#requestIds);
    const ctx: UpgradeContext = {
      pass: 'upgrade',
      id,
      requestId,
      req,
      socket,
      head,
      listener,
      startedAt: performance.now(),
      forwarded,
      log: new ConnectionLog(this.#options.log, { conn: id, requestId }),
      snapshot,
      upstream: noEdits(),
      downstream: noDownstreamEdits(),
      auth: noFindings(),
      route: undefined,
      policy: undefined,
      pool: undefined,
      stages: undefined,
    };
    // One `then` with both handlers: `catch` and `finally` would add two promises per handshake.
    this.#run(ctx).then(
      () => registry.removePending(socket),
      (error: unknown) => {
        try {
          ctx.log.error({ err: error }, 'upgrade failed unexpectedly');
          this.#reject(ctx, { code: 'INTERNAL_ERROR' });
        } finally {
          registry.removePending(socket);
        }
      },
    );
  }

  async #run(ctx: UpgradeContext): Promise<void> {
    if (this.#options.isDraining()) {
      this.#reject(ctx, { code: 'GATEWAY_DRAINING' });
      return;
    }
    for (const stage of ctx.snapshot.stages) {
      const result = stage.run(ctx);
      // A synchronous stage costs no turn of the microtask queue.
      const rejection = result instanceof Promise ? await result : result;
      if (clientGone(ctx.socket)) {
        this.#reject(ctx, { code: 'CLIENT_GONE', detail: `during ${stage.name}` });
        return;
      }
      if (rejection) {
        this.#reject(ctx, rejection);
        return;
      }
    }
    const { route, pool, policy } = ctx;
    if (!route || !pool || !policy) throw new Error('the pipeline ended without a route');
    // The route's own checks, those that apply to upgrades.
    const checked = runStages(ctx.stages ?? [], ctx);
    const refused = checked instanceof Promise ? await checked : checked;
    if (clientGone(ctx.socket)) {
      this.#reject(ctx, { code: 'CLIENT_GONE', detail: 'during the route stages' });
      return;
    }
    if (refused) {
      this.#reject(ctx, refused);
      return;
    }
    const candidates = pool.candidates(stickyKey(pool, ctx));
    if (candidates.length === 0) {
      this.#reject(ctx, { code: 'NO_BACKEND', detail: `pool ${pool.name} has no backend yet` });
      return;
    }
    const early: Buffer[] = [];
    const outcome = await this.#connect(ctx, pool, candidates, early);
    const gone = clientGone(ctx.socket);
    if (gone || this.#options.isDraining()) {
      if (outcome.kind !== 'failed') outcome.socket.destroy();
      this.#reject(ctx, { code: gone ? 'CLIENT_GONE' : 'GATEWAY_DRAINING' });
      return;
    }
    switch (outcome.kind) {
      case 'upgraded':
        pool.succeeded(outcome.backend);
        try {
          const clientHead = early.length === 0 ? ctx.head : Buffer.concat([ctx.head, ...early]);
          this.#open(ctx, this.#metersOf(route, pool), policy, outcome, clientHead);
        } catch (error) {
          // No tunnel owns the paused backend socket yet: it would stay open, unread, forever. A
          // client that already has its 101 cannot be given a status any more.
          outcome.socket.destroy();
          if (ctx.socket.bytesWritten > 0) ctx.socket.destroy();
          throw error;
        }
        return;
      case 'answered': {
        const status = outcome.response.status;
        // A refusal (4xx) is an answer; a 5xx to an upgrade counts against the backend.
        if (status >= 500) pool.failed(outcome.backend);
        else pool.succeeded(outcome.backend);
        if (status >= 400 && status < 500) {
          this.#account(ctx, 'UPSTREAM_REJECTED', { status, backend: outcome.backend.id });
          await relayResponse(ctx.socket, outcome, pool.config.handshakeTimeout);
        } else {
          outcome.socket.destroy();
          this.#reject(ctx, { code: 'UPSTREAM_BAD_RESPONSE', detail: `backend answered ${status}` });
        }
        return;
      }
      case 'failed':
        this.#reject(ctx, { code: outcome.code, detail: outcome.error.message });
        return;
    }
  }

  /**
   * Connects to the pool. Meanwhile the client socket is read so that a client leaving (FIN or
   * reset) aborts the attempt instead of holding a backend connection until `handshakeTimeout`;
   * a chunk the client sends before the 101 is kept in `early` and reading stops until the tunnel.
   */
  #connect(
    ctx: UpgradeContext,
    pool: Pool,
    candidates: readonly Backend[],
    early: Buffer[],
  ): Promise<UpstreamOutcome> {
    const { metrics } = this.#options;
    const watch = new ClientWatch(ctx.socket, early);
    const { client } = watch;
    return connectUpstream(
      candidates,
      client,
      (backend: Backend) => ({
        backend,
        tls: pool.tls,
        path: ctx.upstream.target ?? ctx.req.url ?? '/',
        headers: upstreamUpgradeHeaders(ctx.req.rawHeaders, {
          edits: ctx.upstream,
          forwarded: ctx.forwarded,
          hostOverride: pool.config.preserveHost ? undefined : backend.authority,
          requestId: ctx.requestId,
        }),
        connectTimeoutMs: pool.config.connectTimeout,
        handshakeTimeoutMs: pool.config.handshakeTimeout,
        client,
        onConnected: (seconds) => metrics.upstreamConnectDuration.cell(pool.name).observe(seconds),
      }),
      (failure) => {
        if (client.gone) return; // the client left: not the backend's failure
        pool.failed(failure.backend);
        metrics.upstreamConnectFailures.inc({
          pool: pool.name,
          backend: failure.backend.label,
          code: failure.code,
        });
        ctx.log.warn(
          {
            backend: failure.backend.id,
            code: failure.code,
            err: failure.error.message,
            retryable: failure.retryable,
          },
          'backend attempt failed',
        );
      },
    ).finally(() => watch.stop());
  }

  #open(
    ctx: UpgradeContext,
    meters: RouteMeters,
    policy: RoutePolicy,
    outcome: Extract<UpstreamOutcome, { kind: 'upgraded' }>,
    clientHead: Buffer,
  ): void {
    const { registry } = this.#options;
    const { backend, response } = outcome;
    let head = 'HTTP/1.1 101 Switching Protocols\r\n';
    const headers = downstreamUpgradeHeaders(response.rawHeaders, ctx.auth.subprotocolMarker);
    for (const [name, value] of ctx.downstream.headers) headers.push(name, value);
    for (let i = 0; i < headers.length; i += 2) head += `${headers[i]}: ${headers[i + 1]}\r\n`;
    // Header values are the backend's bytes as latin1 (how Node decodes them): written back so.
    ctx.socket.write(`${head}\r\n`, 'latin1');
    const handshakeSeconds = (performance.now() - ctx.startedAt) / 1000;
    meters.handshakeSeconds.observe(handshakeSeconds);
    meters.upgraded(ctx.listener.name).value++;
    const extensions = headerValue(response, 'sec-websocket-extensions');
    const subprotocol = loggedHeader(headerValue(response, 'sec-websocket-protocol'));
    const loggedExtensions = loggedHeader(extensions);
    // Visible when it opens, not only when it ends hours later (a debug line: its fields are
    // gathered only when it is written).
    if (ctx.log.isLevelEnabled('debug')) {
      this.#account(ctx, 'UPGRADED', {
        pool: meters.pool,
        backend: backend.id,
        subprotocol,
        extensions: loggedExtensions,
      });
    }

    const openOnBackend = meters.openOn(backend);
    meters.open.value++;
    openOnBackend.value++;
    backend.activeTunnels++;
    const access: AccessFields = {
      handshake: this.#handshakeFields(ctx),
      log: ctx.log,
      route: meters.route,
      pool: meters.pool,
      backend: backend.id,
      subprotocol,
      extensions: loggedExtensions,
      handshakeMs: Math.round(handshakeSeconds * 1000),
    };
    const tunnel = new Tunnel(
      {
        id: ctx.id,
        client: ctx.socket,
        backend: outcome.socket,
        allowedRsv: allowedRsvBits(extensions),
        deflate: deflateParameters(extensions),
        settings: this.#options.tunnels,
        policy: policy.tunnel,
        counters: meters.counters,
        observer: meters.observer,
        log: ctx.log,
        session: this.#session(ctx, policy),
        onEnd: (summary) => {
          registry.removeTunnel(tunnel);
          meters.open.value--;
          openOnBackend.value--;
          backend.activeTunnels--;
          meters.ended(summary);
          this.#logEnd(access, summary);
        },
      },
      { client: clientHead, backend: outcome.head },
    );
    registry.addTunnel(tunnel, backend);
    tunnel.start();
  }

  /**
   * When a tunnel opened with a token ends (its `exp`, the clock tolerance that let it in and the
   * route's grace), on the sweeper's clock; undefined when it is not bound to a token.
   */
  #session(ctx: UpgradeContext, policy: RoutePolicy): TunnelSession | undefined {
    const expiry = policy.auth?.expiry;
    const expiresAtMs = ctx.auth.token?.expiresAtMs;
    if (policy.auth === undefined || expiry === undefined || expiresAtMs === undefined) return undefined;
    const left = expiresAtMs + policy.auth.clockToleranceMs + expiry.graceMs - this.#options.wallNow();
    return { endsAt: this.#options.tunnels.clock.now() + left, close: [expiry.code, 'token expired'] };
  }

  #metersOf(route: Route, pool: Pool): RouteMeters {
    let meters = this.#meters.get(route);
    if (meters === undefined) {
      meters = new RouteMeters(this.#options.metrics, route.name, pool.name);
      this.#meters.set(route, meters);
    }
    return meters;
  }

  #logEnd(access: AccessFields, summary: TunnelSummary): void {
    const { log, route } = access;
    // A close handshake between the peers is an outcome too: who started it.
    const code: ErrorCode =
      summary.errorCode ?? (summary.initiator === 'backend' ? 'BACKEND_CLOSED' : 'CLIENT_CLOSED');
    const level = moreSevere('info', CODES[code].level);
    if (!log.isLevelEnabled(level)) return;
    log[level](
      {
        ...access.handshake,
        route,
        pool: access.pool,
        backend: access.backend,
        subprotocol: access.subprotocol,
        extensions: access.extensions,
        handshakeMs: access.handshakeMs,
        durationMs: Math.round(summary.durationSeconds * 1000),
        messages: summary.messages,
        bytes: summary.bytes,
        closeCode: summary.closeCode ?? 1006,
        closeReason: summary.closeReason || undefined,
        initiator: summary.initiator,
        code,
      },
      'websocket closed',
    );
  }

  #reject(ctx: UpgradeContext, rejection: Rejection): void {
    const info = CODES[rejection.code];
    // A detail may quote what the client sent (a header value): capped like every such field.
    this.#account(ctx, rejection.code, {
      detail: rejection.detail === undefined ? undefined : capped(rejection.detail),
    });
    if (info.status > 0) writeResponse(ctx.socket, info.status, rejection.headers);
    else ctx.socket.destroy();
  }

  #handshakeFields(ctx: UpgradeContext): HandshakeFields {
    const headers = ctx.req.headers;
    return {
      listener: ctx.listener.name,
      route: ctx.route?.name,
      client: ctx.forwarded.clientAddress,
      host: loggedHeader(headers.host),
      origin: loggedHeader(headers.origin),
      userAgent: loggedHeader(headers['user-agent']),
      path: loggedPath(ctx.req.url ?? '/', ctx.snapshot.query),
    };
  }

  /** The upgrades metric and the handshake's log line. */
  #account(ctx: UpgradeContext, code: ErrorCode | 'UPGRADED', fields: Record<string, unknown>): void {
    const { metrics } = this.#options;
    const route = ctx.route?.name ?? '';
    // An upgrade is counted in its route's cells (#open).
    if (code !== 'UPGRADED') metrics.upgrades.inc({ listener: ctx.listener.name, route, code });
    // The open line is for following long connections; a rejection is an access line.
    const level = code === 'UPGRADED' ? 'debug' : moreSevere('info', CODES[code].level);
    if (!ctx.log.isLevelEnabled(level)) return;
    ctx.log[level](
      {
        ...this.#handshakeFields(ctx),
        code,
        status: code === 'UPGRADED' ? 101 : (fields.status ?? CODES[code].status),
        handshakeMs: Math.round(performance.now() - ctx.startedAt),
        ...fields,
      },
      code === 'UPGRADED' ? 'websocket opened' : 'websocket rejected',
    );
  }
}
