/**
 * A backend as the gateway uses it: where it is, its weight, how many tunnels it holds and
 * whether it takes new connections; and the TLS settings used toward https:// backends.
 */

/** Whether a backend takes new connections: `up`, `down` (failing its checks), `draining`. */
export type BackendState = 'up' | 'down' | 'draining';

export interface Backend {
  /**
   * The backend's origin (`http://host:port`) as configured: its metric label, and the identity
   * sticky keys hash on. Labels come from the configuration only (a backend found by discovery is
   * labelled by the entry that found it), so their number is bounded by the configuration.
   */
  readonly id: string;
  readonly poolName: string;
  readonly url: URL;
  readonly secure: boolean;
  readonly host: string;
  readonly port: number;
  readonly weight: number;
  /** Tunnels open to this backend now. */
  activeTunnels: number;
  /** Whether it takes new connections; only `up` backends are chosen while any is up. */
  state: BackendState;
  /** What the status page shows of it: choices, failures of real traffic, the last one. */
  readonly stats: BackendStats;
}

export interface BackendStats {
  /** Times it was the first choice for a connection or request. */
  picks: number;
  /** Failures of real traffic (connects, 5xx to upgrades). */
  failures: number;
  /** When the last failure happened (epoch ms), if one did. */
  lastFailureAt: number | undefined;
}

/** TLS settings used when connecting to https:// backends. */
export interface BackendTls {
  readonly ca: Buffer | undefined;
  readonly servername: string | undefined;
  readonly rejectUnauthorized: boolean;
}
