/**
 * Consistent hashing on a sticky key: weighted rendezvous hashing (highest random weight). Every
 * backend gets a score from the key and its own label, `weight / -ln(u)` with `u` the hash in
 * (0, 1), and the backends are tried by score. It needs no shared state: every gateway replica
 * with the same backends ranks them the same way for a key. Removing a backend moves only the keys
 * it ranked first (each to its own next choice), and each backend ranks first for its weight's
 * share of keys.
 *
 * With a load factor `c`, no backend takes more than `ceil(c × (open + 1) × weight / total
 * weight)` connections (consistent hashing with bounded loads): a key whose first choice is full
 * goes to its next choice, so a hot set of keys cannot pile onto one backend.
 */
import type { Balancer, Weighted } from './balancer.ts';

/** What hashing needs of a backend: its label (the same on every replica) and its load. */
export interface Hashed extends Weighted {
  readonly id: string;
  readonly activeTunnels: number;
}

/** FNV-1a over the UTF-16 code units of `text`, from `seed`. */
function fnv1a(text: string, seed: number): number {
  let hash = seed >>> 0;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

/** A 32-bit finalizer (murmur3's fmix32): every input bit moves every output bit. */
function mix(value: number): number {
  let h = value >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** `u` in (0, 1) for a key and a backend, from two 32-bit hashes (52 bits used). */
function unit(keyHash: readonly [number, number], backendHash: readonly [number, number]): number {
  const high = mix(keyHash[0] ^ backendHash[0]) >>> 6; // 26 bits
  const low = mix(keyHash[1] ^ backendHash[1] ^ high) >>> 6; // 26 bits
  return (high * 2 ** 26 + low + 0.5) / 2 ** 52;
}

function hashPair(text: string): [number, number] {
  return [fnv1a(text, 0x811c9dc5), fnv1a(text, 0x9747b28c)];
}

export class RendezvousBalancer<T extends Hashed> implements Balancer<T> {
  readonly #backends: readonly { readonly backend: T; readonly hash: readonly [number, number] }[];
  readonly #loadFactor: number | undefined;

  /** `loadFactor` above 1 bounds each backend's share of open connections; undefined: no bound. */
  constructor(backends: readonly T[], loadFactor: number | undefined) {
    if (backends.length === 0) throw new RangeError('a balancer needs at least one backend');
    this.#backends = backends.map((backend) => ({ backend, hash: hashPair(backend.id) }));
    this.#loadFactor = loadFactor;
  }

  /** Every backend ranked for `key`, highest score first (the same order on every replica). */
  ranked(key: string): T[] {
    const keyHash = hashPair(key);
    return this.#backends
      .map(({ backend, hash }) => ({ backend, score: backend.weight / -Math.log(unit(keyHash, hash)) }))
      .sort((a, b) => b.score - a.score)
      .map(({ backend }) => backend);
  }

  candidates(key: string | undefined): T[] {
    const ranked = this.ranked(key ?? '');
    const factor = this.#loadFactor;
    if (factor === undefined) return ranked;
    const open = ranked.reduce((sum, backend) => sum + backend.activeTunnels, 0);
    // Weights are read on each call: they change while a backend warms up.
    const total = ranked.reduce((sum, backend) => sum + backend.weight, 0);
    const fits = (backend: T): boolean =>
      backend.activeTunnels < Math.ceil((factor * (open + 1) * backend.weight) / total);
    const first = ranked.findIndex(fits);
    if (first <= 0) return ranked;
    const chosen = ranked[first] as T;
    return [chosen, ...ranked.filter((backend) => backend !== chosen)];
  }
}
