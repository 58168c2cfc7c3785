/**
 * One public listener: an HTTP or HTTPS server whose `request` events go to the plain-HTTP pass
 * and whose `upgrade` events go to the upgrade handler, and before them the reader of each
 * connection's first request (first-request.ts), which gives a plain upgrade to the upgrade
 * handler itself and everything else to the server. The request head is bounded in time and
 * size (slowloris), malformed requests get the right status from the gateway, and TLS clients
 * that fail the handshake are logged at debug, never allowed to crash anything.
 *
 * `handshakeTimeout` bounds the TLS handshake too (Node's default is 120 s), and the sweeps for
 * expired request heads (Node's, and the first-request reader's) run at least every second
 * (Node's default, 30 s, would let a partial head hold a connection far past `headersTimeout`).
 * Every accepted socket is tracked: one still in its
 * TLS handshake is not an HTTP connection yet, so `closeAllConnections()` would miss it and
 * `server.close()` would wait for it.
 *
 * At the edge: with `proxyProtocol`, each connection's PROXY header is read first (proxy-gate.ts)
 * and the client it reports is the peer address every handler reads (`ListenerInfo.peerAddress`);
 * a TLS listener serves its certificates by SNI and reloads them when their files change
 * (tls-certificates.ts), watching only while it listens.
 */
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { ListenerConfig } from '../config/schema.ts';
import type { Logger } from '../observability/logger.ts';
import type { GatewayMetrics } from '../observability/metrics.ts';
import type { IncomingHead } from '../protocol/incoming-head.ts';
import { TrustedProxies } from './client-address.ts';
import { FirstRequests } from './first-request.ts';
import { PeerAddresses } from './peer-address.ts';
import { ProxyGate, takeConnectionHandling } from './proxy-gate.ts';
import { ListenerCertificates } from './tls-certificates.ts';

/** The listener a connection arrived on, as the request and upgrade handlers see it. */
export interface ListenerInfo {
  readonly name: string;
  readonly encrypted: boolean;
  /**
   * The peer of the connection `socket` (a request's or an upgrade's) belongs to: the client its
   * PROXY header reported, else the TCP peer. X-Forwarded-For, admission and logs start from it.
   */
  readonly peerAddress: (socket: Socket) => string;
}

export interface ListenerHandlers {
  readonly request: (req: IncomingMessage, res: ServerResponse, listener: ListenerInfo) => void;
  readonly upgrade: (req: IncomingHead, socket: Socket, head: Buffer, listener: ListenerInfo) => void;
}

/**
 * The error listener of a socket whose upgrade waits behind pipelined requests. A function of its
 * own: an arrow in the upgrade handler would share its closure context and keep the request alive
 * for as long as the socket lives.
 */
function ignoreError(): void {}

/** Status for a request the HTTP parser refused. */
function clientErrorStatus(code: string): number {
  if (code === 'HPE_HEADER_OVERFLOW') return 431;
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT' || code === 'HPE_HEADERS_TIMEOUT') return 408;
  return 400;
}

/** How often request heads past their deadline are looked for (Node's default, 30 s, is too rare). */
function checkingIntervalMs(config: ListenerConfig): number {
  return Math.max(250, Math.min(1000, Math.floor(config.handshakeTimeout / 2)));
}

/** A bind failure that says what could not listen where (the system error is its cause). */
export function bindError(
  what: string,
  address: string,
  port: number,
  error: Error & { code?: string },
): Error {
  const bind = new Error(`${what} cannot listen on ${address}:${port}: ${error.code ?? error.message}`, {
    cause: error,
  });
  return Object.assign(bind, { code: error.code });
}

/**
 * Whether a listener running with `current` can take `next` in place: the same address and port,
 * TLS or not, the same PROXY protocol handling and TLS handshake bound (what the server and its
 * gate are built with). The rest (request timeouts, header size, certificates) changes live.
 */
export function takesInPlace(current: ListenerConfig, next: ListenerConfig): boolean {
  return (
    current.address === next.address &&
    current.port === next.port &&
    (current.tls === undefined) === (next.tls === undefined) &&
    current.proxyProtocol === next.proxyProtocol &&
    JSON.stringify(current.proxyProtocolPeers) === JSON.stringify(next.proxyProtocolPeers) &&
    current.handshakeTimeout === next.handshakeTimeout
  );
}

export class Listener {
  readonly name: string;
  #config: ListenerConfig;
  readonly server: Server;
  readonly #info: ListenerInfo;
  readonly #log: Logger;
  readonly #metrics: GatewayMetrics;
  #certificates: ListenerCertificates | undefined;
  /** The server again, typed as the TLS server it is on a TLS listener. */
  readonly #secureServer: HttpsServer | undefined;
  /** Every accepted TCP socket still open, whatever stage it is in. */
  readonly #sockets = new Set<Socket>();
  /** Per connection, the plain responses not finished yet and what waits for them. */
  readonly #unanswered = new WeakMap<Socket, { count: number; after: (() => void)[] }>();
  #closingAll = false;
  readonly #firstRequests: FirstRequests;

  constructor(
    name: string,
    config: ListenerConfig,
    handlers: ListenerHandlers,
    log: Logger,
    metrics: GatewayMetrics,
  ) {
    this.name = name;
    this.#config = config;
    this.#log = log;
    this.#metrics = metrics;
    const peers = new PeerAddresses();
    this.#info = {
      name,
      encrypted: config.tls !== undefined,
      peerAddress: (socket) => peers.peerAddress(socket),
    };
    const options = {
      // Node requires headersTimeout <= requestTimeout.
      headersTimeout: Math.min(config.handshakeTimeout, config.requestTimeout),
      requestTimeout: config.requestTimeout,
      keepAliveTimeout: config.keepAliveTimeout,
      maxHeaderSize: config.maxHeaderSize,
      noDelay: true,
      // How often Node looks for request heads past headersTimeout/requestTimeout.
      connectionsCheckingInterval: checkingIntervalMs(config),
    };
    this.#certificates = config.tls ? this.#certificatesFor(config.tls) : undefined;
    this.#secureServer = this.#certificates
      ? createHttpsServer({
          ...options,
          ...this.#certificates.serverOptions(),
          // Asks whichever certificates are current: a reload may add SNI pairs.
          SNICallback: (serverName, done) => done(null, this.#certificates?.sniContext(serverName)),
          handshakeTimeout: config.handshakeTimeout,
        })
      : undefined;
    this.server = this.#secureServer ?? createHttpServer(options);
    const gate = this.#proxyGate(log, metrics);
    const encrypted = this.#info.encrypted;
    // Node's HTTP handling of a connection (after its TLS handshake, on a TLS listener) runs when
    // its first request is not a plain upgrade, which is read here first.
    const firstRequests = new FirstRequests({
      bounds: () => ({
        timeoutMs: Math.min(this.#config.handshakeTimeout, this.#config.requestTimeout),
        maxHeaderSize: this.#config.maxHeaderSize,
      }),
      upgrade: (req, socket, head) => handlers.upgrade(req, socket, head, this.#info),
      serveHttp: takeConnectionHandling(this.server, encrypted ? 'secureConnection' : 'connection'),
      clientError: (code, socket) => this.#clientError(code, socket),
    });
    this.#firstRequests = firstRequests;
    // Until every connection has gone (Node stops its own checks of request heads at close()).
    this.server.on('close', () => firstRequests.stopSweeping());
    // The TLS handshake of a connection waits for its PROXY header, when one is expected.
    const wrapTls = gate && encrypted ? takeConnectionHandling(this.server, 'connection') : undefined;
    const sockets = this.#sockets;
    function forgetSocket(this: Socket): void {
      sockets.delete(this);
    }
    this.server.on('connection', (socket: Socket) => {
      if (this.#closingAll) {
        socket.destroy();
        return;
      }
      this.#sockets.add(socket);
      // One listener function for every socket of this listener (`this` is the socket); 'close'
      // comes once, so `on` without the wrapper `once` allocates.
      socket.on('close', forgetSocket);
      if (gate === undefined) {
        if (!encrypted) firstRequests.read(socket);
        return;
      }
      gate.admit(socket, (source) => {
        peers.record(socket, source, encrypted);
        if (wrapTls === undefined) firstRequests.read(socket);
        else wrapTls(socket);
      });
    });
    this.#secureServer?.on('secureConnection', (socket: TLSSocket) => {
      if (gate) peers.secured(socket);
      firstRequests.read(socket);
    });
    this.server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      firstRequests.headRead(req.socket);
      this.#responseStarted(req.socket as Socket, res);
      handlers.request(req, res, this.#info);
    });
    this.server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
      firstRequests.headRead(socket);
      const upgrade = (): void => handlers.upgrade(req, socket, head, this.#info);
      const waiting = this.#unanswered.get(socket);
      if (waiting === undefined) {
        upgrade();
        return;
      }
      // An upgrade pipelined behind requests still being answered waits for their responses: a
      // 101 sent first would put their answers inside the WebSocket stream.
      socket.on('error', ignoreError);
      waiting.after.push(upgrade);
    });
    this.server.on('clientError', (error: Error & { code?: string }, socket: Socket) =>
      this.#clientError(error.code ?? error.message, socket),
    );
    this.server.on('tlsClientError', (error: Error & { code?: string }) =>
      log.debug({ listener: name, err: error.code ?? error.message }, 'TLS handshake failed'),
    );
  }

  /** Answers a head that could not be read (malformed, too large, too slow) and closes its connection. */
  #clientError(code: string, socket: Socket): void {
    this.#log.debug({ listener: this.name, err: code }, 'malformed request');
    const status = clientErrorStatus(code);
    if (socket.writable && !socket.destroyed) {
      socket.end(
        `HTTP/1.1 ${status} ${status === 431 ? 'Request Header Fields Too Large' : status === 408 ? 'Request Timeout' : 'Bad Request'}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`,
      );
    }
    socket.destroy();
  }

  get config(): ListenerConfig {
    return this.#config;
  }

  /**
   * Takes a reloaded configuration that `takesInPlace` allows: new connections get the new
   * timeouts, header size bound and certificates; open connections keep what they began with.
   */
  reconfigure(config: ListenerConfig): void {
    const previous = this.#config;
    this.#config = config;
    this.server.headersTimeout = Math.min(config.handshakeTimeout, config.requestTimeout);
    this.server.requestTimeout = config.requestTimeout;
    this.server.keepAliveTimeout = config.keepAliveTimeout;
    // Read by Node for each new connection's parser, though its types do not list it.
    (this.server as Server & { maxHeaderSize: number }).maxHeaderSize = config.maxHeaderSize;
    const server = this.#secureServer;
    if (server === undefined || config.tls === undefined) return;
    if (JSON.stringify(previous.tls) === JSON.stringify(config.tls)) return;
    const certificates = this.#certificatesFor(config.tls);
    this.#certificates?.close();
    this.#certificates = certificates;
    if (server.listening) certificates.takeOver(server);
    this.#log.info({ listener: this.name }, 'TLS settings reloaded');
  }

  #certificatesFor(tls: NonNullable<ListenerConfig['tls']>): ListenerCertificates {
    const { name } = this;
    const metrics = this.#metrics;
    return new ListenerCertificates(name, tls, this.#log, {
      reload: (certificate, result) => metrics.tlsReloads.inc({ listener: name, certificate, result }),
      expiry: (certificate, notAfter) =>
        metrics.tlsCertificateExpiry.set({ listener: name, certificate }, notAfter.getTime() / 1000),
    });
  }

  /** Counts a response on `socket` until it closes; whatever waited for the last one runs then. */
  #responseStarted(socket: Socket, res: ServerResponse): void {
    let waiting = this.#unanswered.get(socket);
    if (!waiting) {
      waiting = { count: 0, after: [] };
      this.#unanswered.set(socket, waiting);
    }
    waiting.count++;
    const entry = waiting;
    res.once('close', () => {
      entry.count--;
      if (entry.count > 0) return;
      this.#unanswered.delete(socket);
      for (const run of entry.after) run();
    });
  }

  /**
   * Binds the listener; rejects with an error naming it and the bind failure (e.g. EADDRINUSE).
   * With `reusePort`, it binds its own socket with SO_REUSEPORT (workers that each accept, the
   * kernel spreading connections), rather than sharing its supervisor's.
   */
  listen(reusePort = false): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      const onError = (error: Error & { code?: string }): void =>
        reject(bindError(`listener "${this.name}"`, this.config.address, this.config.port, error));
      this.server.once('error', onError);
      const sharing = reusePort ? { reusePort: true, exclusive: true } : {};
      this.server.listen(
        { host: this.config.address, port: this.config.port, backlog: 4096, ...sharing },
        () => {
          this.server.off('error', onError);
          if (this.#secureServer) this.#certificates?.start(this.#secureServer);
          this.#firstRequests.startSweeping(checkingIntervalMs(this.#config));
          resolve(this.server.address() as AddressInfo);
        },
      );
    });
  }

  /** Stops accepting connections and closes idle keep-alive ones; in-flight requests go on. */
  stopAccepting(): Promise<void> {
    this.#certificates?.close();
    return new Promise((resolve) => {
      if (!this.server.listening) {
        resolve();
        return;
      }
      this.server.close(() => resolve());
      this.server.closeIdleConnections();
      // After closeAllConnections(), nothing is left to finish: cut what was accepted since.
      if (this.#closingAll) this.#destroySockets();
    });
  }

  /**
   * Cuts every connection still open (at the drain deadline): HTTP connections, and sockets that
   * are not HTTP connections yet (a TLS handshake in progress). From then on, whatever the
   * listener still accepts is cut at once.
   */
  closeAllConnections(): void {
    this.#closingAll = true;
    this.server.closeAllConnections();
    this.#destroySockets();
  }

  /** The PROXY protocol gate, when the listener expects headers. */
  #proxyGate(log: Logger, metrics: GatewayMetrics): ProxyGate | undefined {
    const { proxyProtocol, proxyProtocolPeers, handshakeTimeout } = this.config;
    if (proxyProtocol === 'off') return undefined;
    return new ProxyGate({
      listener: this.name,
      accept: proxyProtocol,
      peers: proxyProtocolPeers.length > 0 ? new TrustedProxies(proxyProtocolPeers) : undefined,
      timeoutMs: handshakeTimeout,
      log,
      refused: (reason) => metrics.proxyProtocolErrors.inc({ listener: this.name, reason }),
    });
  }

  #destroySockets(): void {
    for (const socket of this.#sockets) socket.destroy();
    this.#sockets.clear();
  }
}
