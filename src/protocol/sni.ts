/**
 * Which certificate answers a TLS client's server name (SNI): an exact name first, then a
 * wildcard, which stands for exactly one label (`*.example.com` matches `a.example.com`, never
 * `example.com` nor `a.b.example.com`), as certificates themselves match (RFC 6125 §6.4.3).
 * Names compare without case and without a final dot. No match: the listener's default
 * certificate answers. When two entries claim a name, the first one listed keeps it.
 */

/** A name an entry may be chosen by: a host name, or `*.` and a host name. */
export const SNI_NAME = /^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/;

/** The name as compared: lower case, without a trailing dot. */
export function normalizeServerName(name: string): string {
  const lower = name.toLowerCase();
  return lower.endsWith('.') ? lower.slice(0, -1) : lower;
}

export interface SniEntry<T> {
  readonly names: readonly string[];
  readonly value: T;
}

export class SniTable<T> {
  readonly #exact = new Map<string, T>();
  /** Wildcard entries by the domain under the `*.` (`example.com` for `*.example.com`). */
  readonly #wildcard = new Map<string, T>();

  constructor(entries: readonly SniEntry<T>[]) {
    for (const entry of entries) {
      for (const raw of entry.names) {
        const name = normalizeServerName(raw);
        const [map, key] = name.startsWith('*.') ? [this.#wildcard, name.slice(2)] : [this.#exact, name];
        if (!map.has(key)) map.set(key, entry.value);
      }
    }
  }

  /** The entry for a client's server name, or undefined (the default certificate answers). */
  lookup(serverName: string): T | undefined {
    const name = normalizeServerName(serverName);
    const exact = this.#exact.get(name);
    if (exact !== undefined) return exact;
    const dot = name.indexOf('.');
    return dot > 0 ? this.#wildcard.get(name.slice(dot + 1)) : undefined;
  }
}
