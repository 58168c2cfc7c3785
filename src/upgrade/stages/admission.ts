/**
 * Admission, the first stage of every upgrade (cheapest, and before a flood costs anything else):
 * a cap on WebSocket connections open at once from everyone (503, Retry-After), counted in this
 * process because it protects this process, then the per-client limits of the limit store: a cap
 * on connections open at once from one client address (429) and a token bucket on how fast one
 * address may ask (429, Retry-After). A slot is taken when the stage passes and given back when
 * the client's socket closes, whether the handshake failed or the tunnel ended.
 */

import type { Socket } from 'node:net';
import type { AdmissionSettings } from '../../config/admission-schema.ts';
import { holdWhileOpen, type LimitStore } from '../../limits/limit-store.ts';
import type { Rejection, UpgradeStage } from '../context.ts';

export class Admission {
  #settings: AdmissionSettings;
  readonly #store: LimitStore;
  #open = 0;

  constructor(settings: AdmissionSettings, store: LimitStore) {
    this.#settings = settings;
    this.#store = store;
  }

  /** The settings of a reloaded configuration. What is open stays counted against the new caps. */
  reconfigure(settings: AdmissionSettings): void {
    this.#settings = settings;
    this.#store.reconfigure(settings);
  }

  /** WebSocket connections holding a slot now. */
  get open(): number {
    return this.#open;
  }

  /** Client addresses remembered now. */
  get tracked(): number {
    return this.#store.trackedClients;
  }

  readonly stage: UpgradeStage = {
    name: 'admission',
    run: (ctx) => {
      const socket = ctx.socket;
      // A socket already closed (reset while its upgrade waited behind a pipelined request) would
      // never give a slot back.
      if (socket.closed) return { code: 'CLIENT_GONE', detail: 'before admission' };
      const { maxConnections, perClient } = this.#settings;
      if (maxConnections !== 'off' && this.#open >= maxConnections) return { code: 'GATEWAY_FULL' };
      // The gateway-wide slot is taken first, so upgrades waiting for the store count against it.
      this.#open++;
      if (perClient.maxConnections === 'off' && perClient.handshakeRate === 'off') {
        socket.on('close', this.#closed);
        return undefined;
      }
      const admitted = holdWhileOpen(
        this.#store.admitClient(ctx.forwarded.clientAddress),
        socket,
        'admission',
      );
      if (admitted instanceof Promise) return admitted.then((rejection) => this.#settle(rejection, socket));
      return this.#settle(admitted, socket);
    },
  };

  /** Keeps the gateway-wide slot until `socket` closes, or gives it back now if it was refused. */
  #settle(rejection: Rejection | undefined, socket: Socket): Rejection | undefined {
    if (rejection !== undefined) {
      this.#open--;
      return rejection;
    }
    socket.on('close', this.#closed);
    return undefined;
  }

  /** Shared by every socket, on 'close', which a socket emits once (`once` would wrap it per socket). */
  readonly #closed = (): void => {
    this.#open--;
  };
}
