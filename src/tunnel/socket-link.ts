/**
 * The listeners of a tunnel's two sockets, shared by every tunnel: each socket carries a link to
 * its tunnel and side, so that an open tunnel holds no closure per socket event (idle memory is
 * JS objects, and five listeners on two sockets were ten closures per connection). Also the TCP
 * keepalive a tunnel's sockets get.
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

const LINK = Symbol('tunnel side');
type LinkedSocket = Socket & { [LINK]?: { readonly owner: SocketEvents; readonly side: Side } };

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

/** Links `socket` to `owner` as its `side` and listens for its events. */
export function linkSocket(socket: Socket, owner: SocketEvents, side: Side): void {
  (socket as LinkedSocket)[LINK] = { owner, side };
  socket.on('error', onError);
  socket.on('data', onData);
  socket.on('drain', onDrain);
  socket.on('end', onEnd);
  socket.on('close', onClose);
}
