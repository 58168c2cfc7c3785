/**
 * The default limit store: counts kept in this process (per worker, with `workers`). Per client
 * address, a count of open connections and a token bucket for handshakes; per token subject, a
 * count of open connections.
 *
 * What is remembered per address is bounded by `maxTrackedClients`: when it is reached, the
 * address that has had nothing open for the longest is forgotten (its bucket with it), in constant
 * time, so a flood of addresses cannot grow memory; only when every remembered address has a
 * connection open is a new one refused. Only subjects with a connection open are remembered, so
 * what is kept for them is bounded by the connections.
 */
import type { AdmissionSettings } from '../config/admission-schema.ts';
import { TokenBucket } from '../tunnel/limits.ts';
import type { Clock } from '../tunnel/sweeper.ts';
import type { Lease, LimitStore, LimitStoreState, Verdict } from './limit-store.ts';

/** What is remembered of one client address; it is also the lease of each of its connections. */
class ClientEntry implements Lease {
  open = 0;
  readonly address: string;
  bucket: TokenBucket | undefined;
  readonly #store: MemoryLimits;

  constructor(address: string, bucket: TokenBucket | undefined, store: MemoryLimits) {
    this.address = address;
    this.bucket = bucket;
    this.#store = store;
  }

  release(): void {
    this.open--;
    if (this.open === 0) this.#store.becameIdle(this);
  }
}

export class MemoryLimits implements LimitStore {
  #settings: AdmissionSettings;
  readonly #clock: Clock;
  readonly #clients = new Map<string, ClientEntry>();
  /** The remembered addresses with nothing open, longest idle first: the ones to forget. */
  readonly #idle = new Map<string, ClientEntry>();
  readonly #subjects = new Map<string, number>();

  constructor(settings: AdmissionSettings, clock: Clock) {
    this.#settings = settings;
    this.#clock = clock;
  }

  /** A changed handshake rate gives every remembered address a new, full bucket. */
  reconfigure(settings: AdmissionSettings): void {
    const rateChanged =
      JSON.stringify(settings.perClient.handshakeRate) !==
      JSON.stringify(this.#settings.perClient.handshakeRate);
    this.#settings = settings;
    if (!rateChanged) return;
    for (const entry of this.#clients.values()) entry.bucket = this.#bucket();
  }

  get trackedClients(): number {
    return this.#clients.size;
  }

  get trackedSubjects(): number {
    return this.#subjects.size;
  }

  admitClient(address: string): Verdict {
    const { maxConnections } = this.#settings.perClient;
    const entry = this.#entry(address);
    if (entry === undefined) {
      return { refused: { code: 'CLIENT_TRACKING_FULL', headers: [['Retry-After', '1']] } };
    }
    if (maxConnections !== 'off' && entry.open >= maxConnections) {
      return { refused: { code: 'CLIENT_CONNECTIONS_EXCEEDED', headers: [['Retry-After', '1']] } };
    }
    if (entry.bucket && !entry.bucket.tryTake(1, this.#clock.now())) {
      const seconds = Math.max(1, Math.ceil(entry.bucket.waitMs(1, this.#clock.now()) / 1000));
      return { refused: { code: 'HANDSHAKE_RATE_LIMITED', headers: [['Retry-After', String(seconds)]] } };
    }
    entry.open++;
    this.#idle.delete(address);
    return { lease: entry };
  }

  /**
   * Gives back the handshake token `address` spent on an upgrade that was refused after all (by
   * the fleet's count, when this store checks for the Redis store).
   */
  refundHandshake(address: string): void {
    this.#clients.get(address)?.bucket?.refund(1);
  }

  holdSubject(subject: string, max: number): Verdict {
    const open = this.#subjects.get(subject) ?? 0;
    if (open >= max)
      return { refused: { code: 'SUBJECT_CONNECTIONS_EXCEEDED', headers: [['Retry-After', '1']] } };
    this.#subjects.set(subject, open + 1);
    return {
      lease: {
        release: () => {
          const left = (this.#subjects.get(subject) ?? 1) - 1;
          if (left > 0) this.#subjects.set(subject, left);
          else this.#subjects.delete(subject);
        },
      },
    };
  }

  /** `entry` has nothing open again: the last to be forgotten among the idle (if still remembered). */
  becameIdle(entry: ClientEntry): void {
    if (this.#clients.get(entry.address) === entry) this.#idle.set(entry.address, entry);
  }

  state(): LimitStoreState {
    return { store: 'memory', up: true, leases: 0 };
  }

  async start(): Promise<void> {}

  async close(): Promise<void> {}

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
    const entry = new ClientEntry(address, this.#bucket(), this);
    this.#clients.set(address, entry);
    this.#idle.set(address, entry);
    return entry;
  }
}
