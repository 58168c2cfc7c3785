/**
 * Draining a backend that left its pool: it already gets no new connections (the pool took it out
 * of its balancers); its open tunnels may go on for the drain timeout, then those still open are
 * closed with `BACKEND_REMOVED` (1001 to both sides), at once or spread over a window. `done` is called once the last one has ended,
 * and a drain is called off when the backend comes back first.
 */
import type { Clock } from '../clock.ts';
import type { ErrorCode } from '../errors/codes.ts';
import type { Backend } from './backend.ts';

/** The live tunnels of a backend (the connection registry). */
export interface BackendTunnels {
  tunnelsOf(backend: object): readonly { close(code: ErrorCode): void }[];
  /** Resolves once `backend` has no live tunnel. */
  whenIdle(backend: object): Promise<void>;
}

export class BackendDrain {
  readonly #tunnels: BackendTunnels;
  readonly #clock: Clock;
  /** Drains under way, with what calls each off. */
  readonly #draining = new Map<Backend, () => void>();

  constructor(tunnels: BackendTunnels, clock: Clock) {
    this.#tunnels = tunnels;
    this.#clock = clock;
  }

  /**
   * Drains `backend` for up to `timeoutMs`; `done` once it has no tunnel left (unless called off).
   * The deadline stands even then: an upgrade that was already connecting when the backend left
   * opens its tunnel late, and is closed at the deadline like the others.
   */
  start(backend: Backend, timeoutMs: number, done: () => void, spreadMs = 0): void {
    this.cancel(backend);
    let live = true;
    const cancels: (() => void)[] = [];
    cancels.push(
      this.#clock.after(timeoutMs, () => {
        if (spreadMs === 0) this.#draining.delete(backend);
        else cancels.push(this.#clock.after(spreadMs, () => this.#draining.delete(backend)));
        for (const tunnel of this.#tunnels.tunnelsOf(backend)) {
          // Spread over `spreadMs`, so that the clients do not all reconnect in the same instant.
          if (spreadMs === 0) tunnel.close('BACKEND_REMOVED');
          else
            cancels.push(this.#clock.after(Math.random() * spreadMs, () => tunnel.close('BACKEND_REMOVED')));
        }
      }),
    );
    this.#draining.set(backend, () => {
      live = false;
      for (const cancel of cancels) cancel();
    });
    void this.#tunnels.whenIdle(backend).then(() => {
      if (live) done();
    });
  }

  /** The backend of pool `poolName` at `id` being drained, if one is (a reload adding it back). */
  find(poolName: string, id: string): Backend | undefined {
    for (const backend of this.#draining.keys()) {
      if (backend.poolName === poolName && backend.id === id) return backend;
    }
    return undefined;
  }

  has(backend: Backend): boolean {
    return this.#draining.has(backend);
  }

  /** Calls off `backend`'s drain (it is back in the pool); its tunnels stay as they are. */
  cancel(backend: Backend): void {
    this.#draining.get(backend)?.();
    this.#draining.delete(backend);
  }

  /** Calls off every drain (the pool is closing: the gateway's own shutdown takes over). */
  stop(): void {
    for (const cancel of this.#draining.values()) cancel();
    this.#draining.clear();
  }
}
