/**
 * The phases of a gateway's life, shared by the parts that behave differently as it stops:
 * `stopping` is the drain delay after SIGTERM (not ready, still serving, keep-alive connections
 * closed after their current response), `draining` refuses new work and closes tunnels.
 */
export type Phase = 'starting' | 'running' | 'stopping' | 'draining';

export interface ShutdownOptions {
  /** Skip `shutdown.drainDelay` and start draining at once (SIGINT: a person at a terminal). */
  readonly immediate?: boolean;
}
