/**
 * The phases of a gateway's life and what a reload reports. The phases, shared by the parts that behave differently as it stops:
 * `stopping` is the drain delay after SIGTERM (not ready, still serving, keep-alive connections
 * closed after their current response), `draining` refuses new work and closes tunnels.
 */
export type Phase = 'starting' | 'running' | 'stopping' | 'draining';

export interface ShutdownOptions {
  /** Skip `shutdown.drainDelay` and start draining at once (SIGINT: a person at a terminal). */
  readonly immediate?: boolean;
}

/** How a configuration reload ended. */
export type ReloadResult = 'ok' | 'unchanged' | 'invalid' | 'failed';

export interface ReloadOutcome {
  readonly result: ReloadResult;
  /** The digest of the configuration in force afterwards (the previous one unless `ok`). */
  readonly hash: string;
  /** When the reload ended (ISO 8601). */
  readonly at: string;
  /** Why it was refused: for `invalid`, every problem with its file, line and field. */
  readonly error?: string;
  /** Settings that changed but only take effect at the next start. */
  readonly needsRestart?: readonly string[];
  /** Listeners opened, closed, changed in place or replaced. */
  readonly listeners?: { readonly [change: string]: readonly string[] };
}

/**
 * Runs reloads one at a time, and folds the requests that arrive while one runs into the next:
 * however many come meanwhile (a burst of SIGHUPs, a script polling `POST /reload`), one more
 * reload follows, with the last request's loader, and they all get its outcome. Nothing queues
 * without bound.
 */
export function serialReloads<L>(
  run: (load: L) => Promise<ReloadOutcome>,
): (load: L) => Promise<ReloadOutcome> {
  let running: Promise<unknown> = Promise.resolve();
  /** The reload waiting for the one running: what it will load, and its outcome. */
  let waiting: { readonly use: (load: L) => void; readonly outcome: Promise<ReloadOutcome> } | undefined;
  return (load) => {
    if (waiting !== undefined) {
      waiting.use(load);
      return waiting.outcome;
    }
    let latest = load;
    const outcome = running.then(() => {
      waiting = undefined;
      return run(latest);
    });
    waiting = { use: (next) => (latest = next), outcome };
    running = outcome.catch(() => {});
    return outcome;
  };
}
