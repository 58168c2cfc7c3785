/**
 * The cap on WebSocket connections open at once for one token subject (`iss` and `sub`), across
 * every route of the gateway: a stage of the routes that ask for tokens, after the token check.
 * A slot is taken when the stage passes and given back when the client's socket closes. Only
 * subjects with a connection open are remembered, so what is kept is bounded by the connections.
 */
import type { RequestStage } from './request-stage.ts';

export class SubjectConnections {
  #max: number;
  readonly #open = new Map<string, number>();

  constructor(max: number) {
    this.#max = max;
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
    return this.#open.size;
  }

  readonly stage: RequestStage = {
    name: 'subject-limit',
    appliesTo: 'upgrade',
    run: (ctx) => {
      const key = ctx.auth.token?.subjectKey;
      if (key === undefined) return undefined;
      const socket = ctx.req.socket;
      if (socket.closed) return { code: 'CLIENT_GONE', detail: 'before the subject limit' };
      const open = this.#open.get(key) ?? 0;
      if (open >= this.#max) return { code: 'SUBJECT_CONNECTIONS_EXCEEDED', headers: [['Retry-After', '1']] };
      this.#open.set(key, open + 1);
      socket.once('close', () => {
        const left = (this.#open.get(key) ?? 1) - 1;
        if (left > 0) this.#open.set(key, left);
        else this.#open.delete(key);
      });
      return undefined;
    },
  };
}
