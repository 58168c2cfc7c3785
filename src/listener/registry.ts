/**
 * Every connection the gateway is responsible for: upgrade handshakes in progress, live tunnels
 * and plain HTTP requests being proxied. `server.close()` knows nothing of upgraded sockets, so
 * shutdown walks this registry to close them and waits for it to empty; tests assert it is empty
 * at teardown.
 */
import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { ErrorCode } from '../errors/codes.ts';

/** What the registry needs of a live tunnel. */
export interface RegisteredTunnel {
  readonly id: string;
  /** Starts a gateway-initiated close with the close frames of `code`; teardown follows. */
  close(code: ErrorCode): void;
  /** Destroys both sockets at once. */
  destroy(): void;
}

export class ConnectionRegistry {
  readonly #pending = new Set<Socket>();
  /** Live tunnels, each with the backend it reaches. */
  readonly #tunnels = new Map<RegisteredTunnel, object>();
  /** Live tunnels by the backend they reach, so that one backend can be drained. */
  readonly #byBackend = new Map<object, Set<RegisteredTunnel>>();
  readonly #requests = new Set<ServerResponse>();
  readonly #emptyWaiters = new Set<() => void>();
  /** Who waits for a backend's last tunnel to end. */
  readonly #idleWaiters = new Map<object, Set<() => void>>();

  addPending(socket: Socket): void {
    this.#pending.add(socket);
  }

  removePending(socket: Socket): void {
    this.#pending.delete(socket);
    this.#notifyIfEmpty();
  }

  /** Registers a live tunnel to `backend` (any object that stands for it). */
  addTunnel(tunnel: RegisteredTunnel, backend: object): void {
    this.#tunnels.set(tunnel, backend);
    let tunnels = this.#byBackend.get(backend);
    if (tunnels === undefined) {
      tunnels = new Set();
      this.#byBackend.set(backend, tunnels);
    }
    tunnels.add(tunnel);
  }

  removeTunnel(tunnel: RegisteredTunnel): void {
    const backend = this.#tunnels.get(tunnel);
    this.#tunnels.delete(tunnel);
    const tunnels = backend === undefined ? undefined : this.#byBackend.get(backend);
    if (tunnels !== undefined) {
      tunnels.delete(tunnel);
      if (tunnels.size === 0 && backend !== undefined) {
        this.#byBackend.delete(backend);
        for (const resolve of this.#idleWaiters.get(backend) ?? []) resolve();
        this.#idleWaiters.delete(backend);
      }
    }
    this.#notifyIfEmpty();
  }

  /** The live tunnels to `backend`, as a snapshot safe to iterate while they end. */
  tunnelsOf(backend: object): RegisteredTunnel[] {
    return [...(this.#byBackend.get(backend) ?? [])];
  }

  /** Resolves once `backend` has no live tunnel (at once if it has none now). */
  whenIdle(backend: object): Promise<void> {
    if (!this.#byBackend.has(backend)) return Promise.resolve();
    return new Promise((resolve) => {
      let waiters = this.#idleWaiters.get(backend);
      if (waiters === undefined) {
        waiters = new Set();
        this.#idleWaiters.set(backend, waiters);
      }
      waiters.add(resolve);
    });
  }

  /** Tracks a proxied HTTP request until its response closes. */
  addRequest(res: ServerResponse): void {
    this.#requests.add(res);
    res.once('close', () => {
      this.#requests.delete(res);
      this.#notifyIfEmpty();
    });
  }

  get requestCount(): number {
    return this.#requests.size;
  }

  get pendingCount(): number {
    return this.#pending.size;
  }

  get tunnelCount(): number {
    return this.#tunnels.size;
  }

  /** Live tunnels, as a snapshot safe to iterate while tunnels end. */
  tunnels(): RegisteredTunnel[] {
    return [...this.#tunnels.keys()];
  }

  /** Destroys every pending handshake socket, every tunnel and every request in flight. */
  destroyAll(): void {
    for (const socket of this.#pending) socket.destroy();
    for (const res of this.#requests) res.destroy();
    for (const tunnel of this.#tunnels.keys()) tunnel.destroy();
  }

  get empty(): boolean {
    return this.#pending.size === 0 && this.#tunnels.size === 0 && this.#requests.size === 0;
  }

  /** Resolves once no handshake, tunnel or request is left. */
  whenEmpty(): Promise<void> {
    if (this.empty) return Promise.resolve();
    return new Promise((resolve) => this.#emptyWaiters.add(resolve));
  }

  #notifyIfEmpty(): void {
    if (!this.empty) return;
    for (const resolve of this.#emptyWaiters) resolve();
    this.#emptyWaiters.clear();
  }
}
