/**
 * Opens the backend side of a WebSocket: connect (TCP, then TLS for https://), send the upgrade
 * request, and wait for the backend's answer. Three outcomes: upgraded (socket and any bytes the
 * backend sent right after its 101), answered (a non-101 response to relay or map), or failed with
 * a code that says whether trying the next backend is safe (only when nothing was sent yet).
 * Built on `http.request` rather than undici's upgrade API so a backend's 4xx reaches the client.
 */
import { type ClientRequest, request as httpRequest, type IncomingMessage } from 'node:http';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { ErrorCode } from '../errors/codes.ts';
import type { Backend, BackendTls } from './pool.ts';

export type UpstreamOutcome =
  | {
      readonly kind: 'upgraded';
      readonly backend: Backend;
      readonly response: IncomingMessage;
      readonly socket: Socket;
      readonly head: Buffer;
    }
  | { readonly kind: 'answered'; readonly backend: Backend; readonly response: IncomingMessage }
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

export interface UpgradeAttempt {
  readonly backend: Backend;
  readonly tls: BackendTls;
  /** The request target, path and query, exactly as the client sent it. */
  readonly path: string;
  readonly headers: readonly string[];
  readonly connectTimeoutMs: number;
  readonly handshakeTimeoutMs: number;
  /** Aborts the attempt (the client went away). */
  readonly signal: AbortSignal;
  /** Called once the TCP (and TLS) connection is up, with the time it took. */
  readonly onConnected: (seconds: number) => void;
}

function startRequest(attempt: UpgradeAttempt): ClientRequest {
  const { backend, tls } = attempt;
  // The connection is opened here and handed over with `createConnection`: with `agent: false`
  // Node would build a new Agent for every request, a cost paid on every upgrade.
  const createConnection = backend.secure
    ? () =>
        tlsConnect({
          // A TCP socket of our own under the TLS one, so that a tunnel can probe it while paused
          // (tunnel.ts: an empty TLS write sends nothing).
          socket: netConnect({ host: backend.host, port: backend.port }),
          host: backend.host,
          port: backend.port,
          // RFC 6066 §3: SNI carries host names only, never an IP literal (the certificate is
          // then checked against the address itself).
          servername: tls.servername ?? backend.serverName ?? '',
          rejectUnauthorized: tls.rejectUnauthorized,
          ...(tls.ca ? { ca: tls.ca } : {}),
          minVersion: 'TLSv1.2',
          ALPNProtocols: ['http/1.1'],
        })
    : () => netConnect({ host: backend.host, port: backend.port });
  return httpRequest({
    method: 'GET',
    path: attempt.path,
    headers: [...attempt.headers],
    setHost: false,
    createConnection,
  });
}

/** Makes one upgrade attempt against one backend. Never rejects. */
export function attemptUpgrade(attempt: UpgradeAttempt): Promise<UpstreamOutcome> {
  const { backend } = attempt;
  return new Promise((resolve) => {
    const startedAt = performance.now();
    let connected = false;
    let settled = false;
    let timer: NodeJS.Timeout | undefined;
    const req = startRequest(attempt);

    const settle = (outcome: UpstreamOutcome): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      attempt.signal.removeEventListener('abort', onAbort);
      resolve(outcome);
    };
    const fail = (code: Extract<UpstreamOutcome, { kind: 'failed' }>['code'], error: Error): void => {
      settle({ kind: 'failed', backend, code, retryable: !connected, error });
      req.destroy();
    };
    const onAbort = (): void => fail('UPSTREAM_CONNECT_FAILED', new Error('client went away'));

    timer = setTimeout(
      () =>
        fail('UPSTREAM_CONNECT_TIMEOUT', new Error(`connect timeout after ${attempt.connectTimeoutMs} ms`)),
      attempt.connectTimeoutMs,
    );
    attempt.signal.addEventListener('abort', onAbort, { once: true });

    req.once('socket', (socket: Socket) => {
      const onReady = (): void => {
        connected = true;
        attempt.onConnected((performance.now() - startedAt) / 1000);
        clearTimeout(timer);
        timer = setTimeout(
          () =>
            fail(
              'UPSTREAM_HANDSHAKE_TIMEOUT',
              new Error(`no answer within ${attempt.handshakeTimeoutMs} ms`),
            ),
          attempt.handshakeTimeoutMs,
        );
      };
      socket.once(backend.secure ? 'secureConnect' : 'connect', onReady);
    });
    req.on('error', (error) => fail(connected ? 'UPSTREAM_BAD_RESPONSE' : 'UPSTREAM_CONNECT_FAILED', error));
    req.once('upgrade', (response: IncomingMessage, socket: Socket, head: Buffer) => {
      if (settled) {
        socket.destroy();
        return;
      }
      if ((response.headers.upgrade ?? '').toLowerCase() !== 'websocket') {
        socket.destroy();
        fail('UPSTREAM_BAD_RESPONSE', new Error(`backend upgraded to "${response.headers.upgrade ?? ''}"`));
        return;
      }
      settle({ kind: 'upgraded', backend, response, socket, head });
    });
    req.once('response', (response: IncomingMessage) => {
      if (settled) {
        response.destroy();
        return;
      }
      settle({ kind: 'answered', backend, response });
    });
    if (attempt.signal.aborted) onAbort();
    else req.end();
  });
}

/**
 * Tries candidates in order until one answers; moves on only after failures that happened
 * before any byte was sent. Returns the last outcome (a failure when every candidate failed).
 */
export async function connectUpstream(
  candidates: readonly Backend[],
  makeAttempt: (backend: Backend) => UpgradeAttempt,
  onFailure: (outcome: Extract<UpstreamOutcome, { kind: 'failed' }>) => void,
): Promise<UpstreamOutcome> {
  let last: UpstreamOutcome | undefined;
  for (const backend of candidates) {
    const attempt = makeAttempt(backend);
    last = await attemptUpgrade(attempt);
    if (last.kind !== 'failed') return last;
    onFailure(last);
    if (!last.retryable || attempt.signal.aborted) return last;
  }
  if (!last) throw new RangeError('connectUpstream needs at least one candidate');
  return last;
}
