/**
 * DNS discovery of a pool's backends: each entry listed with `discover` is looked up on the pool's
 * interval (on the injected clock, one lookup of a name at a time) and the addresses found are
 * handed to `found`; a lookup that fails, times out or finds nothing keeps the last set (a pool
 * never empties itself on a DNS answer) and is reported to `failed`. `dns` entries take the name's
 * A and AAAA records on the URL's port; `srv` entries take the SRV records of the lowest priority,
 * each target's addresses on the record's port. Only IP addresses and ports 1–65535 are kept, at
 * most MAX_ADDRESSES of them (the lowest, so every replica keeps the same ones). The resolver is
 * injected: by default the system's (`systemResolver`).
 */
import { Resolver as DnsResolver, lookup } from 'node:dns/promises';
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

/** The most addresses one entry yields; an answer with more is cut to its lowest ones. */
export const MAX_ADDRESSES = 1024;

/**
 * The system's resolver: addresses as the operating system looks them up (getaddrinfo: the search
 * domains of /etc/resolv.conf, so a Kubernetes short name works, and /etc/hosts), SRV records from
 * the name servers of /etc/resolv.conf (c-ares, each query tried twice within `timeoutMs`; no
 * search domains, so SRV names are written in full).
 */
export function systemResolver(timeoutMs: number): Resolver {
  const servers = new DnsResolver({ timeout: Math.max(1, Math.floor(timeoutMs / 2)), tries: 2 });
  const family = (version: 4 | 6) => async (hostname: string) =>
    (await lookup(hostname, { all: true, family: version })).map((entry) => entry.address);
  return {
    resolve4: family(4),
    resolve6: family(6),
    resolveSrv: (hostname) => servers.resolveSrv(hostname),
  };
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

/** What a settled query answered, as a list (nothing for a failure or an answer that is not one). */
function answers<T>(settled: PromiseSettledResult<T[]>): T[] {
  return settled.status === 'fulfilled' && Array.isArray(settled.value) ? settled.value : [];
}

/** An address and port a connection can go to. */
function usable(found: FoundAddress): boolean {
  return (
    typeof found.address === 'string' &&
    isIP(found.address) !== 0 &&
    Number.isInteger(found.port) &&
    found.port >= 1 &&
    found.port <= 65_535
  );
}

/** The A and AAAA addresses of `name`: whichever family answers; an error only if neither does. */
async function addressesOf(resolver: Resolver, name: string): Promise<string[]> {
  if (isIP(name) !== 0) return [name];
  const [four, six] = await Promise.allSettled([resolver.resolve4(name), resolver.resolve6(name)]);
  const found = [...answers(four), ...answers(six)];
  if (found.length > 0 || four.status === 'fulfilled' || six.status === 'fulfilled') return found;
  throw four.status === 'rejected' ? four.reason : new Error('no answer');
}

/** What one lookup of `entry` finds, in a stable order. */
export async function lookUp(resolver: Resolver, entry: BackendEntry): Promise<FoundAddress[]> {
  const url = new URL(entry.url);
  const name = url.hostname;
  let found: FoundAddress[];
  if (entry.discover === 'srv') {
    const answer = await resolver.resolveSrv(name);
    const records = Array.isArray(answer) ? answer.filter((record) => typeof record?.name === 'string') : [];
    const best = Math.min(...records.map((record) => record.priority));
    const chosen = records.filter((record) => record.priority === best);
    // A target that does not resolve is left out; the others still count.
    const targets = await Promise.allSettled(
      chosen.map(async (record) =>
        (await addressesOf(resolver, record.name)).map((address) => ({ address, port: record.port })),
      ),
    );
    found = targets.flatMap((target) => (target.status === 'fulfilled' ? target.value : []));
  } else {
    const port = url.port ? Number(url.port) : url.protocol === 'https:' ? 443 : 80;
    found = (await addressesOf(resolver, name)).map((address) => ({ address, port }));
  }
  const unique = new Map(found.filter(usable).map((one) => [`${one.address}|${one.port}`, one]));
  return [...unique.values()]
    .sort((a, b) => (a.address === b.address ? a.port - b.port : a.address < b.address ? -1 : 1))
    .slice(0, MAX_ADDRESSES);
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
