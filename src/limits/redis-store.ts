/**
 * The Redis limit store: the per-client connection cap and handshake rate, and the per-subject
 * connection cap, counted for every replica and worker that shares one Redis.
 *
 * Each upgrade is first checked against this process's own counts (the memory store, kept beside):
 * what this process alone sees over a limit is over it for the fleet too, so a flood at one
 * replica is refused without asking Redis, and the same counts decide when Redis cannot be asked.
 * Then one atomic script decides for the fleet and, when it admits, adds the connection's lease.
 * Leases are refreshed every third of `leaseTtl` and given back when the connection closes; a
 * gateway that dies stops counting when its leases expire.
 *
 * When Redis cannot be asked (not connected, an error, or no answer within `timeout`), the upgrade
 * is decided as `whenUnreachable` says, and counted; the lease of a connection admitted then is
 * added by the next refresh that reaches Redis, so the fleet's counts heal when it is back. After a
 * failure the next second of upgrades is decided without asking, so a hung Redis costs one timeout
 * a second, not one per upgrade.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { AdmissionSettings } from '../config/admission-schema.ts';
import type { RedisStoreSettings } from '../config/limit-store-schema.ts';
import type { Rejection } from '../errors/rejection.ts';
import type { Logger } from '../observability/logger.ts';
import type { GatewayMetrics } from '../observability/metrics.ts';
import type { Clock } from '../tunnel/sweeper.ts';
import { LeaseBook } from './lease-book.ts';
import type { Lease, LimitStore, LimitStoreState, Verdict } from './limit-store.ts';
import { MemoryLimits } from './memory-store.ts';
import { isKeyError, type RedisConnection } from './redis-connection.ts';
import {
  ADMIT_CLIENT,
  clientRefusal,
  HOLD_SUBJECT,
  REFRESH_LEASES,
  type RedisScript,
  type Refusal,
  subjectRefusal,
} from './redis-scripts.ts';

export interface RedisLimitsDeps {
  readonly connection: RedisConnection;
  readonly clock: Clock;
  readonly log: Logger;
  readonly metrics: GatewayMetrics;
}

type Limit = 'client' | 'subject';

/** How long upgrades are decided without asking, after Redis failed to answer one. */
const BACK_OFF_MS = 1_000;
/** Members per refresh script. */
const REFRESH_BATCH = 500;
/** Longest wait for Redis at start: past it the gateway serves, deciding as whenUnreachable says. */
const START_WAIT_MS = 2_000;
/** Key errors are logged at most this often. */
const KEY_ERROR_LOG_INTERVAL_MS = 60_000;
/** Longest wait for the commands still under way at close. */
const CLOSE_WAIT_MS = 2_000;

/** A 503, which carries Retry-After like every 503 of the gateway. */
const UNREACHABLE: Rejection = { code: 'LIMIT_STORE_UNREACHABLE' };

/** A connection's hold: its count in this process, and its lease in Redis (if a cap counts it). */
class RedisLease implements Lease {
  readonly #local: Lease;
  readonly #key: string | undefined;
  readonly #member: string;
  readonly #store: RedisLimits;

  constructor(local: Lease, key: string | undefined, member: string, store: RedisLimits) {
    this.#local = local;
    this.#key = key;
    this.#member = member;
    this.#store = store;
  }

  release(): void {
    this.#local.release();
    if (this.#key !== undefined) this.#store.giveBack(this.#key, this.#member);
  }
}

export class RedisLimits implements LimitStore {
  #settings: AdmissionSettings;
  readonly #redis: RedisStoreSettings;
  readonly #local: MemoryLimits;
  readonly #connection: RedisConnection;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #metrics: GatewayMetrics;
  readonly #book = new LeaseBook();
  /** Names this process's leases: the same member can never come from two gateways. */
  readonly #instance = randomBytes(6).toString('base64url');
  #sequence = 0;
  /** Clock time before which upgrades are decided without asking (after a failure). */
  #quietUntil = 0;
  #reportedDown = false;
  /** When a key error was last logged (they are logged once a minute at most). */
  #keyErrorLoggedAt = Number.NEGATIVE_INFINITY;
  #refreshTimer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(settings: AdmissionSettings, redis: RedisStoreSettings, deps: RedisLimitsDeps) {
    this.#settings = settings;
    this.#redis = redis;
    this.#local = new MemoryLimits(settings, deps.clock);
    this.#connection = deps.connection;
    this.#clock = deps.clock;
    this.#log = deps.log;
    this.#metrics = deps.metrics;
    this.#connection.on('error', (error) => this.#down(error));
    this.#connection.on('ready', () => {
      this.#log.info({ url: redactedUrl(redis.url) }, 'limit store connected');
      this.#reportedDown = false;
      this.#quietUntil = 0;
      for (const [key, member, releasedAt] of this.#book.takeUnremoved(this.#clock.now() - redis.leaseTtl))
        this.#remove(key, member, releasedAt);
      void this.#refresh();
    });
  }

  reconfigure(settings: AdmissionSettings): void {
    this.#settings = settings;
    this.#local.reconfigure(settings);
  }

  get trackedClients(): number {
    return this.#local.trackedClients;
  }

  get trackedSubjects(): number {
    return this.#local.trackedSubjects;
  }

  state(): LimitStoreState {
    return { store: 'redis', up: this.#up(), leases: this.#book.size };
  }

  /** True when upgrades are decided by Redis now. */
  #up(): boolean {
    return this.#connection.isReady && this.#clock.now() >= this.#quietUntil;
  }

  admitClient(address: string): Verdict | Promise<Verdict> {
    const local = this.#local.admitClient(address);
    if ('refused' in local) return local;
    const { maxConnections, handshakeRate } = this.#settings.perClient;
    const key = `${this.#redis.keyPrefix}client:{${address}}`;
    const leaseKey = maxConnections === 'off' ? undefined : `${key}:connections`;
    const args = [
      String(maxConnections === 'off' ? 0 : maxConnections),
      String(handshakeRate === 'off' ? 0 : 1000 / handshakeRate.perSecond),
      String(handshakeRate === 'off' ? 0 : handshakeRate.burst),
    ];
    return this.#decide('client', local.lease, leaseKey, (member) => ({
      script: ADMIT_CLIENT,
      keys: [`${key}:rate`, `${key}:connections`],
      args: [...args, member, String(this.#redis.leaseTtl)],
      refusal: clientRefusal,
    }));
  }

  holdSubject(subject: string, max: number): Verdict | Promise<Verdict> {
    const local = this.#local.holdSubject(subject, max);
    if ('refused' in local) return local;
    const digest = createHash('sha256').update(subject).digest('base64url').slice(0, 22);
    const key = `${this.#redis.keyPrefix}subject:{${digest}}:connections`;
    return this.#decide('subject', local.lease, key, (member) => ({
      script: HOLD_SUBJECT,
      keys: [key],
      args: [String(max), member, String(this.#redis.leaseTtl)],
      refusal: subjectRefusal,
    }));
  }

  /**
   * Takes a closed connection's lease out of Redis. One that cannot be taken out now (Redis not
   * connected, or not answering) is taken out when Redis is back, unless it has expired by then.
   */
  giveBack(key: string, member: string): void {
    if (!this.#book.remove(key, member)) return;
    if (!this.#closed) this.#remove(key, member, this.#clock.now());
  }

  #remove(key: string, member: string, releasedAt: number): void {
    if (!this.#connection.isReady) {
      this.#book.unremoved(key, member, releasedAt);
      return;
    }
    this.#connection.sendCommand(['ZREM', key, member]).catch(() => {
      if (!this.#closed) this.#book.unremoved(key, member, releasedAt);
    });
  }

  async start(): Promise<void> {
    this.#refreshTimer = setInterval(() => void this.#refresh(), Math.max(1, this.#redis.leaseTtl / 3));
    this.#refreshTimer.unref();
    let timer: NodeJS.Timeout | undefined;
    const connected = this.#connection.connect().then(
      () => true,
      (error: unknown) => {
        this.#down(error);
        return false;
      },
    );
    const ready = await Promise.race([
      connected,
      new Promise<false>((resolve) => {
        timer = setTimeout(() => resolve(false), START_WAIT_MS);
      }),
    ]);
    clearTimeout(timer);
    if (!ready) {
      this.#log.warn(
        { url: redactedUrl(this.#redis.url), whenUnreachable: this.#redis.whenUnreachable },
        'the limit store is not reachable yet; upgrades are decided as whenUnreachable says until it is',
      );
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#refreshTimer);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.#connection.close().catch(() => {}),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, CLOSE_WAIT_MS);
      }),
    ]);
    clearTimeout(timer);
    this.#connection.destroy();
  }

  /** Asks Redis with the script `ask` makes for a new lease member, and reads the answer. */
  async #decide(
    limit: Limit,
    local: Lease,
    leaseKey: string | undefined,
    ask: (member: string) => { script: RedisScript; keys: string[]; args: string[]; refusal: Refusal },
  ): Promise<Verdict> {
    const member = `${this.#instance}:${(++this.#sequence).toString(36)}`;
    if (!this.#up()) {
      if (!this.#connection.isReady) this.#down(new Error('not connected'));
      return this.#unreachable(limit, local, leaseKey, member);
    }
    const { script, keys, args, refusal } = ask(member);
    let refused: Rejection | undefined;
    try {
      refused = refusal(await this.#run(limit, script, keys, () => args));
    } catch (error) {
      this.#failed(error, keys);
      // The script may have run before its answer was given up on: its lease must not linger.
      if (leaseKey !== undefined && this.#redis.whenUnreachable === 'closed')
        this.#remove(leaseKey, member, this.#clock.now());
      return this.#unreachable(limit, local, leaseKey, member);
    }
    if (refused !== undefined) {
      local.release();
      return { refused };
    }
    return { lease: this.#lease(local, leaseKey, member) };
  }

  /** The verdict without Redis: this process's counts (open), or 503 (closed). */
  #unreachable(limit: Limit, local: Lease, leaseKey: string | undefined, member: string): Verdict {
    const closed = this.#redis.whenUnreachable === 'closed';
    this.#metrics.limitStoreUnreachable.inc({ limit, action: closed ? 'refused' : 'admitted' });
    if (closed) {
      local.release();
      return { refused: UNREACHABLE };
    }
    // Counted in Redis by the next refresh that reaches it.
    return { lease: this.#lease(local, leaseKey, member) };
  }

  #lease(local: Lease, key: string | undefined, member: string): Lease {
    if (key === undefined) return local;
    this.#book.add(key, member);
    return new RedisLease(local, key, member, this);
  }

  /**
   * Runs `script` (by its SHA, loading it when Redis does not have it), within `timeout`: a command
   * already written is not taken back by node-redis, so the wait is bounded here (its late answer
   * is dropped; the command queue is bounded).
   */
  async #run(
    operation: Limit | 'refresh',
    script: RedisScript,
    keys: string[],
    args: () => string[],
  ): Promise<unknown> {
    const started = performance.now();
    const unsent = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => {
        unsent.abort();
        reject(new Error(`no answer within ${this.#redis.timeout} ms`));
      }, this.#redis.timeout);
    });
    const tail = (): string[] => [String(keys.length), ...keys, ...args()];
    const sending = this.#send(script, tail, unsent.signal);
    sending.catch(() => {});
    try {
      return await Promise.race([sending, timedOut]);
    } finally {
      clearTimeout(timer);
      this.#metrics.limitStoreSeconds.observe({ operation }, (performance.now() - started) / 1000);
    }
  }

  /**
   * The arguments are made when each command is sent: a refresh sent again after NOSCRIPT must
   * not add back the leases given back in between.
   */
  async #send(script: RedisScript, tail: () => string[], abortSignal: AbortSignal): Promise<unknown> {
    try {
      return await this.#connection.sendCommand(['EVALSHA', script.sha, ...tail()], { abortSignal });
    } catch (error) {
      if (!(error instanceof Error && error.message.startsWith('NOSCRIPT'))) throw error;
      return await this.#connection.sendCommand(['EVAL', script.source, ...tail()], { abortSignal });
    }
  }

  /** Extends every lease held (adding back those Redis lost); a failure waits for the next round. */
  async #refresh(): Promise<void> {
    if (this.#closed || !this.#connection.isReady || this.#book.size === 0) return;
    const ttl = String(this.#redis.leaseTtl);
    const rounds = [...this.#book.batches(REFRESH_BATCH)].map(([key, members]) =>
      this.#run('refresh', REFRESH_LEASES, [key], () => [
        ttl,
        ...members.filter((member) => this.#book.has(key, member)),
      ]).catch((error: unknown) => this.#failed(error, [key])),
    );
    await Promise.all(rounds);
  }

  /**
   * After a failure: a Redis that does not answer is not asked for a second; a key Redis cannot
   * run a script on (another application's key of another type under the prefix) fails alone.
   */
  #failed(error: unknown, keys: readonly string[]): void {
    if (!isKeyError(error)) {
      this.#quietUntil = this.#clock.now() + BACK_OFF_MS;
      this.#down(error);
      return;
    }
    const now = this.#clock.now();
    if (now < this.#keyErrorLoggedAt + KEY_ERROR_LOG_INTERVAL_MS) return;
    this.#keyErrorLoggedAt = now;
    this.#log.warn(
      { err: error instanceof Error ? error.message : String(error), keys },
      `the limit store cannot use a key (another kind of value under the prefix?); what it decides is decided as whenUnreachable (${this.#redis.whenUnreachable}) says`,
    );
  }

  /** Logs that Redis is not answering, once until it answers again. */
  #down(error: unknown): void {
    if (this.#reportedDown || this.#closed) return;
    this.#reportedDown = true;
    this.#log.warn(
      { err: error instanceof Error ? error.message : String(error), url: redactedUrl(this.#redis.url) },
      `the limit store does not answer; upgrades are decided as whenUnreachable (${this.#redis.whenUnreachable}) says`,
    );
  }
}

/** `url` without its password, for logs. */
function redactedUrl(text: string): string {
  const url = new URL(text);
  if (url.password !== '') url.password = '***';
  return url.toString();
}
