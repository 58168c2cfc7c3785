/**
 * The first request of each connection of a listener, read on the raw socket: when it is a plain
 * WebSocket upgrade (upgrade-head.ts), it goes to the upgrade handler as it is, without Node's
 * HTTP parser, request object and connection bookkeeping, which cost a handshake about a tenth of
 * its CPU; anything else gets its bytes back into the socket (`unshift`) and goes to Node's HTTP
 * server as if nothing had read it (keep-alive requests, long-polling, malformed heads and their
 * 400 and 431 answers). Where Node would bound the head, this does: the head must be complete
 * within the listener's head timeout (408 otherwise, as Node answers; a head handed to Node
 * half-way keeps that deadline until Node has read it) and its size bound (past it, the head is
 * Node's, which applies its own), both as they are when the connection arrives, its deadline looked at as often as
 * Node looks at its own (the listener's checking interval); a head cut by a FIN gets 400. A head
 * in several reads is checked as it comes (partial-head.ts), so one that cannot be an upgrade goes
 * to Node at once, not at the timeout.
 */
import type { Socket } from 'node:net';
import type { IncomingHead } from '../protocol/incoming-head.ts';
import type { Side } from '../tunnel/sides.ts';
import { linkSocket, type SocketEvent, type SocketEvents, unlinkSocket } from '../tunnel/socket-link.ts';
import { PartialHead } from './partial-head.ts';
import { readUpgradeHead, type UpgradeHead } from './upgrade-head.ts';

export interface FirstRequestOptions {
  /** The head's time and size bounds, read for each connection (a reload may change them). */
  readonly bounds: () => { readonly timeoutMs: number; readonly maxHeaderSize: number };
  /** An upgrade read here, with the bytes that came after its head. */
  readonly upgrade: (head: IncomingHead, socket: Socket, rest: Buffer) => void;
  /** Node's HTTP handling, for a connection whose first request is another kind. */
  readonly serveHttp: (socket: Socket) => void;
  /** A head that did not complete (a status to answer, as Node's `clientError` codes name it). */
  readonly clientError: (code: 'ERR_HTTP_REQUEST_TIMEOUT' | 'HPE_INVALID_EOF_STATE', socket: Socket) => void;
}

/** The bytes after a head that had none (no reference kept to the chunk the head came in). */
const NOTHING = Buffer.alloc(0);

/** One connection whose first head is still awaited: the owner of its socket meanwhile. */
class HeadWait implements SocketEvents {
  readonly socket: Socket;
  readonly #options: FirstRequestOptions;
  readonly #maxHeaderSize: number;
  /** The waits of the listener by socket, this one among them until its head has been read. */
  readonly #waiting: Map<Socket, HeadWait>;
  /** When the head is due (performance.now()). */
  readonly dueBy: number;
  /** The head so far, when it is longer than one read. */
  #partial: PartialHead | undefined;
  #settled = false;
  /** Given to Node's server, whose head is awaited still (Node's own timer started only then). */
  #handedOver = false;

  constructor(options: FirstRequestOptions, socket: Socket, waiting: Map<Socket, HeadWait>) {
    const { timeoutMs, maxHeaderSize } = options.bounds();
    this.socket = socket;
    this.#options = options;
    this.#maxHeaderSize = maxHeaderSize;
    this.#waiting = waiting;
    this.dueBy = performance.now() + timeoutMs;
    waiting.set(socket, this);
    linkSocket(socket, this, 'client');
  }

  socketEvent(_side: Side, event: SocketEvent, value: Buffer | Error | undefined): void {
    if (this.#settled) return;
    if (event === 'data') this.#data(value as Buffer);
    else if (event === 'end') this.#ended();
    else if (event === 'error' || event === 'close') {
      // A reset or a close before a head: nothing to answer.
      this.#settle();
      this.socket.destroy();
    }
  }

  #data(chunk: Buffer): void {
    let received = chunk;
    if (this.#partial === undefined) {
      const read = readUpgradeHead(chunk, this.#maxHeaderSize);
      if (read.kind === 'upgrade') {
        this.#upgrade(read.head, read.length === chunk.length ? NOTHING : chunk.subarray(read.length));
        return;
      }
      if (read.kind === 'incomplete') {
        this.#partial = new PartialHead(this.#maxHeaderSize);
        const progress = this.#partial.add(chunk);
        if (progress.kind === 'incomplete') return;
        received = progress.bytes;
      }
    } else {
      const progress = this.#partial.add(chunk);
      if (progress.kind === 'incomplete') return;
      received = progress.bytes;
      if (progress.kind === 'complete') {
        const read = readUpgradeHead(received, this.#maxHeaderSize);
        if (read.kind === 'upgrade') {
          // A copy: the rest must not keep the whole collected head alive.
          this.#upgrade(read.head, Buffer.from(received.subarray(read.length)));
          return;
        }
      }
    }
    this.#toNode(received);
  }

  #upgrade(head: UpgradeHead, rest: Buffer): void {
    this.#settle();
    const { socket } = this;
    socket.pause();
    this.#options.upgrade({ ...head, socket }, socket, rest);
  }

  /**
   * Gives the connection to Node's HTTP server with the bytes received so far back in it. The
   * deadline still holds until Node has read the head (FirstRequests.headRead): a client must not
   * get a second head timeout by sending, late, a byte Node takes and this reader does not.
   */
  #toNode(received: Buffer): void {
    this.#settled = true;
    this.#handedOver = true;
    const { socket } = this;
    socket.pause();
    unlinkSocket(socket);
    socket.unshift(received);
    this.#options.serveHttp(socket);
    socket.resume();
  }

  /** The client finished sending (a FIN) before a whole head: Node answers a cut head with 400. */
  #ended(): void {
    this.#settle();
    if (this.#partial === undefined) this.socket.destroy();
    else this.#options.clientError('HPE_INVALID_EOF_STATE', this.socket);
  }

  /** The head is past its time: 408, as Node answers. */
  expire(): void {
    if (this.#settled && !this.#handedOver) return;
    this.#settle();
    if (!this.socket.destroyed) this.#options.clientError('ERR_HTTP_REQUEST_TIMEOUT', this.socket);
  }

  #settle(): void {
    this.#settled = true;
    this.#waiting.delete(this.socket);
  }
}

/**
 * The first requests of one listener's connections. Their deadlines are looked at by one
 * interval while the listener listens, as Node looks at its request heads, rather than by a timer
 * per connection.
 */
export class FirstRequests {
  readonly #options: FirstRequestOptions;
  readonly #waiting = new Map<Socket, HeadWait>();
  #sweep: NodeJS.Timeout | undefined;

  constructor(options: FirstRequestOptions) {
    this.#options = options;
  }

  /** Reads the first request of `socket`, a connection just accepted (and through TLS, if any). */
  read(socket: Socket): void {
    new HeadWait(this.#options, socket, this.#waiting);
  }

  /** Node's server has read a head of `socket` (a request or an upgrade): its deadline is Node's. */
  headRead(socket: Socket): void {
    if (this.#waiting.size > 0) this.#waiting.delete(socket);
  }

  /** Looks for heads past their deadline every `intervalMs`, until stopSweeping(). */
  startSweeping(intervalMs: number): void {
    if (this.#sweep !== undefined) return;
    this.#sweep = setInterval(() => this.#expireDue(), intervalMs);
    this.#sweep.unref();
  }

  stopSweeping(): void {
    clearInterval(this.#sweep);
    this.#sweep = undefined;
  }

  #expireDue(): void {
    const now = performance.now();
    for (const wait of this.#waiting.values()) if (wait.dueBy <= now) wait.expire();
  }
}
