/**
 * Opens the backend side of a WebSocket: connect (TCP, then TLS for https://), write the upgrade
 * request, and read the backend's answer with the strict parser of response-head.ts. Three
 * outcomes: upgraded (socket and any bytes the backend sent right after its 101), answered (a
 * non-101 head with its socket, to relay or map), or failed with a code that says whether trying
 * the next backend is safe (only when nothing was sent yet). Written on the socket itself, not
 * `http.request`: a handshake is one write and one parse, and a backend's 4xx still reaches the client.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { ErrorCode } from '../errors/codes.ts';
import { isNamed, listsToken, TOKEN } from '../protocol/header-rules.ts';
import type { Side } from '../tunnel/sides.ts';
import { linkSocket, releaseSocket, type SocketEvent, type SocketEvents } from '../tunnel/socket-link.ts';
import type { Backend, BackendTls } from './pool.ts';
import { headerValue, parseResponseHead, type ResponseHead } from './response-head.ts';

/** Largest response head read from a backend (Node's default header limit). */
export const MAX_RESPONSE_HEAD = 16 * 1024;

export type UpstreamOutcome =
  | {
      readonly kind: 'upgraded';
      readonly backend: Backend;
      readonly response: ResponseHead;
      readonly socket: Socket;
      /** Bytes the backend sent after its 101. */
      readonly head: Buffer;
    }
  | {
      readonly kind: 'answered';
      readonly backend: Backend;
      readonly response: ResponseHead;
      readonly socket: Socket;
      /** Bytes of the body read with the head. */
      readonly body: Buffer;
    }
  | {
      readonly kind: 'failed';
      readonly backend: Backend;
      readonly code: Extract<
        ErrorCode,
        | 'UPSTREAM_CONNECT_FAILED'
        | 'UPSTREAM_CONNECT_TIMEOUT'
        | 'UPSTREAM_HANDSHAKE_TIMEOUT'
        | 'UPSTREAM_BAD_RESPONSE'
      >;
      /** True when no byte reached the backend, so another backend may be tried. */
      readonly retryable: boolean;
      readonly error: Error;
    };

type Failure = Extract<UpstreamOutcome, { kind: 'failed' }>;

/** The client side of an attempt: whether it left, and who to tell when it does. */
export interface ClientPresence {
  gone: boolean;
  onGone: (() => void) | undefined;
}

export interface UpgradeAttempt {
  readonly backend: Backend;
  readonly tls: BackendTls;
  /** The request target, path and query, exactly as the client sent it. */
  readonly path: string;
  readonly headers: readonly string[];
  readonly connectTimeoutMs: number;
  readonly handshakeTimeoutMs: number;
  /** The attempt is abandoned when the client goes away. */
  readonly client: ClientPresence;
  /** Called once the TCP (and TLS) connection is up, with the time it took. */
  readonly onConnected: (seconds: number) => void;
}

const TARGET = /^[\x21-\x7e\x80-\xff]+$/;
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/**
 * The request head, checked the way `http.request` checks it: no CR, LF or NUL can slip in. Its
 * pieces are joined once into one flat string (it waits in the socket until the connect is done;
 * a string grown by `+=` would wait as a tree of a few dozen pieces).
 */
export function upgradeRequestHead(path: string, headers: readonly string[]): string {
  if (!TARGET.test(path)) throw new TypeError('the upgrade request target has invalid characters');
  const pieces = ['GET ', path, ' HTTP/1.1\r\n'];
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i] ?? '';
    const value = headers[i + 1] ?? '';
    if (!TOKEN.test(name)) throw new TypeError(`invalid header name "${name}"`);
    if (!FIELD_VALUE.test(value)) throw new TypeError(`invalid characters in header "${name}"`);
    pieces.push(name, ': ', value, '\r\n');
  }
  pieces.push('\r\n');
  return pieces.join('');
}

function openSocket(backend: Backend, tls: BackendTls): Socket {
  if (!backend.secure) return netConnect({ host: backend.host, port: backend.port });
  return tlsConnect({
    // A TCP socket of our own under the TLS one, so that a tunnel can probe it while paused
    // (tunnel.ts: an empty TLS write sends nothing).
    socket: netConnect({ host: backend.host, port: backend.port }),
    host: backend.host,
    port: backend.port,
    // RFC 6066 §3: SNI carries host names only, never an IP literal (the certificate is then
    // checked against the address itself).
    servername: tls.servername ?? backend.serverName ?? '',
    rejectUnauthorized: tls.rejectUnauthorized,
    ...(tls.ca ? { ca: tls.ca } : {}),
    minVersion: 'TLSv1.2',
    ALPNProtocols: ['http/1.1'],
  });
}

/** Why a parsed head cannot open a WebSocket, or undefined when it can. */
function notAnUpgrade(head: ResponseHead): string | undefined {
  if (head.minorVersion !== 1) return 'a 101 over HTTP/1.0';
  const upgrade = headerValue(head, 'upgrade');
  if (!isNamed(upgrade, 'websocket')) return `backend upgraded to "${upgrade ?? ''}"`;
  if (!listsToken(headerValue(head, 'connection'), 'upgrade')) return 'a 101 without Connection: upgrade';
  return undefined;
}

/**
 * The bytes of a backend's answer read so far, in a buffer that doubles as it fills (a head
 * arriving in many small reads is copied a few times, not once per read), and how much of it
 * the parser has already searched.
 */
class Received {
  #buffer: Buffer;
  #filled: number;
  #owned = false;
  scanned = 0;

  constructor(first: Buffer) {
    this.#buffer = first;
    this.#filled = first.length;
  }

  add(chunk: Buffer): void {
    const needed = this.#filled + chunk.length;
    if (!this.#owned || needed > this.#buffer.length) {
      const grown = Buffer.allocUnsafe(Math.max(needed, 2 * this.#filled, 1024));
      this.#buffer.copy(grown, 0, 0, this.#filled);
      this.#buffer = grown;
      this.#owned = true;
    }
    chunk.copy(this.#buffer, this.#filled);
    this.#filled = needed;
  }

  bytes(): Buffer {
    return this.#buffer.subarray(0, this.#filled);
  }
}

function append(received: Received | undefined, chunk: Buffer): Received {
  if (received === undefined) return new Received(chunk);
  received.add(chunk);
  return received;
}

/**
 * Makes one upgrade attempt against one backend. Never rejects; throws (before any socket is
 * opened) when the request head would carry characters no head may hold.
 */
export function attemptUpgrade(attempt: UpgradeAttempt): Promise<UpstreamOutcome> {
  const request = upgradeRequestHead(attempt.path, attempt.headers);
  return new Promise((resolve) => {
    new BackendAttempt(attempt, resolve).start(request);
  });
}

/**
 * One attempt in progress: the owner of its backend socket until it settles. One object with
 * methods, where closures over the attempt's variables were a context and eight functions, all
 * kept alive (and copied by each young-generation collection) while the backend answers.
 * What it reaches is let go of once settled: a dead listener list in the old generation may still
 * point at it until the next full collection, and through `onConnected` or the resolver it would
 * keep the whole handshake (request, pipeline context) alive and promoted.
 */
class BackendAttempt implements SocketEvents {
  readonly #backend: Backend;
  readonly #client: ClientPresence;
  readonly #connectTimeoutMs: number;
  readonly #handshakeTimeoutMs: number;
  readonly #socket: Socket;
  readonly #startedAt = performance.now();
  #onConnected: ((seconds: number) => void) | undefined;
  #resolve: ((outcome: UpstreamOutcome) => void) | undefined;
  #connected = false;
  /** When the backend's answer is due, once connected. */
  #answerBy = Infinity;
  #settled = false;
  #received: Received | undefined;
  /** Bytes of 1xx answers skipped so far. */
  #interim = 0;
  #timer: NodeJS.Timeout | undefined;
  /** The socket's connect listener (taken off when settled; a method would need a closure anyway). */
  readonly #onReady = (): void => this.#ready();
  readonly #onTimer = (): void => this.#timeUp();

  constructor(attempt: UpgradeAttempt, resolve: (outcome: UpstreamOutcome) => void) {
    this.#backend = attempt.backend;
    this.#client = attempt.client;
    this.#connectTimeoutMs = attempt.connectTimeoutMs;
    this.#handshakeTimeoutMs = attempt.handshakeTimeoutMs;
    this.#onConnected = attempt.onConnected;
    this.#resolve = resolve;
    this.#socket = openSocket(attempt.backend, attempt.tls);
  }

  /** Starts the timer and the reading, and writes `request` (queued until connected). */
  start(request: string): void {
    const socket = this.#socket;
    this.#timer = setTimeout(this.#onTimer, this.#connectTimeoutMs);
    // settle() takes it off (`once` would wrap it); #ready acts on the first event only.
    socket.on(this.#backend.secure ? 'secureConnect' : 'connect', this.#onReady);
    // The socket's shared listeners, handed to the tunnel on a 101 (src/tunnel/socket-link.ts).
    linkSocket(socket, this, 'backend');
    if (this.#client.gone) {
      this.#fail('UPSTREAM_CONNECT_FAILED', new Error('client went away'));
      return;
    }
    this.#client.onGone = () => this.#fail('UPSTREAM_CONNECT_FAILED', new Error('client went away'));
    socket.write(request, 'latin1');
  }

  socketEvent(_side: Side, event: SocketEvent, value: Buffer | Error | undefined): void {
    if (event === 'data') this.#data(value as Buffer);
    else if (event === 'error') {
      this.#fail(this.#connected ? 'UPSTREAM_BAD_RESPONSE' : 'UPSTREAM_CONNECT_FAILED', value as Error);
    } else if (event === 'close') {
      const connected = this.#connected;
      this.#fail(
        connected ? 'UPSTREAM_BAD_RESPONSE' : 'UPSTREAM_CONNECT_FAILED',
        new Error(connected ? 'the backend closed the connection before answering' : 'connection closed'),
      );
    }
  }

  #settle(outcome: UpstreamOutcome): void {
    if (this.#settled) return;
    this.#settled = true;
    clearTimeout(this.#timer);
    this.#client.onGone = undefined;
    const socket = this.#socket;
    // Errors until the tunnel takes the socket are ignored (released: its listeners stay, unowned).
    releaseSocket(socket);
    socket.off(this.#backend.secure ? 'secureConnect' : 'connect', this.#onReady);
    if (outcome.kind === 'failed') socket.destroy();
    else socket.pause();
    this.#received = undefined;
    this.#onConnected = undefined;
    const done = this.#resolve;
    this.#resolve = undefined;
    done?.(outcome);
  }

  #fail(code: Failure['code'], error: Error): void {
    this.#settle({ kind: 'failed', backend: this.#backend, code, retryable: !this.#connected, error });
  }

  #ready(): void {
    // A TLS backend that renegotiates emits 'secureConnect' again: the connect happened once.
    if (this.#connected) return;
    this.#connected = true;
    const now = performance.now();
    this.#onConnected?.((now - this.#startedAt) / 1000);
    this.#answerBy = now + this.#handshakeTimeoutMs;
    // The connect timer is kept when it fires before the answer is due: it then waits out the
    // rest (one timer per attempt instead of two).
    if (this.#answerBy < this.#startedAt + this.#connectTimeoutMs) {
      clearTimeout(this.#timer);
      this.#timer = setTimeout(this.#onTimer, this.#handshakeTimeoutMs);
    }
  }

  #timeUp(): void {
    if (!this.#connected) {
      this.#fail('UPSTREAM_CONNECT_TIMEOUT', new Error(`connect timeout after ${this.#connectTimeoutMs} ms`));
      return;
    }
    const left = this.#answerBy - performance.now();
    if (left > 1) this.#timer = setTimeout(this.#onTimer, left);
    else
      this.#fail('UPSTREAM_HANDSHAKE_TIMEOUT', new Error(`no answer within ${this.#handshakeTimeoutMs} ms`));
  }

  #data(chunk: Buffer): void {
    if (this.#settled) return;
    let received = append(this.#received, chunk);
    this.#received = received;
    for (;;) {
      const bytes = received.bytes();
      const parsed = parseResponseHead(bytes, MAX_RESPONSE_HEAD, received.scanned);
      if (parsed.kind === 'partial') {
        received.scanned = bytes.length;
        return;
      }
      if (parsed.kind === 'invalid') {
        this.#fail('UPSTREAM_BAD_RESPONSE', new Error(parsed.reason));
        return;
      }
      const { head } = parsed;
      const rest = bytes.subarray(head.length);
      // Interim answers (100 Continue, 103 Early Hints) come before the real one.
      if (head.status >= 100 && head.status < 200 && head.status !== 101) {
        this.#interim += head.length;
        if (this.#interim > MAX_RESPONSE_HEAD) {
          this.#fail('UPSTREAM_BAD_RESPONSE', new Error(`interim answers over ${MAX_RESPONSE_HEAD} bytes`));
          return;
        }
        if (rest.length === 0) {
          this.#received = undefined;
          return;
        }
        received = new Received(rest);
        this.#received = received;
        continue;
      }
      const backend = this.#backend;
      const socket = this.#socket;
      if (head.status !== 101) {
        this.#settle({ kind: 'answered', backend, response: head, socket, body: rest });
        return;
      }
      const why = notAnUpgrade(head);
      if (why !== undefined) this.#fail('UPSTREAM_BAD_RESPONSE', new Error(why));
      else this.#settle({ kind: 'upgraded', backend, response: head, socket, head: rest });
      return;
    }
  }
}

/**
 * Tries candidates in order until one answers; moves on only after failures that happened
 * before any byte was sent, while `client` is there. Returns the last outcome (a failure when
 * every candidate failed). An attempt is not kept past its own turn.
 */
export async function connectUpstream(
  candidates: readonly Backend[],
  client: ClientPresence,
  makeAttempt: (backend: Backend) => UpgradeAttempt,
  onFailure: (outcome: Failure) => void,
): Promise<UpstreamOutcome> {
  let last: UpstreamOutcome | undefined;
  for (const backend of candidates) {
    last = await attemptUpgrade(makeAttempt(backend));
    if (last.kind !== 'failed') return last;
    onFailure(last);
    if (!last.retryable || client.gone) return last;
  }
  if (!last) throw new RangeError('connectUpstream needs at least one candidate');
  return last;
}
