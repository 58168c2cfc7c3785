/**
 * Admission, the first stage of every upgrade (cheapest, and before a flood costs anything else):
 * a cap on WebSocket connections open at once from everyone (503, Retry-After) and from one client
 * address (429), and a token bucket on how fast one address may ask (429, Retry-After). A slot is
 * taken when the stage passes and given back when the client's socket closes, whether the
 * handshake failed or the tunnel ended.
 *
 * What is remembered per address is bounded by `maxTrackedClients`: when it is reached, the
 * address that has had nothing open for the longest is forgotten (its bucket with it), in constant
 * time, so a flood of addresses cannot grow memory; only when every remembered address has a
 * connection open is a new one refused.
 */
import type { AdmissionSettings } from '../../config/admission-schema.ts';
import { TokenBucket } from '../../tunnel/limits.ts';
import type { Clock } from '../../tunnel/sweeper.ts';
import type { UpgradeStage } from '../context.ts';

interface ClientEntry {
  open: number;
  bucket: TokenBucket | undefined;
}

export class Admission {
  #settings: AdmissionSettings;
  readonly #clock: Clock;
  readonly #clients = new Map<string, ClientEntry>();
  /** The remembered addresses with nothing open, longest idle first: the ones to forget. */
  readonly #idle = new Map<string, ClientEntry>();
  #open = 0;

  constructor(settings: AdmissionSettings, clock: Clock) {
    this.#settings = settings;
    this.#clock = clock;
  }

  /**
   * The settings of a reloaded configuration. What is open stays counted against the new caps; a
   * changed handshake rate gives every remembered address a new, full bucket.
   */
  reconfigure(settings: AdmissionSettings): void {
    const rateChanged =
      JSON.stringify(settings.perClient.handshakeRate) !==
      JSON.stringify(this.#settings.perClient.handshakeRate);
    this.#settings = settings;
    if (!rateChanged) return;
    for (const entry of this.#clients.values()) entry.bucket = this.#bucket();
  }

  /** WebSocket connections holding a slot now. */
  get open(): number {
    return this.#open;
  }

  /** Client addresses remembered now. */
  get tracked(): number {
    return this.#clients.size;
  }

  readonly stage: UpgradeStage = {
    name: 'admission',
    run: (ctx) => {
      // A socket already closed (reset while its upgrade waited behind a pipelined request) would
      // never give a slot back.
      if (ctx.socket.closed) return { code: 'CLIENT_GONE', detail: 'before admission' };
      const { maxConnections, perClient } = this.#settings;
      if (maxConnections !== 'off' && this.#open >= maxConnections) return { code: 'GATEWAY_FULL' };
      const perClientOn = perClient.maxConnections !== 'off' || perClient.handshakeRate !== 'off';
      const address = ctx.forwarded.clientAddress;
      const entry = perClientOn ? this.#entry(address) : undefined;
      if (perClientOn && entry === undefined) {
        return { code: 'CLIENT_TRACKING_FULL', headers: [['Retry-After', '1']] };
      }
      if (entry && perClient.maxConnections !== 'off' && entry.open >= perClient.maxConnections) {
        return { code: 'CLIENT_CONNECTIONS_EXCEEDED', headers: [['Retry-After', '1']] };
      }
      if (entry?.bucket && !entry.bucket.tryTake(1, this.#clock.now())) {
        const seconds = Math.max(1, Math.ceil(entry.bucket.waitMs(1, this.#clock.now()) / 1000));
        return { code: 'HANDSHAKE_RATE_LIMITED', headers: [['Retry-After', String(seconds)]] };
      }
      this.#open++;
      if (entry) {
        entry.open++;
        this.#idle.delete(address);
      }
      ctx.socket.once('close', () => {
        this.#open--;
        if (entry === undefined) return;
        entry.open--;
        // Idle again: the last to be forgotten among the idle (if it is still remembered).
        if (entry.open === 0 && this.#clients.get(address) === entry) this.#idle.set(address, entry);
      });
      return undefined;
    },
  };

  /** A full bucket for one address, when handshakes are rate-limited. */
  #bucket(): TokenBucket | undefined {
    const rate = this.#settings.perClient.handshakeRate;
    return rate === 'off' ? undefined : new TokenBucket({ ...rate, action: 'close' }, this.#clock.now());
  }

  /** The entry of `address`, or undefined when every remembered address has a connection open. */
  #entry(address: string): ClientEntry | undefined {
    const known = this.#clients.get(address);
    if (known) return known;
    if (this.#clients.size >= this.#settings.maxTrackedClients) {
      const oldest = this.#idle.keys().next();
      if (oldest.done) return undefined;
      this.#idle.delete(oldest.value);
      this.#clients.delete(oldest.value);
    }
    const entry: ClientEntry = { open: 0, bucket: this.#bucket() };
    this.#clients.set(address, entry);
    this.#idle.set(address, entry);
    return entry;
  }
}
