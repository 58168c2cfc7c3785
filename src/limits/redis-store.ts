/**
 * The Redis limit store: the per-client connection cap and handshake rate, and the per-subject
 * connection cap, counted for every replica and worker that shares one Redis.
 *
 * Each upgrade is first checked against this process's own counts (the memory store, kept beside):
 * what this process alone sees over a limit is over it for the fleet too, so a flood at one
 * replica is refused without asking Redis, and the same counts decide when Redis cannot be asked.
 * Then one atomic script decides for the fleet and, when it admits, adds the connection's lease
 * (a refusal gives back what this process's counts took). The leases are kept by the lease keeper
 * (refreshed every third of `leaseTtl`, taken out when the connection closes); a gateway that
 * dies stops counting when its leases expire.
 *
 * When Redis cannot be asked (src/limits/redis-health.ts), or is rebuilding its counts after it lost
 * them (src/limits/redis-scripts.ts), the upgrade is decided as `whenUnreachable` says, and counted; the lease of a connection admitted then is added by the
 * next refresh that reaches Redis, so the fleet's counts heal when it is back.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { AdmissionSettings } from '../config/admission-schema.ts';
import type { RedisStoreSettings } from '../config/limit-store-schema.ts';
import type { Rejection } from '../errors/rejection.ts';
import type { Logger } from '../observability/logger.ts';
import type { GatewayMetrics } from '../observability/metrics.ts';
import type { Clock } from '../tunnel/sweeper.ts';
import { LeaseKeeper } from './lease-keeper.ts';
import type { Lease, LimitStore, LimitStoreState, Verdict } from './limit-store.ts';
import { MemoryLimits } from './memory-store.ts';
import { RECONNECT_CAP_MS, type RedisConnection } from './redis-connection.ts';
import { RedisHealth } from './redis-health.ts';
import {
  ADMIT_CLIENT,
  clientRefusal,
  HOLD_SUBJECT,
  type RedisScript,
  type Refusal,
  subjectRefusal,
} from './redis-scripts.ts';
import { ScriptRunner } from './script-runner.ts';

export interface RedisLimitsDeps {
  readonly connection: RedisConnection;
  readonly clock: Clock;
  readonly log: Logger;
  readonly metrics: GatewayMetrics;
}

type Limit = 'client' | 'subject';

/** Longest wait for Redis at start: past it the gateway serves, deciding as whenUnreachable says. */
const START_WAIT_MS = 2_000;
/** Longest wait for the commands still under way at close. */
const CLOSE_WAIT_MS = 2_000;

/** A 503, which carries Retry-After like every 503 of the gateway. */
const UNREACHABLE: Rejection = { code: 'LIMIT_STORE_UNREACHABLE' };

/** What one decision asks of Redis. */
interface Question {
  readonly limit: Limit;
  readonly script: RedisScript;
  readonly keys: string[];
  /** The script's arguments for a lease named `member`. */
  readonly args: (member: string) => string[];
  readonly refusal: Refusal;
  /** The connections key the lease goes in (none: nothing to hold, only a rate). */
  readonly leaseKey: string | undefined;
  /** Gives back what this process's counts took, when the upgrade is refused after all. */
  readonly undo: () => void;
}

/** A connection's hold: its count in this process, and its lease in Redis (if a cap counts it). */
class RedisLease implements Lease {
  readonly #local: Lease;
  readonly #key: string;
  readonly #member: string;
  readonly #keeper: LeaseKeeper;

  constructor(local: Lease, key: string, member: string, keeper: LeaseKeeper) {
    this.#local = local;
    this.#key = key;
    this.#member = member;
    this.#keeper = keeper;
  }

  release(): void {
    this.#local.release();
    this.#keeper.giveBack(this.#key, this.#member);
  }
}

export class RedisLimits implements LimitStore {
  #settings: AdmissionSettings;
  readonly #redis: RedisStoreSettings;
  readonly #local: MemoryLimits;
  readonly #connection: RedisConnection;
  readonly #log: Logger;
  readonly #metrics: GatewayMetrics;
  readonly #health: RedisHealth;
  readonly #runner: ScriptRunner;
  readonly #keeper: LeaseKeeper;
  /** Names this process's leases: the same member can never come from two gateways. */
  readonly #instance = randomBytes(6).toString('base64url');
  #sequence = 0;
  #closed = false;
  /** When Redis started counting: a Redis without it has lost the leases (redis-scripts.ts). */
  readonly #marker: string;
  /**
   * How long after that the counts may still miss a live gateway's leases: until its next refresh,
   * or its reconnection (and the refresh right after), and that refresh's answer.
   */
  readonly #rebuildWindow: string;

  constructor(settings: AdmissionSettings, redis: RedisStoreSettings, deps: RedisLimitsDeps) {
    this.#settings = settings;
    this.#redis = redis;
    this.#local = new MemoryLimits(settings, deps.clock);
    this.#marker = `${redis.keyPrefix}counting-since`;
    this.#rebuildWindow = String(Math.ceil(Math.max(redis.leaseTtl / 3, RECONNECT_CAP_MS) + redis.timeout));
    this.#connection = deps.connection;
    this.#log = deps.log;
    this.#metrics = deps.metrics;
    this.#health = new RedisHealth(deps.connection, deps.clock, deps.log, redis.whenUnreachable);
    this.#runner = new ScriptRunner(deps.connection, redis.timeout, (operation, seconds) =>
      deps.metrics.limitStoreSeconds.observe({ operation }, seconds),
    );
    this.#keeper = new LeaseKeeper({
      connection: deps.connection,
      runner: this.#runner,
      health: this.#health,
      clock: deps.clock,
      leaseTtl: redis.leaseTtl,
    });
    this.#connection.on('error', (error) => this.#health.connectionError(error));
    this.#connection.on('ready', () => {
      this.#log.info({ url: redactedUrl(redis.url) }, 'limit store connected');
      this.#health.connected();
      void this.#keeper.caughtUp();
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
    return { store: 'redis', up: this.#health.up, leases: this.#keeper.size };
  }

  admitClient(address: string): Verdict | Promise<Verdict> {
    const local = this.#local.admitClient(address);
    if ('refused' in local) return local;
    const { maxConnections, handshakeRate } = this.#settings.perClient;
    const key = `${this.#redis.keyPrefix}client:{${address}}`;
    const limits = [
      String(maxConnections === 'off' ? 0 : maxConnections),
      String(handshakeRate === 'off' ? 0 : 1000 / handshakeRate.perSecond),
      String(handshakeRate === 'off' ? 0 : handshakeRate.burst),
    ];
    return this.#decide(local.lease, {
      limit: 'client',
      script: ADMIT_CLIENT,
      keys: [`${key}:rate`, `${key}:connections`, this.#marker],
      args: (member) => [...limits, member, String(this.#redis.leaseTtl), this.#rebuildWindow],
      refusal: clientRefusal,
      leaseKey: maxConnections === 'off' ? undefined : `${key}:connections`,
      undo: () => {
        local.lease.release();
        this.#local.refundHandshake(address);
      },
    });
  }

  holdSubject(subject: string, max: number): Verdict | Promise<Verdict> {
    const local = this.#local.holdSubject(subject, max);
    if ('refused' in local) return local;
    const digest = createHash('sha256').update(subject).digest('base64url').slice(0, 22);
    const key = `${this.#redis.keyPrefix}subject:{${digest}}:connections`;
    return this.#decide(local.lease, {
      limit: 'subject',
      script: HOLD_SUBJECT,
      keys: [key, this.#marker],
      args: (member) => [String(max), member, String(this.#redis.leaseTtl), this.#rebuildWindow],
      refusal: subjectRefusal,
      leaseKey: key,
      undo: () => local.lease.release(),
    });
  }

  async start(): Promise<void> {
    this.#keeper.start();
    let timer: NodeJS.Timeout | undefined;
    const connected = this.#connection.connect().then(
      () => true,
      (error: unknown) => {
        this.#health.connectionError(error);
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

  /** Takes the leases still held out of Redis, then disconnects (each step bounded in time). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#keeper.close();
    this.#health.close();
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

  /** Asks Redis `question` for a new lease, and reads the answer. */
  async #decide(local: Lease, question: Question): Promise<Verdict> {
    const member = `${this.#instance}:${(++this.#sequence).toString(36)}`;
    if (!this.#health.mayAsk()) return this.#unreachable(local, question, member);
    const args = question.args(member);
    let answer: ReturnType<Refusal>;
    try {
      answer = question.refusal(
        await this.#runner.run(question.limit, question.script, question.keys, () => args),
      );
      this.#health.succeeded();
    } catch (error) {
      this.#health.failed(error, question.keys);
      // The script may have run before its answer was given up on: its lease must not linger.
      if (question.leaseKey !== undefined && this.#redis.whenUnreachable === 'closed')
        this.#keeper.forget(question.leaseKey, member);
      return this.#unreachable(local, question, member);
    }
    if (answer !== undefined && 'rebuildingMs' in answer) {
      this.#health.rebuilding(answer.rebuildingMs);
      return this.#unreachable(local, question, member);
    }
    if (answer !== undefined) {
      question.undo();
      return { refused: answer };
    }
    return { lease: this.#lease(local, question.leaseKey, member) };
  }

  /** The verdict without Redis: this process's counts (open), or 503 (closed). */
  #unreachable(local: Lease, question: Question, member: string): Verdict {
    const closed = this.#redis.whenUnreachable === 'closed';
    this.#metrics.limitStoreUnreachable.inc({
      limit: question.limit,
      action: closed ? 'refused' : 'admitted',
    });
    if (closed) {
      question.undo();
      return { refused: UNREACHABLE };
    }
    // Counted in Redis by the next refresh that reaches it.
    return { lease: this.#lease(local, question.leaseKey, member) };
  }

  #lease(local: Lease, key: string | undefined, member: string): Lease {
    if (key === undefined) return local;
    this.#keeper.hold(key, member);
    return new RedisLease(local, key, member, this.#keeper);
  }
}

/** `url` without its password, for logs. */
function redactedUrl(text: string): string {
  const url = new URL(text);
  if (url.password !== '') url.password = '***';
  return url.toString();
}
