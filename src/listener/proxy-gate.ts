/**
 * The PROXY protocol gate of a listener (`proxyProtocol: v1 | v2 | any`): every connection must
 * begin with a valid header, read off the raw TCP socket before any TLS or HTTP byte is looked at.
 * The header must be complete within `handshakeTimeout` and within the parser's size bounds; a
 * peer outside `proxyProtocolPeers` (when set) is refused before anything is read. A refused
 * connection is destroyed without an answer (there is no protocol yet to answer in), counted by
 * reason and logged at debug, since any client can cause one. An accepted one gets the bytes
 * after the header back into its socket (`unshift`) and goes on to Node's own HTTP or TLS
 * handling, which `takeConnectionHandling` holds back from the server for that purpose.
 */
import type { Server, Socket } from 'node:net';
import type { Logger } from '../observability/logger.ts';
import type { TrustedProxies } from './client-address.ts';
import {
  type ProxiedPeer,
  type ProxyAccept,
  type ProxyRefusal,
  parseProxyHeader,
  V1_MAX_LENGTH,
  V2_MAX_LENGTH,
} from './proxy-protocol.ts';

/** Why the gate closed a connection: a header refused, too slow, cut short, or a peer not allowed. */
export type GateRefusal = ProxyRefusal | 'timeout' | 'incomplete' | 'untrusted_peer';

export interface ProxyGateOptions {
  readonly listener: string;
  readonly accept: ProxyAccept;
  /** Peers allowed to connect at all (the load balancers); undefined when every peer may connect. */
  readonly peers: TrustedProxies | undefined;
  readonly timeoutMs: number;
  readonly log: Logger;
  /** Counts a refusal (the metric). */
  readonly refused: (reason: GateRefusal) => void;
}

/** Most bytes kept while waiting for a header: the longest header either version may have. */
const MAX_HEADER = Math.max(V1_MAX_LENGTH, V2_MAX_LENGTH);

/**
 * Takes Node's own handling of a connection `event` off `server` (its HTTP parser on 'connection'
 * or, on a TLS server, 'secureConnection'; its TLS wrapping on a TLS server's 'connection') and
 * returns it as a function to run for one socket: once its PROXY header has been read, or once its
 * first request is known not to be a plain upgrade.
 */
export function takeConnectionHandling(
  server: Server,
  event: 'connection' | 'secureConnection',
): (socket: Socket) => void {
  const handlers = server.listeners(event);
  server.removeAllListeners(event);
  return (socket) => {
    for (const handler of handlers) Reflect.apply(handler, server, [socket]);
  };
}

export class ProxyGate {
  readonly #options: ProxyGateOptions;

  constructor(options: ProxyGateOptions) {
    this.#options = options;
  }

  /**
   * Reads the header off `socket`. On success the bytes after it are back in the socket and
   * `pass` gets the client it reports (undefined: the socket's own peer stands); on failure the
   * socket is destroyed and `pass` is never called.
   */
  admit(socket: Socket, pass: (source: ProxiedPeer | undefined) => void): void {
    const { peers, accept, timeoutMs } = this.#options;
    if (peers !== undefined && !peers.has(socket.remoteAddress)) {
      this.#refuse(socket, 'untrusted_peer', 'a peer outside proxyProtocolPeers');
      return;
    }
    let received: Buffer = Buffer.alloc(0);
    let settled = false;
    const finish = (): void => {
      settled = true;
      clearTimeout(timer);
      socket.off('readable', onReadable);
      socket.off('error', onError);
      socket.off('end', onEnd);
      socket.off('close', onEnd);
    };
    const refuse = (reason: GateRefusal, detail: string): void => {
      finish();
      this.#refuse(socket, reason, detail);
    };
    const onReadable = (): void => {
      for (
        let chunk = socket.read() as Buffer | null;
        chunk !== null;
        chunk = socket.read() as Buffer | null
      ) {
        received = received.length === 0 ? chunk : Buffer.concat([received, chunk]);
        const parsed = parseProxyHeader(received.subarray(0, MAX_HEADER), accept);
        if (parsed.kind === 'incomplete') continue;
        if (parsed.kind === 'refused') {
          refuse(parsed.reason, parsed.detail);
          return;
        }
        finish();
        const rest = received.subarray(parsed.length);
        if (rest.length > 0) socket.unshift(rest);
        pass(parsed.source);
        return;
      }
    };
    const onError = (): void => {
      // A reset while the header is awaited: 'close' follows and counts it.
    };
    // The peer is gone (a reset) or has finished sending (a FIN: the server allows half-open
    // connections, so nothing closes it for the gate). One that sent nothing at all, a TCP health
    // check, is no error.
    const onEnd = (): void => {
      if (received.length > 0) {
        refuse('incomplete', 'the peer ended the connection before a complete header');
        return;
      }
      finish();
      socket.destroy();
    };
    const timer = setTimeout(() => {
      if (!settled) refuse('timeout', `no complete header within ${timeoutMs} ms`);
    }, timeoutMs);
    socket.on('error', onError);
    socket.once('end', onEnd);
    socket.once('close', onEnd);
    socket.on('readable', onReadable);
  }

  #refuse(socket: Socket, reason: GateRefusal, detail: string): void {
    const { listener, log, refused } = this.#options;
    refused(reason);
    log.debug({ listener, peer: socket.remoteAddress, reason, detail }, 'PROXY protocol header refused');
    socket.destroy();
  }
}
