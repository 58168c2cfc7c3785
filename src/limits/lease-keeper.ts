/**
 * The leases this gateway holds in Redis, kept true: every third of `leaseTtl` they are refreshed
 * (a Redis that restarted empty, or lost them in an outage, gets them back), and a lease given back
 * is taken out of Redis. Both go in batches, one script for up to BATCH leases and one batch at a
 * time, so that neither a drain closing thousands of connections at once nor tens of thousands of
 * leases to refresh can fill the connection's command queue or delay the upgrades behind them.
 * Leases given back while Redis cannot be told are taken out when it is back (or expire first).
 * With no lease to refresh, a PING tells whether Redis answers.
 */
import type { Clock } from '../tunnel/sweeper.ts';
import { LeaseBook, leaseBatches } from './lease-book.ts';
import type { RedisConnection } from './redis-connection.ts';
import type { RedisHealth } from './redis-health.ts';
import { batchArguments, REFRESH_LEASES, REMOVE_LEASES } from './redis-scripts.ts';
import type { ScriptRunner } from './script-runner.ts';

/** Leases per script. */
const BATCH = 500;

export interface LeaseKeeperDeps {
  readonly connection: RedisConnection;
  readonly runner: ScriptRunner;
  readonly health: RedisHealth;
  readonly clock: Clock;
  readonly leaseTtl: number;
}

export class LeaseKeeper {
  readonly #deps: LeaseKeeperDeps;
  readonly #book = new LeaseBook();
  /** Given back, to be taken out of Redis at the next flush: key, member, when. */
  #toRemove: [string, string, number][] = [];
  #flushing: Promise<void> | undefined;
  #refreshing = false;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(deps: LeaseKeeperDeps) {
    this.#deps = deps;
  }

  /** Leases held now. */
  get size(): number {
    return this.#book.size;
  }

  hold(key: string, member: string): void {
    this.#book.add(key, member);
  }

  /** A closed connection's lease: out of the book now, out of Redis at the next flush. */
  giveBack(key: string, member: string): void {
    if (this.#book.remove(key, member)) this.forget(key, member);
  }

  /** Takes out of Redis a lease that may be there but is not held (an answer given up on). */
  forget(key: string, member: string): void {
    if (this.#closed) return;
    this.#toRemove.push([key, member, this.#deps.clock.now()]);
    this.#flushing ??= new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.#flush());
  }

  start(): void {
    this.#timer = setInterval(() => void this.#tick(), Math.max(1, this.#deps.leaseTtl / 3));
    this.#timer.unref();
  }

  /** Redis is (again) connected: what could not be removed is removed, then every lease refreshed. */
  async caughtUp(): Promise<void> {
    for (const [key, member] of this.#book.takeUnremoved(this.#deps.clock.now() - this.#deps.leaseTtl))
      this.#toRemove.push([key, member, this.#deps.clock.now()]);
    await this.#flush();
    await this.#refresh();
  }

  /** Stops refreshing and takes every lease still held out of Redis (bounded by the runner's timeout). */
  async close(): Promise<void> {
    clearInterval(this.#timer);
    await this.#flushing;
    for (const lease of this.#book.held()) this.#toRemove.push([...lease, this.#deps.clock.now()]);
    this.#closed = true;
    await this.#flush();
  }

  async #tick(): Promise<void> {
    if (this.#closed || !this.#deps.connection.isReady) return;
    if (this.#book.size > 0) {
      await this.#refresh();
      return;
    }
    await this.#deps.runner.ping().then(
      () => this.#deps.health.succeeded(),
      (error: unknown) => this.#deps.health.failed(error, []),
    );
  }

  /** Removes what was given back, a batch at a time; what Redis could not take waits for it. */
  async #flush(): Promise<void> {
    const removing = this.#toRemove;
    this.#toRemove = [];
    this.#flushing = undefined;
    const releasedAt = new Map(removing.map(([, member, at]) => [member, at]));
    for (const batch of leaseBatches(
      removing.map(([key, member]) => [key, member] as const),
      BATCH,
    )) {
      const { keys, args } = batchArguments(batch);
      try {
        if (!this.#deps.connection.isReady) throw new Error('not connected');
        await this.#deps.runner.run('remove', REMOVE_LEASES, keys, () => args);
        this.#deps.health.succeeded();
      } catch (error) {
        if (!this.#closed) this.#deps.health.failed(error, keys);
        for (const [key, members] of batch)
          for (const member of members) this.#book.unremoved(key, member, releasedAt.get(member) ?? 0);
      }
    }
  }

  /** Extends every lease held, a batch at a time; a Redis failure ends the round (the next one tries again). */
  async #refresh(): Promise<void> {
    if (this.#refreshing || this.#closed) return;
    this.#refreshing = true;
    const ttl = String(this.#deps.leaseTtl);
    try {
      for (const batch of leaseBatches([...this.#book.held()], BATCH)) {
        const keys = batch.map(([key]) => key);
        // The members still held when the script is sent (some may have closed since the batch was made).
        const args = (): string[] => [
          ttl,
          ...batchArguments(
            batch.map(([key, members]) => [key, members.filter((member) => this.#book.has(key, member))]),
          ).args,
        ];
        await this.#deps.runner.run('refresh', REFRESH_LEASES, keys, args);
        this.#deps.health.succeeded();
      }
    } catch (error) {
      this.#deps.health.failed(error, []);
    } finally {
      this.#refreshing = false;
    }
  }
}
