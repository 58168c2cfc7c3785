/**
 * A backend as the gateway uses it: where it is, its weight, how many tunnels and requests it
 * holds and whether it takes new connections; and the TLS settings used toward https:// backends.
 * A backend is one address: a configured URL, or one address that DNS discovery found for a
 * configured entry (`createBackend` builds both).
 */
import { isIP } from 'node:net';

/** Whether a backend takes new connections: `up`, `down` (failing its checks), `draining` (leaving the pool). */
export type BackendState = 'up' | 'down' | 'draining';

export interface Backend {
  /**
   * The address it is reached at, as an origin (`http://10.0.0.7:8080`): its identity, which
   * sticky keys hash on and the health checks and drains track. The same on every replica that
   * sees the same address.
   */
  readonly id: string;
  /**
   * The configured entry it comes from (`http://chat.ns.svc:8080`): its metric label. Labels come
   * from the configuration only, so their number stays bounded however many addresses discovery
   * finds. For a backend listed by address, the label is its id.
   */
  readonly label: string;
  readonly poolName: string;
  /** Where connections go: the address, with the entry's scheme. */
  readonly url: URL;
  readonly secure: boolean;
  readonly host: string;
  readonly port: number;
  /** The Host header sent when the pool does not preserve the client's: the entry's host and port. */
  readonly authority: string;
  /** The TLS server name (SNI, certificate check) when the pool names none: the entry's host name, if it is one. */
  readonly serverName: string | undefined;
  /** Relative share of new connections as configured (a reload may change it). */
  configuredWeight: number;
  /** The share the balancers use now: the configured weight, less while the backend warms up (slow start). */
  weight: number;
  /** Tunnels open to this backend now. */
  activeTunnels: number;
  /** Plain HTTP requests in flight to it now (long-polls and streams are load as tunnels are). */
  activeRequests: number;
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

/** Where discovery found an entry's backend: an IP address and the port to use. */
export interface FoundAddress {
  readonly address: string;
  readonly port: number;
}

/** A host as URLs write it: IPv6 addresses in brackets. */
function urlHost(address: string): string {
  return isIP(address) === 6 ? `[${address}]` : address;
}

/**
 * The backend for a configured `entry` URL of pool `poolName`: at the URL's own host and port, or
 * at an address that discovery found for it.
 */
export function createBackend(
  poolName: string,
  entry: { readonly url: string; readonly weight: number },
  found?: FoundAddress,
): Backend {
  const configured = new URL(entry.url);
  const secure = configured.protocol === 'https:';
  const url = found ? new URL(`${configured.protocol}//${urlHost(found.address)}:${found.port}`) : configured;
  const bare = (hostname: string): string => (hostname.startsWith('[') ? hostname.slice(1, -1) : hostname);
  // An SRV name (`_http._tcp.chat.ns.svc`) names the service after its two labels.
  const entryHost = bare(configured.hostname).replace(/^_[^.]+\._[^.]+\./, '');
  return {
    id: url.origin,
    label: found ? configured.origin : url.origin,
    poolName,
    url,
    secure,
    host: bare(url.hostname),
    port: url.port ? Number(url.port) : secure ? 443 : 80,
    authority: found && !configured.port ? `${urlHost(entryHost)}:${found.port}` : configured.host,
    serverName: isIP(entryHost) === 0 ? entryHost : undefined,
    configuredWeight: entry.weight,
    weight: entry.weight,
    activeTunnels: 0,
    activeRequests: 0,
    state: 'up',
    stats: { picks: 0, failures: 0, lastFailureAt: undefined },
  };
}
