/**
 * What the supervisor and its workers say to each other over the cluster's IPC channel. The
 * supervisor sends the configuration as text (read and validated once), so every worker parses
 * the same bytes and the fleet runs one configuration even if the file changes meanwhile; it asks
 * for metrics and status when the admin server is asked, pings them (a worker whose event loop
 * is stuck stops answering), and tells the workers to reload and to drain. Requests carry an id that the answer repeats.
 */
import type { MetricObjectWithValues, MetricValue } from 'prom-client';
import type { ReloadOutcome } from '../lifecycle.ts';

/** A configuration as the workers load it. */
export interface ConfigText {
  readonly text: string;
  /** The file it was read from, for error messages and relative paths. */
  readonly file: string;
}

export type ToWorker =
  | ({ readonly kind: 'start' } & ConfigText)
  | ({ readonly kind: 'reload'; readonly id: number } & ConfigText)
  | { readonly kind: 'shutdown'; readonly immediate: boolean }
  | { readonly kind: 'ask'; readonly id: number }
  | { readonly kind: 'ping'; readonly id: number };

export type WorkerMetrics = MetricObjectWithValues<MetricValue<string>>[];

/** What a worker reports of itself when asked. */
export interface WorkerReport {
  readonly ready: boolean;
  readonly metrics: WorkerMetrics;
  /** Its status report, as `/status.json` of one gateway. */
  readonly status: Record<string, unknown>;
}

export type FromWorker =
  | { readonly kind: 'started' }
  | { readonly kind: 'failed'; readonly error: string }
  | { readonly kind: 'reloaded'; readonly id: number; readonly outcome: ReloadOutcome }
  | ({ readonly kind: 'report'; readonly id: number } & WorkerReport)
  | { readonly kind: 'pong'; readonly id: number };

/** Whether `value` is a message of this protocol (the channel carries nothing else, but a check is cheap). */
export function isMessage<T extends { kind: string }>(value: unknown): value is T {
  return (
    typeof value === 'object' && value !== null && typeof (value as { kind?: unknown }).kind === 'string'
  );
}

/** The side of a worker a message is sent to (a cluster `Worker`, or the `ChildProcess` under it). */
export interface MessageTarget {
  send(message: unknown, callback: (error: Error | null) => void): boolean;
}

/**
 * Sends `message`; a send that fails (a worker that has just exited can still look connected, and
 * its pipe answers EPIPE) goes to `undelivered` instead of becoming an error event that nobody
 * handles, which would end the supervisor. The worker's exit is handled where it is watched.
 */
export function sendMessage(
  target: MessageTarget,
  message: unknown,
  undelivered: (error: Error) => void,
): void {
  target.send(message, (error) => {
    if (error) undelivered(error);
  });
}
