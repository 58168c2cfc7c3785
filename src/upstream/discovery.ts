/**
 * DNS discovery of a pool's backends: each entry listed with `discover` is looked up on the pool's
 * interval (on the injected clock, one lookup of a name at a time) and the addresses found are
 * handed to `found`; a lookup that fails, times out or finds nothing keeps the last set (a pool
 * never empties itself on a DNS answer) and is reported to `failed`. `dns` entries take the name's
 * A and AAAA records on the URL's port; `srv` entries take the SRV records of the lowest priority,
 * each target's addresses on the record's port. The resolver is injected: by default a c-ares
 * resolver on the system's name servers.
 */
import { Resolver as DnsResolver } from 'node:dns/promises';
import { isIP } from 'node:net';
import type { Clock } from '../clock.ts';
import type { BackendEntry } from '../config/backend-schema.ts';
import type { FoundAddress } from './backend.ts';

/** What discovery asks of DNS (a subset of `node:dns/promises` Resolver). */
export interface Resolver {
  resolve4(hostname: string): Promise<string[]>;
  resolve6(hostname: string): Promise<string[]>;
  resolveSrv(hostname: string): Promise<{ name: string; port: number; priority: number; weight: number }[]>;
}

/** A resolver on the system's name servers, each query tried twice within `timeoutMs`. */
export function systemResolver(timeoutMs: number): Resolver {
  return new DnsResolver({ timeout: Math.max(1, Math.floor(timeoutMs / 2)), tries: 2 });
}

export interface LookupEvents {
  /** The addresses `entry` has now (never empty). */
  readonly found: (entry: BackendEntry, addresses: readonly FoundAddress[]) => void;
  /** A lookup of `entry` failed; its last set stays. */
  readonly failed: (entry: BackendEntry, reason: string) => void;
}

export interface DiscoverySettings {
  readonly interval: number;
  readonly timeout: number;
}

/** An error's DNS code (ENOTFOUND, ENODATA, ETIMEOUT...), or its message. */
function reasonOf(error: unknown): string {
  if (error instanceof Error) return (error as NodeJS.ErrnoException).code ?? error.message;
  return String(error);
}

/** The A and AAAA addresses of `name`: whichever family answers; an error only if neither does. */
async function addressesOf(resolver: Resolver, name: string): Promise<string[]> {
  if (isIP(name) !== 0) return [name];
  const [four, six] = await Promise.allSettled([resolver.resolve4(name), resolver.resolve6(name)]);
  const found = [
    ...(four.status === 'fulfilled' ? four.value : []),
    ...(six.status === 'fulfilled' ? six.value : []),
  ];
  if (found.length > 0 || four.status === 'fulfilled' || six.status === 'fulfilled') return found;
  throw four.reason;
}

/** What one lookup of `entry` finds, in a stable order. */
export async function lookUp(resolver: Resolver, entry: BackendEntry): Promise<FoundAddress[]> {
  const url = new URL(entry.url);
  const name = url.hostname;
  let found: FoundAddress[];
  if (entry.discover === 'srv') {
    const records = await resolver.resolveSrv(name);
    const best = Math.min(...records.map((record) => record.priority));
    const chosen = records.filter((record) => record.priority === best);
    const targets = await Promise.all(
      chosen.map(async (record) =>
        (await addressesOf(resolver, record.name)).map((address) => ({ address, port: record.port })),
      ),
    );
    found = targets.flat();
  } else {
    const port = url.port ? Number(url.port) : url.protocol === 'https:' ? 443 : 80;
    found = (await addressesOf(resolver, name)).map((address) => ({ address, port }));
  }
  const unique = new Map(found.map((one) => [`${one.address}|${one.port}`, one]));
  return [...unique.values()].sort((a, b) =>
    a.address === b.address ? a.port - b.port : a.address < b.address ? -1 : 1,
  );
}

/** Looks up every discovered entry of one pool, each on its own timer, until stopped. */
export class Discovery {
  readonly #entries: readonly BackendEntry[];
  readonly #settings: DiscoverySettings;
  readonly #resolver: Resolver;
  readonly #clock: Clock;
  readonly #events: LookupEvents;
  readonly #timers = new Set<() => void>();
  #running = false;

  constructor(
    entries: readonly BackendEntry[],
    settings: DiscoverySettings,
    deps: { resolver: Resolver; clock: Clock; events: LookupEvents },
  ) {
    this.#entries = entries;
    this.#settings = settings;
    this.#resolver = deps.resolver;
    this.#clock = deps.clock;
    this.#events = deps.events;
  }

  /** Starts looking up; resolves once every entry's first lookup has ended (found or failed). */
  async start(): Promise<void> {
    if (this.#running) return;
    this.#running = true;
    await Promise.all(this.#entries.map((entry) => this.#round(entry)));
  }

  stop(): void {
    this.#running = false;
    for (const cancel of this.#timers) cancel();
    this.#timers.clear();
  }

  /** One lookup of `entry`, bounded by the timeout, then the next one after the interval. */
  async #round(entry: BackendEntry): Promise<void> {
    let cancelTimeout: (() => void) | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      cancelTimeout = this.#clock.after(this.#settings.timeout, () =>
        reject(Object.assign(new Error('lookup timed out'), { code: 'ETIMEOUT' })),
      );
    });
    try {
      const found = await Promise.race([lookUp(this.#resolver, entry), timedOut]);
      if (!this.#running) return;
      if (found.length === 0) this.#events.failed(entry, 'no address found');
      else this.#events.found(entry, found);
    } catch (error) {
      if (this.#running) this.#events.failed(entry, reasonOf(error));
    } finally {
      cancelTimeout?.();
    }
    if (!this.#running) return;
    const cancel = this.#clock.after(this.#settings.interval, () => {
      this.#timers.delete(cancel);
      void this.#round(entry);
    });
    this.#timers.add(cancel);
  }
}
