/**
 * Asks the kernel whether a socket that is not being read was reset. A socket paused for
 * backpressure is not read, so a reset of its peer goes unseen until something is written to it;
 * an empty write fails on a reset connection (then the socket's 'error' and 'close' follow) and
 * changes nothing on a live one. A FIN behind unread bytes cannot be seen this way: TCP delivers it
 * after those bytes, so the send timeout bounds that case.
 */
import { Socket } from 'node:net';

const EMPTY = Buffer.alloc(0);

/**
 * The TCP socket under a TLS socket, which Node keeps as `_parent` when the TLS socket wraps one
 * (every server-side TLS socket; backend TLS sockets are opened that way on purpose): an empty
 * write to a TLS socket produces no bytes, so the probe goes below it, and a failure there reaches
 * the TLS socket's own 'error' and 'close'. Without one, the socket itself.
 */
function transportOf(socket: Socket): Socket {
  const parent: unknown = (socket as Socket & { _parent?: unknown })._parent;
  return parent instanceof Socket ? parent : socket;
}

/** Probes `socket` for a reset, unless a write of its own is pending (which reports errors itself). */
export function probeForReset(socket: Socket): void {
  if (!socket.writable || socket.writableLength > 0) return;
  const transport = transportOf(socket);
  if (transport.writable && transport.writableLength === 0) transport.write(EMPTY);
}
