/**
 * Whether the Redis limit store can be asked, and what is logged of it. A failure that is Redis's
 * (not connected, no answer in time, an error about Redis itself) makes the store not ask for a
 * second, so a hung Redis costs one timeout a second rather than one per upgrade, and marks it
 * failing until something succeeds: `up` (the metric, /status.json) stays 0 through a hang, the
 * outage is logged once and its end once. A failure of one key's data (another application's key
 * under the prefix) fails alone and is logged at most once a minute. A Redis that says it is a
 * replica, loading, or without a primary (after a failover that kept the old primary's address)
 * is dropped and connected again, so the connection follows the Service to the new primary. A
 * Redis rebuilding its counts is not asked until the rebuild ends, and is not `up` meanwhile.
 */
import { ErrorReply } from '@redis/client';
import type { Logger } from '../observability/logger.ts';
import type { Clock } from '../tunnel/sweeper.ts';
import { isKeyError, type RedisConnection } from './redis-connection.ts';

/** How long upgrades are decided without asking, after Redis failed to answer one. */
const BACK_OFF_MS = 1_000;
/** Key errors are logged at most this often. */
const KEY_ERROR_LOG_INTERVAL_MS = 60_000;
/** Answers that mean this connection reached the wrong Redis, or one not ready to serve. */
const RECONNECT_ON = /^(READONLY|LOADING|MASTERDOWN) /;

export class RedisHealth {
  readonly #connection: RedisConnection;
  readonly #clock: Clock;
  readonly #log: Logger;
  /** How upgrades are decided while Redis cannot be asked (for the log). */
  readonly #whenUnreachable: string;
  /** Clock time before which upgrades are decided without asking (after a failure). */
  #quietUntil = 0;
  #failing = false;
  /** Clock time before which Redis is rebuilding its counts (it lost them). */
  #rebuiltAt = 0;
  #keyErrorLoggedAt = Number.NEGATIVE_INFINITY;
  #reconnecting = false;
  #closed = false;

  constructor(connection: RedisConnection, clock: Clock, log: Logger, whenUnreachable: string) {
    this.#connection = connection;
    this.#clock = clock;
    this.#log = log;
    this.#whenUnreachable = whenUnreachable;
  }

  /**
   * Whether Redis decides upgrades now: connected, nothing failing since the last success, and not
   * rebuilding its counts.
   */
  get up(): boolean {
    return this.#connection.isReady && !this.#failing && this.#clock.now() >= this.#rebuiltAt;
  }

  /** Whether an upgrade should ask Redis now: not while it is away (which is logged), nor in the second after a failure. */
  mayAsk(): boolean {
    if (this.#connection.isReady && this.#clock.now() >= this.#quietUntil) return true;
    if (!this.#connection.isReady) this.#down(new Error('not connected'));
    return false;
  }

  /** The connection is (again) ready. */
  connected(): void {
    this.#quietUntil = this.#rebuiltAt;
  }

  /** Redis answered: it is asked again at once. */
  succeeded(): void {
    if (!this.#failing) return;
    this.#failing = false;
    this.#quietUntil = this.#rebuiltAt;
    this.#log.info('the limit store answers again; upgrades are decided by it');
  }

  /**
   * Redis lost its counts and is rebuilding them for `ms` more: nothing is asked of it until then,
   * and the rebuild is logged once.
   */
  rebuilding(ms: number): void {
    const now = this.#clock.now();
    if (now >= this.#rebuiltAt) {
      this.#log.warn(
        { rebuildingMs: ms },
        `the limit store lost its counts (Redis restarted empty, or its keys were removed); until every gateway has added its leases back, upgrades are decided as whenUnreachable (${this.#whenUnreachable}) says`,
      );
    }
    this.#rebuiltAt = Math.max(this.#rebuiltAt, now + ms);
    this.#quietUntil = Math.max(this.#quietUntil, this.#rebuiltAt);
  }

  failed(error: unknown, keys: readonly string[]): void {
    if (this.#closed) return;
    if (isKeyError(error)) {
      const now = this.#clock.now();
      if (now < this.#keyErrorLoggedAt + KEY_ERROR_LOG_INTERVAL_MS) return;
      this.#keyErrorLoggedAt = now;
      this.#log.warn(
        { err: message(error), keys },
        `the limit store cannot use a key (another kind of value under the prefix?); what it decides is decided as whenUnreachable (${this.#whenUnreachable}) says`,
      );
      return;
    }
    this.#quietUntil = this.#clock.now() + BACK_OFF_MS;
    this.#down(error);
    if (error instanceof ErrorReply && RECONNECT_ON.test(error.message)) this.#reconnect();
  }

  /** A connection error, or none at all: logged once until Redis answers again. */
  #down(error: unknown): void {
    if (this.#failing || this.#closed) return;
    this.#failing = true;
    this.#log.warn(
      { err: message(error) },
      `the limit store does not answer; upgrades are decided as whenUnreachable (${this.#whenUnreachable}) says`,
    );
  }

  /** Reported by the connection (it reconnects by itself). */
  connectionError(error: unknown): void {
    this.#down(error);
  }

  #reconnect(): void {
    if (this.#reconnecting) return;
    this.#reconnecting = true;
    this.#log.warn('the limit store reached a Redis that cannot take writes; connecting again');
    this.#connection.destroy();
    this.#connection
      .connect()
      .catch((error: unknown) => this.#down(error))
      .finally(() => {
        this.#reconnecting = false;
      });
  }

  close(): void {
    this.#closed = true;
  }
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
