/**
 * The one place a listener's connections get their peer address from: the client a PROXY
 * protocol header reported when there was one, else the TCP peer. X-Forwarded-For, the admission
 * limits per client and the access logs all start from this address.
 *
 * On a TLS listener the header is read off the raw TCP socket, while requests arrive on the TLS
 * socket Node.js wraps around it, which does not expose the raw one. The two share the TCP
 * connection's four addresses and ports, so the reported address waits under those until the TLS
 * socket is secured (or the raw one closes), and is then kept against the TLS socket.
 */
import type { Socket } from 'node:net';
import type { ProxiedPeer } from './proxy-protocol.ts';

/** The addresses and ports of a TCP connection, unique among the open ones. */
function connectionKey(socket: Socket): string | undefined {
  const { remoteAddress, remotePort, localAddress, localPort } = socket;
  if (remoteAddress === undefined || localAddress === undefined) return undefined;
  return `${remoteAddress} ${remotePort} ${localAddress} ${localPort}`;
}

export class PeerAddresses {
  /** Sockets requests arrive on, with the address their PROXY header reported. */
  readonly #reported = new WeakMap<Socket, string>();
  /** Reported addresses of TLS connections not secured yet, by connection. */
  readonly #awaitingTls = new Map<string, string>();

  /**
   * Keeps what the PROXY header of `socket` reported (nothing for LOCAL or UNKNOWN: the socket's
   * own peer stands). With `tls`, requests will arrive on a TLS socket wrapped around it.
   */
  record(socket: Socket, source: ProxiedPeer | undefined, tls: boolean): void {
    if (source === undefined) return;
    if (!tls) {
      this.#reported.set(socket, source.address);
      return;
    }
    const key = connectionKey(socket);
    if (key === undefined) return;
    this.#awaitingTls.set(key, source.address);
    socket.once('close', () => this.#awaitingTls.delete(key));
  }

  /** Moves a reported address to the TLS socket of its connection, once the handshake is done. */
  secured(tlsSocket: Socket): void {
    const key = connectionKey(tlsSocket);
    if (key === undefined) return;
    const address = this.#awaitingTls.get(key);
    if (address === undefined) return;
    this.#awaitingTls.delete(key);
    this.#reported.set(tlsSocket, address);
  }

  /** The peer of the connection `socket` belongs to, as X-Forwarded-For and admission see it. */
  peerAddress(socket: Socket): string {
    return this.#reported.get(socket) ?? socket.remoteAddress ?? '';
  }
}
