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
import { linkSocket, releaseSocket } from '../tunnel/socket-link.ts';
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

/** The request head, checked the way `http.request` checks it: no CR, LF or NUL can slip in. */
export function upgradeRequestHead(path: string, headers: readonly string[]): string {
  if (!TARGET.test(path)) throw new TypeError('the upgrade request target has invalid characters');
  let head = `GET ${path} HTTP/1.1\r\n`;
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i] ?? '';
    const value = headers[i + 1] ?? '';
    if (!TOKEN.test(name)) throw new TypeError(`invalid header name "${name}"`);
    if (!FIELD_VALUE.test(value)) throw new TypeError(`invalid characters in header "${name}"`);
    head += `${name}: ${value}\r\n`;
  }
  return `${head}\r\n`;
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

/** Makes one upgrade attempt against one backend. Never rejects. */
export function attemptUpgrade(attempt: UpgradeAttempt): Promise<UpstreamOutcome> {
  // No closure below refers to `attempt`, and what they reach is let go of once settled: a dead
  // listener list in the old generation may still point at them until the next full collection,
  // and through `attempt.onConnected` or the promise's resolver they would keep the whole
  // handshake (request, pipeline context) alive and promoted.
  const { backend, client, connectTimeoutMs, handshakeTimeoutMs, tls } = attempt;
  const request = upgradeRequestHead(attempt.path, attempt.headers);
  let onConnected: ((seconds: number) => void) | undefined = attempt.onConnected;
  return new Promise((resolveOutcome) => {
    let resolve: ((outcome: UpstreamOutcome) => void) | undefined = resolveOutcome;
    const startedAt = performance.now();
    let connected = false;
    let answerBy = Infinity; // when the backend's answer is due, once connected
    let settled = false;
    let received: Received | undefined;
    let interim = 0; // bytes of 1xx answers skipped so far
    const socket = openSocket(backend, tls);

    const settle = (outcome: UpstreamOutcome): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      client.onGone = undefined;
      // Errors until the tunnel takes the socket are ignored (released: its listeners stay, unowned).
      releaseSocket(socket);
      socket.off(backend.secure ? 'secureConnect' : 'connect', onReady);
      if (outcome.kind === 'failed') socket.destroy();
      else socket.pause();
      received = undefined;
      onConnected = undefined;
      const done = resolve;
      resolve = undefined;
      done?.(outcome);
    };
    const fail = (code: Failure['code'], error: Error): void =>
      settle({ kind: 'failed', backend, code, retryable: !connected, error });
    const onReady = (): void => {
      // A TLS backend that renegotiates emits 'secureConnect' again: the connect happened once.
      if (connected) return;
      connected = true;
      const now = performance.now();
      onConnected?.((now - startedAt) / 1000);
      answerBy = now + handshakeTimeoutMs;
      // The connect timer is kept when it fires before the answer is due: it then waits out the
      // rest (one timer per attempt instead of two).
      if (answerBy < startedAt + connectTimeoutMs) {
        clearTimeout(timer);
        timer = setTimeout(onTimer, handshakeTimeoutMs);
      }
    };
    const onData = (chunk: Buffer): void => {
      received = append(received, chunk);
      for (;;) {
        const bytes = received.bytes();
        const parsed = parseResponseHead(bytes, MAX_RESPONSE_HEAD, received.scanned);
        if (parsed.kind === 'partial') {
          received.scanned = bytes.length;
          return;
        }
        if (parsed.kind === 'invalid') {
          fail('UPSTREAM_BAD_RESPONSE', new Error(parsed.reason));
          return;
        }
        const { head } = parsed;
        const rest = bytes.subarray(head.length);
        // Interim answers (100 Continue, 103 Early Hints) come before the real one.
        if (head.status >= 100 && head.status < 200 && head.status !== 101) {
          interim += head.length;
          if (interim > MAX_RESPONSE_HEAD) {
            fail('UPSTREAM_BAD_RESPONSE', new Error(`interim answers over ${MAX_RESPONSE_HEAD} bytes`));
            return;
          }
          if (rest.length === 0) {
            received = undefined;
            return;
          }
          received = new Received(rest);
          continue;
        }
        if (head.status !== 101) {
          settle({ kind: 'answered', backend, response: head, socket, body: rest });
          return;
        }
        const why = notAnUpgrade(head);
        if (why !== undefined) fail('UPSTREAM_BAD_RESPONSE', new Error(why));
        else settle({ kind: 'upgraded', backend, response: head, socket, head: rest });
        return;
      }
    };
    const onError = (error: Error): void =>
      fail(connected ? 'UPSTREAM_BAD_RESPONSE' : 'UPSTREAM_CONNECT_FAILED', error);
    const onClose = (): void =>
      fail(
        connected ? 'UPSTREAM_BAD_RESPONSE' : 'UPSTREAM_CONNECT_FAILED',
        new Error(connected ? 'the backend closed the connection before answering' : 'connection closed'),
      );

    const onTimer = (): void => {
      if (!connected) {
        fail('UPSTREAM_CONNECT_TIMEOUT', new Error(`connect timeout after ${connectTimeoutMs} ms`));
        return;
      }
      const left = answerBy - performance.now();
      if (left > 1) timer = setTimeout(onTimer, left);
      else fail('UPSTREAM_HANDSHAKE_TIMEOUT', new Error(`no answer within ${handshakeTimeoutMs} ms`));
    };
    let timer: NodeJS.Timeout | undefined = setTimeout(onTimer, connectTimeoutMs);
    // settle() takes it off (`once` would wrap it); onReady acts on the first event only.
    socket.on(backend.secure ? 'secureConnect' : 'connect', onReady);
    // The socket's shared listeners, handed to the tunnel on a 101 (src/tunnel/socket-link.ts).
    linkSocket(
      socket,
      {
        socketEvent(_side, event, value) {
          if (event === 'data') onData(value as Buffer);
          else if (event === 'error') onError(value as Error);
          else if (event === 'close') onClose();
        },
      },
      'backend',
    );
    if (client.gone) {
      fail('UPSTREAM_CONNECT_FAILED', new Error('client went away'));
      return;
    }
    client.onGone = () => fail('UPSTREAM_CONNECT_FAILED', new Error('client went away'));
    socket.write(request, 'latin1');
  });
}

/**
 * Tries candidates in order until one answers; moves on only after failures that happened
 * before any byte was sent. Returns the last outcome (a failure when every candidate failed).
 */
export async function connectUpstream(
  candidates: readonly Backend[],
  makeAttempt: (backend: Backend) => UpgradeAttempt,
  onFailure: (outcome: Failure) => void,
): Promise<UpstreamOutcome> {
  let last: UpstreamOutcome | undefined;
  for (const backend of candidates) {
    const attempt = makeAttempt(backend);
    last = await attemptUpgrade(attempt);
    if (last.kind !== 'failed') return last;
    onFailure(last);
    if (!last.retryable || attempt.client.gone) return last;
  }
  if (!last) throw new RangeError('connectUpstream needs at least one candidate');
  return last;
}
