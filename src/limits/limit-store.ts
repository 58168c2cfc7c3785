/**
 * Where the limits that count across connections keep their counts: the per-client connection cap
 * and handshake rate (admission), and the per-subject connection cap (after the token check). The
 * memory store counts in this process (src/limits/memory-store.ts); the Redis store counts for
 * every replica and worker that shares one Redis (src/limits/redis-store.ts). A stage asks the
 * store once per upgrade; what it gets back is a lease, held while the client's socket is open and
 * given back when it closes, or the refusal to send.
 */
import type { Socket } from 'node:net';
import type { AdmissionSettings } from '../config/admission-schema.ts';
import type { Rejection } from '../errors/rejection.ts';

/** A connection's hold on what it counts against, given back once, when the connection ends. */
export interface Lease {
  release(): void;
}

/** The store's answer: a lease to hold, or the refusal to send. */
export type Verdict = { readonly lease: Lease } | { readonly refused: Rejection };

export interface LimitStore {
  /** One more upgrade from `address` under `admission.perClient`: a connection slot and a handshake token. */
  admitClient(address: string): Verdict | Promise<Verdict>;
  /** One more connection for the token subject `subject` (its `iss` and `sub`), under `max`. */
  holdSubject(subject: string, max: number): Verdict | Promise<Verdict>;
  /** The limits of a reloaded configuration; what is open stays counted against them. */
  reconfigure(settings: AdmissionSettings): void;
  /** Client addresses this process keeps a count or a bucket for now. */
  readonly trackedClients: number;
  /** Subjects with a connection open through this process now. */
  readonly trackedSubjects: number;
  /** What `/status.json` and the metrics show of the store. */
  state(): LimitStoreState;
  /** Connects (bounded in time: limits work, by their failure setting, while it is not up). */
  start(): Promise<void>;
  /** Gives back what is held and disconnects. */
  close(): Promise<void>;
}

export interface LimitStoreState {
  readonly store: 'memory' | 'redis';
  /** Whether the store decides upgrades now (always, for the memory store). */
  readonly up: boolean;
  /** Leases this process holds in a shared store. */
  readonly leases: number;
}

/** Nothing held: the lease of a connection no limit counts. */
export const NO_LEASE: Lease = { release: () => {} };

/**
 * Keeps `verdict`'s lease while `socket` is open, releasing it when the socket closes; a socket that
 * closed while the store answered gives the lease back at once (it would never close again).
 */
export function holdWhileOpen(
  verdict: Verdict | Promise<Verdict>,
  socket: Socket,
  stage: string,
): Rejection | undefined | Promise<Rejection | undefined> {
  if (verdict instanceof Promise) return verdict.then((settled) => hold(settled, socket, stage));
  return hold(verdict, socket, stage);
}

function hold(verdict: Verdict, socket: Socket, stage: string): Rejection | undefined {
  if ('refused' in verdict) return verdict.refused;
  const { lease } = verdict;
  if (socket.closed) {
    lease.release();
    return { code: 'CLIENT_GONE', detail: `while ${stage} waited for the limit store` };
  }
  // 'close' comes once: `on` without the wrapper `once` allocates for each socket.
  if (lease !== NO_LEASE) socket.on('close', () => lease.release());
  return undefined;
}
