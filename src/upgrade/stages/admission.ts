/**
 * Admission, the first stage of every upgrade (cheapest, and before a flood costs anything else):
 * a cap on WebSocket connections open at once from everyone (503, Retry-After) and from one client
 * address (429), and a token bucket on how fast one address may ask (429, Retry-After). A slot is
 * taken when the stage passes and given back when the client's socket closes, whether the
 * handshake failed or the tunnel ended.
 *
 * What is remembered per address is bounded by `maxTrackedClients`: an address with nothing open
 * and a full bucket is forgotten first (oldest first, a few per new address), so a flood of
 * addresses cannot grow memory; when every remembered address is busy, a new one is refused.
 */
import type { AdmissionSettings } from '../../config/admission-schema.ts';
import { TokenBucket } from '../../tunnel/limits.ts';
import type { Clock } from '../../tunnel/sweeper.ts';
import type { UpgradeStage } from '../context.ts';

interface ClientEntry {
  open: number;
  readonly bucket: TokenBucket | undefined;
}

/** Entries looked at for forgetting, per new address: bounded work per handshake. */
const EVICTION_SCAN = 16;

export class Admission {
  readonly #settings: AdmissionSettings;
  readonly #clock: Clock;
  readonly #clients = new Map<string, ClientEntry>();
  #open = 0;

  constructor(settings: AdmissionSettings, clock: Clock) {
    this.#settings = settings;
    this.#clock = clock;
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
      const { maxConnections, perClient } = this.#settings;
      if (maxConnections !== 'off' && this.#open >= maxConnections) return { code: 'GATEWAY_FULL' };
      const perClientOn = perClient.maxConnections !== 'off' || perClient.handshakeRate !== 'off';
      const address = ctx.forwarded.clientAddress;
      const entry = perClientOn ? this.#entry(address) : undefined;
      if (perClientOn && entry === undefined) return { code: 'CLIENT_TRACKING_FULL' };
      if (entry?.bucket && !entry.bucket.tryTake(1, this.#clock.now())) {
        const seconds = Math.max(1, Math.ceil(entry.bucket.waitMs(1, this.#clock.now()) / 1000));
        return { code: 'HANDSHAKE_RATE_LIMITED', headers: [['Retry-After', String(seconds)]] };
      }
      if (entry && perClient.maxConnections !== 'off' && entry.open >= perClient.maxConnections) {
        return { code: 'CLIENT_CONNECTIONS_EXCEEDED', headers: [['Retry-After', '1']] };
      }
      this.#open++;
      if (entry) entry.open++;
      ctx.socket.once('close', () => {
        this.#open--;
        if (entry) entry.open--;
      });
      return undefined;
    },
  };

  /** The entry of `address` (moved to the newest end), or undefined when none can be made. */
  #entry(address: string): ClientEntry | undefined {
    const known = this.#clients.get(address);
    if (known) {
      this.#clients.delete(address);
      this.#clients.set(address, known);
      return known;
    }
    if (this.#clients.size >= this.#settings.maxTrackedClients) this.#forgetIdle();
    if (this.#clients.size >= this.#settings.maxTrackedClients) return undefined;
    const rate = this.#settings.perClient.handshakeRate;
    const entry: ClientEntry = {
      open: 0,
      bucket: rate === 'off' ? undefined : new TokenBucket({ ...rate, action: 'close' }, this.#clock.now()),
    };
    this.#clients.set(address, entry);
    return entry;
  }

  /** Forgets the oldest addresses with nothing open and a full bucket, a few at a time. */
  #forgetIdle(): void {
    const rate = this.#settings.perClient.handshakeRate;
    const now = this.#clock.now();
    let looked = 0;
    for (const [address, entry] of this.#clients) {
      if (looked++ >= EVICTION_SCAN) break;
      const rested = entry.bucket === undefined || rate === 'off' || entry.bucket.tokens(now) >= rate.burst;
      if (entry.open === 0 && rested) this.#clients.delete(address);
    }
  }
}
