/**
 * The supervisor of a fleet (`workers` above 1): it forks the workers (the cluster module: the
 * listening sockets are the supervisor's and each new connection is handed to a worker in turn),
 * gives each the configuration as text, serves the admin endpoints for all of them (metrics
 * summed, status of each, readiness while any serves), and coordinates what concerns the fleet:
 *
 * - a reload is read and validated here once, then sent to every worker; if one cannot apply it,
 *   those that did are put back on the previous text, so the fleet stays on one configuration;
 * - a worker that exits while the fleet runs is started again after a backoff (backoff.ts), with
 *   the configuration in force, without touching the others;
 * - SIGTERM is passed on as a drain to every worker; the supervisor waits for each to exit.
 */
import cluster, { type Worker } from 'node:cluster';
import { availableParallelism } from 'node:os';
import { type AdminListener, listenAdmin } from '../admin/admin-server.ts';
import { parseConfigFileText, readConfigText } from '../config/load.ts';
import type { Config } from '../config/schema.ts';
import type { Instance } from '../instance.ts';
import {
  type Phase,
  type ReloadOutcome,
  type ReloadResult,
  type ShutdownOptions,
  serialReloads,
} from '../lifecycle.ts';
import type { LimitStoreState } from '../limits/limit-store.ts';
import type { Logger } from '../observability/logger.ts';
import { configHash } from '../snapshot.ts';
import { RestartBackoff } from './backoff.ts';
import { FleetMetrics } from './fleet-metrics.ts';
import { fleetVerdict } from './fleet-reload.ts';
import {
  type ConfigText,
  type FromWorker,
  isMessage,
  sendMessage,
  type ToWorker,
  type WorkerReport,
} from './messages.ts';

/** Longest wait for a worker's answer to a report request (`/metrics`, `/status`). */
const REPORT_TIMEOUT_MS = 2_000;
/** Longest wait for a worker to apply a reload (new pools' first DNS lookups included). */
const RELOAD_TIMEOUT_MS = 60_000;
/** After the drain timeout, how long workers have to exit before they are killed. */
const EXIT_GRACE_MS = 5_000;
/**
 * Each running worker is pinged this often and has this long to answer; after MISSED_PINGS
 * unanswered pings in a row its event loop is taken to be stuck, and it is killed and started
 * again: its connections are dead already, and the supervisor would hand it more.
 */
const PING_INTERVAL_MS = 5_000;
const MISSED_PINGS = 3;

/** How many workers `config` asks for. */
export function workerCount(config: Config): number {
  return config.workers === 'auto' ? availableParallelism() : config.workers;
}

interface Slot {
  readonly index: number;
  worker: Worker | undefined;
  /** The configuration the worker was started with (a reload may have come since). */
  given: ConfigText | undefined;
  state: 'starting' | 'running' | 'exited';
  startedAt: number;
  restarts: number;
  /** Pings in a row the worker has not answered. */
  missed: number;
  readonly backoff: RestartBackoff;
  /** Answers awaited from this worker, by request id. */
  readonly waiting: Map<number, (message: FromWorker) => void>;
}

/** The supervisor of the fleet for `config`, read from `configFile` as `text`. */
export function supervisor(configFile: string, text: string, config: Config, log: Logger): Instance {
  const metrics = new FleetMetrics();
  let inForce: ConfigText & { readonly config: Config; readonly hash: string; readonly loadedAt: number } = {
    text,
    file: configFile,
    config,
    hash: configHash(config),
    loadedAt: Date.now(),
  };
  let phase: Phase = 'starting';
  let lastReload: ReloadOutcome | undefined;
  let lastRead = text;
  let stopping: Promise<void> | undefined;
  let admin: AdminListener | undefined;
  let nextId = 0;
  const slots: Slot[] = Array.from({ length: workerCount(config) }, (_, index) => ({
    index,
    worker: undefined,
    given: undefined,
    state: 'exited',
    startedAt: 0,
    restarts: 0,
    missed: 0,
    backoff: new RestartBackoff(),
    waiting: new Map(),
  }));
  const exits = new Map<Slot, Promise<void>>();

  const countWorkers = (): void => {
    metrics.workers.set({ state: 'running' }, slots.filter((slot) => slot.state === 'running').length);
    metrics.workers.set({ state: 'starting' }, slots.filter((slot) => slot.state === 'starting').length);
  };

  /** Sends `message` if `slot`'s worker is connected; `undelivered` runs if the send then fails. */
  const send = (slot: Slot, message: ToWorker, undelivered?: () => void): boolean => {
    const worker = slot.worker;
    if (worker === undefined || !worker.isConnected()) return false;
    sendMessage(worker, message, (error) => {
      log.debug({ worker: slot.index, err: error }, 'message to a worker not delivered');
      undelivered?.();
    });
    return true;
  };

  /** Sends a request to `slot` and waits for the answer with its id (undefined: none in time). */
  const request = (
    slot: Slot,
    make: (id: number) => ToWorker,
    timeoutMs: number,
  ): Promise<FromWorker | undefined> => {
    const id = ++nextId;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        slot.waiting.delete(id);
        resolve(undefined);
      }, timeoutMs);
      slot.waiting.set(id, (message) => {
        clearTimeout(timer);
        slot.waiting.delete(id);
        resolve(message);
      });
      // A request that cannot reach its worker is answered at once rather than at the timeout.
      const unanswerable = (error: string) => (): void => slot.waiting.get(id)?.({ kind: 'failed', error });
      if (!send(slot, make(id), unanswerable('not delivered'))) unanswerable('not connected')();
    });
  };

  /** Forks the worker of `slot`; resolves when it serves, rejects when it could not start. */
  const fork = (slot: Slot): Promise<void> => {
    const worker = cluster.fork({ WSGATE_WORKER: String(slot.index) });
    slot.worker = worker;
    slot.missed = 0;
    slot.state = 'starting';
    slot.startedAt = performance.now();
    countWorkers();
    // A failed send or kill is an error event on the worker: logged, never the supervisor's end.
    worker.on('error', (error: Error) =>
      log.warn({ worker: slot.index, err: error }, 'worker process error'),
    );
    const started = new Promise<void>((resolve, reject) => {
      worker.on('message', (message: unknown) => {
        if (!isMessage<FromWorker>(message)) return;
        if (message.kind === 'started') {
          slot.state = 'running';
          countWorkers();
          log.info({ worker: slot.index, workerPid: worker.process.pid }, 'worker serving');
          resolve();
          // Restarted while a reload went through the others: it catches up with the fleet.
          if (slot.given !== undefined && slot.given.text !== inForce.text) void catchUp(slot);
        } else if (message.kind === 'failed') {
          reject(new Error(`worker ${slot.index} could not start: ${message.error}`));
        } else {
          slot.waiting.get(message.id)?.(message);
        }
      });
      worker.once('exit', (code, signal) => {
        reject(new Error(`worker ${slot.index} exited before serving (${signal ?? code})`));
        onExit(slot, worker, code, signal);
      });
    });
    worker.once('online', () => {
      // Forked just before a shutdown began: it is told to stop instead of to start.
      if (phase !== 'starting' && phase !== 'running') {
        send(slot, { kind: 'shutdown', immediate: true });
        return;
      }
      slot.given = { text: inForce.text, file: inForce.file };
      send(slot, { kind: 'start', ...slot.given });
    });
    exits.set(slot, new Promise((resolve) => worker.once('exit', () => resolve())));
    return started;
  };

  const onExit = (slot: Slot, worker: Worker, code: number, signal: string | null): void => {
    if (slot.worker !== worker) return;
    slot.state = 'exited';
    countWorkers();
    for (const answer of slot.waiting.values()) answer({ kind: 'failed', error: 'the worker exited' });
    if (phase !== 'running') return;
    const wait = slot.backoff.delay(performance.now() - slot.startedAt);
    metrics.restarts.inc();
    slot.restarts++;
    log.error(
      { worker: slot.index, workerPid: worker.process.pid, code, signal, restartInMs: wait },
      'worker exited; restarting it',
    );
    setTimeout(() => {
      if (phase !== 'running') return;
      fork(slot).catch((error: unknown) =>
        log.error({ worker: slot.index, err: error }, 'restarted worker failed'),
      );
    }, wait).unref();
  };

  const ping = async (slot: Slot): Promise<void> => {
    const worker = slot.worker;
    if (slot.state !== 'running' || worker === undefined) return;
    const answer = await request(slot, (id) => ({ kind: 'ping', id }), PING_INTERVAL_MS);
    if (slot.worker !== worker || slot.state !== 'running') return;
    slot.missed = answer?.kind === 'pong' ? 0 : slot.missed + 1;
    if (slot.missed < MISSED_PINGS) return;
    log.error(
      { worker: slot.index, workerPid: worker.process.pid, missed: slot.missed },
      'worker stopped answering; killing it',
    );
    worker.process.kill('SIGKILL');
  };
  let pinging: NodeJS.Timeout | undefined;

  const reports = async (): Promise<(WorkerReport | undefined)[]> =>
    Promise.all(
      slots.map(async (slot) => {
        if (slot.state !== 'running') return undefined;
        const answer = await request(slot, (id) => ({ kind: 'ask', id }), REPORT_TIMEOUT_MS);
        return answer?.kind === 'report' ? answer : undefined;
      }),
    );

  const outcome = (result: ReloadResult, more: Partial<ReloadOutcome> = {}): ReloadOutcome => {
    lastReload = { result, hash: inForce.hash, at: new Date().toISOString(), ...more };
    metrics.configReloads.inc({ result });
    return lastReload;
  };

  /** Sends `text` to every running worker; the outcome of each (undefined: no answer in time). */
  const reloadWorkers = (text: ConfigText, running: readonly Slot[]) =>
    Promise.all(
      running.map(async (slot) => {
        const answer = await request(slot, (id) => ({ kind: 'reload', id, ...text }), RELOAD_TIMEOUT_MS);
        return answer?.kind === 'reloaded' ? answer.outcome : undefined;
      }),
    );

  const catchUp = async (slot: Slot): Promise<void> => {
    const [result] = await reloadWorkers(inForce, [slot]);
    if (result?.result === 'ok' || result?.result === 'unchanged') slot.given = inForce;
    else
      log.error(
        { worker: slot.index, err: result?.error },
        'a restarted worker could not take the configuration in force',
      );
  };

  const reloadNow = async (): Promise<ReloadOutcome> => {
    if (phase !== 'running') return outcome('failed', { error: `the gateway is ${phase}` });
    let text: string;
    let next: Config;
    try {
      text = readConfigText(configFile);
      lastRead = text;
      next = parseConfigFileText(configFile, text, process.env);
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      log.error({ err: message }, 'configuration reload refused; the running configuration is unchanged');
      return outcome('invalid', { error: message });
    }
    const hash = configHash(next);
    if (hash === inForce.hash) return outcome('unchanged');
    const running = slots.filter((slot) => slot.state === 'running');
    const results = await reloadWorkers({ text, file: configFile }, running);
    const { failures, rollBack } = fleetVerdict(running, results);
    if (failures.length > 0) {
      // Back to one configuration: those that may hold the new one get the previous one again.
      await reloadWorkers(inForce, rollBack);
      log.error({ failures }, 'configuration reload failed in a worker; the fleet stays on the previous one');
      return outcome('failed', { error: failures.join('\n') });
    }
    const needsRestart = results.find((result) => result?.needsRestart)?.needsRestart ?? [];
    inForce = { text, file: configFile, config: next, hash, loadedAt: Date.now() };
    log.info({ hash, workers: running.length }, 'configuration reloaded in every worker');
    // A worker that came up while this reload went through the others started on the old text.
    for (const slot of slots) {
      if (slot.state === 'running' && !running.includes(slot) && slot.given?.text !== inForce.text)
        void catchUp(slot);
    }
    return outcome('ok', {
      ...(results[0]?.listeners ? { listeners: results[0].listeners } : {}),
      ...(needsRestart.length > 0 ? { needsRestart } : {}),
    });
  };

  const serial = serialReloads(reloadNow);
  const reload = (): Promise<ReloadOutcome> => serial(undefined);

  const status = async (): Promise<Record<string, unknown>> => {
    const answers = await reports();
    const first = answers.find((answer) => answer !== undefined)?.status ?? {};
    const sum = (key: string): number =>
      answers.reduce(
        (total, answer) => total + Number((answer?.status.totals as Record<string, number>)?.[key] ?? 0),
        0,
      );
    return {
      ...first,
      phase,
      totals: { tunnels: sum('tunnels'), handshakes: sum('handshakes'), requests: sum('requests') },
      limitStore: fleetLimitStore(answers.map((answer) => answer?.status.limitStore)),
      configuration: {
        hash: inForce.hash,
        loadedAt: new Date(inForce.loadedAt).toISOString(),
        lastReload: lastReload ?? null,
      },
      workers: slots.map((slot, index) => ({
        index: slot.index,
        pid: slot.worker?.process.pid ?? null,
        state: slot.state,
        restarts: slot.restarts,
        phase: answers[index]?.status.phase ?? null,
        totals: answers[index]?.status.totals ?? null,
        configuration: (answers[index]?.status.configuration as { hash?: string } | undefined)?.hash ?? null,
      })),
    };
  };

  const closeAll = async (immediate: boolean, drainMs: number): Promise<void> => {
    for (const slot of slots) send(slot, { kind: 'shutdown', immediate });
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, drainMs + EXIT_GRACE_MS);
    });
    await Promise.race([Promise.all(exits.values()), deadline]);
    clearTimeout(timer);
    for (const slot of slots) {
      if (slot.state !== 'exited') {
        log.warn({ worker: slot.index }, 'worker did not exit in time; killing it');
        slot.worker?.process.kill('SIGKILL');
      }
    }
    await Promise.all(exits.values());
    await admin?.close();
  };

  return {
    async start() {
      cluster.setupPrimary({ silent: false });
      try {
        await Promise.all(slots.map((slot) => fork(slot)));
        // A shutdown began while the workers started: it has told them to stop.
        if (phase !== 'starting') return;
        if (config.admin.enabled) {
          admin = await listenAdmin(
            {
              metrics: {
                render: async () =>
                  metrics.render((await reports()).flatMap((answer) => (answer ? [answer.metrics] : []))),
                contentType: metrics.contentType,
              },
              log,
              isReady: async () => phase === 'running' && (await reports()).some((answer) => answer?.ready),
              status,
              reload,
            },
            config.admin.address,
            config.admin.port,
          );
        }
      } catch (error) {
        phase = 'draining';
        await closeAll(true, 0);
        throw error;
      }
      if (phase !== 'starting') return;
      phase = 'running';
      pinging = setInterval(() => {
        for (const slot of slots) void ping(slot);
      }, PING_INTERVAL_MS);
      pinging.unref();
      log.info({ workers: slots.length }, 'every worker serving');
    },
    shutdown(options: ShutdownOptions = {}) {
      const immediate = options.immediate ?? false;
      if (stopping !== undefined) {
        if (immediate) for (const slot of slots) send(slot, { kind: 'shutdown', immediate });
        return stopping;
      }
      phase = 'stopping';
      clearInterval(pinging);
      // drainTimeout counts from the signal, drain delay included.
      stopping = closeAll(immediate, inForce.config.shutdown.drainTimeout);
      return stopping;
    },
    phase: () => phase,
    reload,
    reloadSettings: () => inForce.config.reload,
    lastRead: () => lastRead,
  };
}

/** The fleet's limit store: up when every worker that answered says so, its leases summed. */
function fleetLimitStore(states: readonly unknown[]): LimitStoreState | null {
  const known = states.filter(
    (state): state is LimitStoreState => typeof state === 'object' && state !== null,
  );
  const [first] = known;
  if (first === undefined) return null;
  return {
    store: first.store,
    up: known.every((state) => state.up),
    leases: known.reduce((total, state) => total + state.leases, 0),
  };
}
