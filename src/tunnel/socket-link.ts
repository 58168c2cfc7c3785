/**
 * The listeners of a connection's sockets, shared by every connection: each socket carries a link
 * to its owner and side, so that an open tunnel holds no closure per socket event (idle memory is
 * JS objects, and five listeners on two sockets were ten closures per connection). A socket is
 * linked once and then handed from owner to owner (the handshake's client watch or backend
 * attempt, then the tunnel) without a listener added or removed, where a handshake made two
 * dozen such changes. Also the TCP keepalive a tunnel's sockets get.
 */
import type { Socket } from 'node:net';
import type { Side } from './sides.ts';

export type SocketEvent = 'error' | 'data' | 'drain' | 'end' | 'close';

/** What takes the events of linked sockets (a tunnel). */
export interface SocketEvents {
  socketEvent(side: Side, event: SocketEvent, value: Buffer | Error | undefined): void;
}

/** Idle time before the first TCP keepalive probe on either socket of a tunnel. */
const KEEPALIVE_DELAY_MS = 30_000;

/** Turns TCP keepalive on (four system calls): a peer gone without FIN or RST is found. */
export function keepAlive(socket: Socket): void {
  socket.setKeepAlive(true, KEEPALIVE_DELAY_MS);
}

/** Takes events nobody waits for: a socket between owners, paused (its errors end in a close). */
const UNOWNED: SocketEvents = { socketEvent() {} };

const LINK = Symbol('socket owner');
type LinkedSocket = Socket & { [LINK]?: { owner: SocketEvents; side: Side } | undefined };

/** Hands an event of `socket` to the owner it is linked to. */
function forward(socket: Socket, event: SocketEvent, value?: Buffer | Error): void {
  const link = (socket as LinkedSocket)[LINK];
  if (link !== undefined) link.owner.socketEvent(link.side, event, value);
}

// `this` is the socket that emitted.
function onError(this: Socket, error: Error): void {
  forward(this, 'error', error);
}
function onData(this: Socket, chunk: Buffer): void {
  forward(this, 'data', chunk);
}
function onDrain(this: Socket): void {
  forward(this, 'drain');
}
function onEnd(this: Socket): void {
  forward(this, 'end');
}
function onClose(this: Socket): void {
  forward(this, 'close');
}

/**
 * Gives `socket`'s events to `owner` as its `side`. The first link adds the listeners, which
 * start the socket's flow unless it was paused; a later one only changes the owner.
 */
export function linkSocket(socket: Socket, owner: SocketEvents, side: Side): void {
  const linked = socket as LinkedSocket;
  const link = linked[LINK];
  if (link !== undefined) {
    link.owner = owner;
    link.side = side;
    return;
  }
  linked[LINK] = { owner, side };
  socket.on('error', onError);
  socket.on('data', onData);
  socket.on('drain', onDrain);
  socket.on('end', onEnd);
  socket.on('close', onClose);
}

/**
 * Links `socket` with no owner, paused: its errors are ignored (a reset cannot crash the process)
 * until an owner takes it, and no data is emitted meanwhile (what arrives waits in the socket's
 * buffer, which stops reading from the kernel at its high-water mark).
 */
export function holdSocket(socket: Socket, side: Side): void {
  socket.pause();
  linkSocket(socket, UNOWNED, side);
}

/** Takes `socket` from its owner (which it no longer reaches); the caller pauses or destroys it. */
export function releaseSocket(socket: Socket): void {
  const link = (socket as LinkedSocket)[LINK];
  if (link !== undefined) link.owner = UNOWNED;
}

/** Takes the shared listeners off `socket`, which other code reads from now on (Node's HTTP server). */
export function unlinkSocket(socket: Socket): void {
  const linked = socket as LinkedSocket;
  if (linked[LINK] === undefined) return;
  linked[LINK] = undefined;
  socket.off('error', onError);
  socket.off('data', onData);
  socket.off('drain', onDrain);
  socket.off('end', onEnd);
  socket.off('close', onClose);
}
