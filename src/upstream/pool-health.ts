/**
 * The health of a pool's backends, from active checks (health-probe.ts, on the injected clock,
 * each backend on its own jittered interval) and from real traffic (passive ejection): a backend
 * goes down after `unhealthyAfter` failed checks and back up after `healthyAfter` passed ones; it
 * is ejected for `ejectFor` after `failures` consecutive failures of real traffic, unless that
 * would eject more than `maxEjectedShare` of the pool. `Backend.state` is kept in step (a backend
 * being drained stays `draining`), so the balancers only ever read that field.
 */
import type { Agent } from 'undici';
import type { Clock } from '../clock.ts';
import type { HealthSettings } from '../config/health-schema.ts';
import type { Logger } from '../observability/logger.ts';
import type { Backend, BackendTls } from './backend.ts';
import { probe, probeAgent } from './health-probe.ts';

interface Record {
  /** What the active checks say (true until they say otherwise). */
  checkedUp: boolean;
  passed: number;
  failed: number;
  /** Consecutive failures of real traffic. */
  trafficFailures: number;
  ejected: boolean;
  /** Cancels the backend's next check or the end of its ejection. */
  readonly timers: Set<() => void>;
}

export interface HealthEvents {
  /** A backend's availability changed (up: it takes new connections again). */
  readonly changed: (backend: Backend, up: boolean, why: string) => void;
  readonly ejected: (backend: Backend) => void;
  readonly checked: (backend: Backend, ok: boolean) => void;
}

export class PoolHealth {
  readonly #settings: HealthSettings;
  readonly #tls: BackendTls;
  readonly #clock: Clock;
  readonly #events: HealthEvents;
  readonly #log: Logger;
  readonly #records = new Map<Backend, Record>();
  /** The checks' dispatchers, one per TLS server name (the empty name for http:// and IP backends). */
  readonly #agents = new Map<string, Agent>();
  /** Stops the checks in flight when the pool stops. */
  #stopping = new AbortController();
  #running = false;

  constructor(
    settings: HealthSettings,
    tls: BackendTls,
    deps: { clock: Clock; events: HealthEvents; log: Logger },
  ) {
    this.#settings = settings;
    this.#tls = tls;
    this.#clock = deps.clock;
    this.#events = deps.events;
    this.#log = deps.log;
  }

  /**
   * Tracks `backend` (checked from its first interval on, when the checks run). One that is down
   * (carried over from the pool this one succeeds) stays down until its checks pass.
   */
  add(backend: Backend): void {
    if (this.#records.has(backend)) return;
    this.#records.set(backend, {
      checkedUp: backend.state !== 'down',
      passed: 0,
      failed: 0,
      trafficFailures: 0,
      ejected: false,
      timers: new Set(),
    });
    if (this.#running) this.#schedule(backend);
  }

  /** Stops tracking `backend` (it left the pool). */
  remove(backend: Backend): void {
    const record = this.#records.get(backend);
    if (record === undefined) return;
    for (const cancel of record.timers) cancel();
    this.#records.delete(backend);
  }

  /** Starts the active checks, if any. */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#stopping = new AbortController();
    for (const backend of this.#records.keys()) this.#schedule(backend);
  }

  stop(): void {
    this.#running = false;
    this.#stopping.abort();
    for (const record of this.#records.values()) {
      for (const cancel of record.timers) cancel();
      record.timers.clear();
    }
    for (const agent of this.#agents.values()) void agent.close();
    this.#agents.clear();
  }

  /** Real traffic to `backend` failed (a connect, a handshake timeout, a 5xx to an upgrade). */
  failure(backend: Backend): void {
    const passive = this.#settings.passive;
    const record = this.#records.get(backend);
    if (!passive.enabled || record === undefined || record.ejected) return;
    record.trafficFailures++;
    if (record.trafficFailures < passive.failures) return;
    // Backends already out (ejected, or down by their checks) count toward the share.
    const out = [...this.#records.values()].filter((entry) => entry.ejected || !entry.checkedUp).length;
    if (out + 1 > Math.floor(passive.maxEjectedShare * this.#records.size)) return;
    record.ejected = true;
    record.trafficFailures = 0;
    this.#events.ejected(backend);
    this.#update(backend, `ejected for ${passive.ejectFor} ms after ${passive.failures} failures`);
    this.#after(record, passive.ejectFor, () => {
      record.ejected = false;
      this.#update(backend, 'ejection over');
    });
  }

  /** Real traffic to `backend` succeeded: its failures are no longer consecutive. */
  success(backend: Backend): void {
    const record = this.#records.get(backend);
    if (record) record.trafficFailures = 0;
  }

  #after(record: Record, delayMs: number, fire: () => void): void {
    const cancel = this.#clock.after(delayMs, () => {
      record.timers.delete(cancel);
      fire();
    });
    record.timers.add(cancel);
  }

  /** The dispatcher for `backend`'s checks. */
  #agentFor(backend: Backend): Agent {
    const servername = backend.secure ? (this.#tls.servername ?? backend.serverName ?? '') : '';
    let agent = this.#agents.get(servername);
    if (agent === undefined) {
      agent = probeAgent(this.#tls, servername || undefined);
      this.#agents.set(servername, agent);
    }
    return agent;
  }

  #schedule(backend: Backend): void {
    const active = this.#settings.active;
    const record = this.#records.get(backend);
    if (active === undefined || record === undefined || !this.#running) return;
    const jitter = 0.9 + Math.random() * 0.2;
    this.#after(record, Math.round(active.interval * jitter), () => {
      const signal = this.#stopping.signal;
      void probe(backend, active, this.#tls, this.#agentFor(backend), signal).then((result) => {
        // Stopped, or the backend left the pool meanwhile.
        if (!this.#running || this.#records.get(backend) !== record) return;
        this.#checked(backend, result.ok, result.ok ? '' : result.reason);
        this.#schedule(backend);
      });
    });
  }

  #checked(backend: Backend, ok: boolean, reason: string): void {
    const active = this.#settings.active;
    const record = this.#records.get(backend);
    if (active === undefined || record === undefined) return;
    this.#events.checked(backend, ok);
    if (ok) {
      record.failed = 0;
      record.passed++;
      if (!record.checkedUp && record.passed >= active.healthyAfter) {
        record.checkedUp = true;
        this.#update(backend, `${record.passed} checks passed`);
      }
    } else {
      record.passed = 0;
      record.failed++;
      if (record.checkedUp && record.failed >= active.unhealthyAfter) {
        record.checkedUp = false;
        this.#update(backend, `${record.failed} checks failed (${reason})`);
      }
    }
  }

  /** Brings `backend.state` in step with its record. */
  #update(backend: Backend, why: string): void {
    const record = this.#records.get(backend);
    if (record === undefined || backend.state === 'draining') return;
    const up = record.checkedUp && !record.ejected;
    const state = up ? 'up' : 'down';
    if (backend.state === state) return;
    backend.state = state;
    this.#log[up ? 'info' : 'warn'](
      { pool: backend.poolName, backend: backend.id, why },
      up ? 'backend up' : 'backend down',
    );
    this.#events.changed(backend, up, why);
  }
}
