/**
 * The cap on WebSocket connections open at once for one token subject (`iss` and `sub`), across
 * every route of the gateway: a stage of the routes that ask for tokens, after the token check.
 * The count is the limit store's (this process's, or the fleet's on Redis); a slot is taken when
 * the stage passes and given back when the client's socket closes.
 */
import { holdWhileOpen, type LimitStore } from '../limits/limit-store.ts';
import type { RequestStage } from './request-stage.ts';

export class SubjectConnections {
  #max: number;
  readonly #store: LimitStore;

  constructor(max: number, store: LimitStore) {
    this.#max = max;
    this.#store = store;
  }

  /**
   * A new cap from a reloaded configuration: it applies to the next connection; those open stay
   * counted (one over a lowered cap stays open and the subject opens no more until it is under).
   */
  set max(max: number) {
    this.#max = max;
  }

  /** Subjects with a connection open now. */
  get tracked(): number {
    return this.#store.trackedSubjects;
  }

  readonly stage: RequestStage = {
    name: 'subject-limit',
    appliesTo: 'upgrade',
    run: (ctx) => {
      const key = ctx.auth.token?.subjectKey;
      if (key === undefined) return undefined;
      const socket = ctx.req.socket;
      if (socket.closed) return { code: 'CLIENT_GONE', detail: 'before the subject limit' };
      return holdWhileOpen(this.#store.holdSubject(key, this.#max), socket, 'the subject limit');
    },
  };
}
