/**
 * The leases one gateway holds in Redis, by key: what it refreshes every third of the lease time
 * and gives back as connections close. Only keys with a lease held are kept, so what is kept is
 * bounded by the open connections. Leases given back while Redis could not be told are kept apart
 * (at most MAX_UNREMOVED, the oldest dropped first: they expire first anyway) until it is back.
 */

/** Given-back leases remembered for removal while Redis is away, at most. */
const MAX_UNREMOVED = 100_000;

export class LeaseBook {
  readonly #keys = new Map<string, Set<string>>();
  #size = 0;
  /** Given back, not yet removed from Redis: member → key and when it was given back. */
  readonly #unremoved = new Map<string, { key: string; releasedAt: number }>();

  /** Leases held now. */
  get size(): number {
    return this.#size;
  }

  add(key: string, member: string): void {
    let members = this.#keys.get(key);
    if (members === undefined) {
      members = new Set();
      this.#keys.set(key, members);
    }
    members.add(member);
    this.#size++;
  }

  has(key: string, member: string): boolean {
    return this.#keys.get(key)?.has(member) ?? false;
  }

  /** Takes `member` out of `key`; false when it was not held. */
  remove(key: string, member: string): boolean {
    const members = this.#keys.get(key);
    if (members === undefined || !members.delete(member)) return false;
    this.#size--;
    if (members.size === 0) this.#keys.delete(key);
    return true;
  }

  /** Every lease held, as key and member. */
  *held(): Generator<[string, string]> {
    for (const [key, members] of this.#keys) for (const member of members) yield [key, member];
  }

  /** A lease given back that Redis could not be told of: to be removed when it is back. */
  unremoved(key: string, member: string, releasedAt: number): void {
    if (this.#unremoved.size >= MAX_UNREMOVED) {
      const oldest = this.#unremoved.keys().next();
      if (!oldest.done) this.#unremoved.delete(oldest.value);
    }
    this.#unremoved.set(member, { key, releasedAt });
  }

  /** The leases to remove now, as key and member: those given back since `since` (older ones have expired). */
  takeUnremoved(since: number): [string, string][] {
    const waiting = [...this.#unremoved];
    this.#unremoved.clear();
    return waiting.flatMap(([member, { key, releasedAt }]) =>
      releasedAt > since ? [[key, member] as [string, string]] : [],
    );
  }
}

/**
 * `leases` (key and member) grouped by key into batches of at most `limit` members, for the
 * scripts that take many keys at once.
 */
export function* leaseBatches(
  leases: Iterable<readonly [string, string]>,
  limit: number,
): Generator<[string, string[]][]> {
  let batch = new Map<string, string[]>();
  let size = 0;
  for (const [key, member] of leases) {
    const members = batch.get(key);
    if (members) members.push(member);
    else batch.set(key, [member]);
    if (++size === limit) {
      yield [...batch];
      batch = new Map();
      size = 0;
    }
  }
  if (size > 0) yield [...batch];
}
