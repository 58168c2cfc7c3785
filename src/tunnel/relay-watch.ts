/**
 * What the liveness checks (liveness.ts) see of a tunnel, read off its two relays: the data and
 * control frames relayed, whether a sender is throttled, what each side was heard sending, and
 * the gateway's pings, written toward a side at its next frame boundary. Made only for a tunnel
 * whose policy has liveness checks, one object with methods rather than a closure per question.
 */
import { encodePingFrame, type Liveness, type Watched } from './liveness.ts';
import type { Relay } from './relay.ts';
import { other, type Side } from './sides.ts';

/** The sweeper's clock, on which ping round trips are timed. */
type Now = { now(): number };

export class RelayWatch implements Watched {
  /** The relay of the stream coming FROM each side. */
  readonly #relays: Record<Side, Relay>;
  readonly #clock: Now;
  /** Told when a gateway ping has been written. */
  readonly #liveness: Liveness;

  constructor(relays: Record<Side, Relay>, clock: Now, liveness: Liveness) {
    this.#relays = relays;
    this.#clock = clock;
    this.#liveness = liveness;
  }

  activity(withPings: boolean): number {
    const { client, backend } = this.#relays;
    const data = client.messages + backend.messages + client.dataBytes + backend.dataBytes;
    return withPings ? data + client.controls + backend.controls : data;
  }

  throttled(): boolean {
    return this.#relays.client.throttled || this.#relays.backend.throttled;
  }

  heard(side: Side): number {
    return this.#relays[side].bytesRead;
  }

  deaf(side: Side): boolean {
    return this.#relays[side].paused;
  }

  owesPong(side: Side): boolean {
    return this.#relays[side].awaitingPong;
  }

  ping(side: Side, payload: Buffer): void {
    this.#relays[other(side)].ping(encodePingFrame(payload, side === 'backend'), () => {
      const now = this.#clock.now();
      const source = this.#relays[side];
      const alreadyOwed = source.awaitingPong;
      source.expectPong(payload, now);
      this.#liveness.pingWritten(side, now, source.bytesRead, alreadyOwed);
    });
  }
}
