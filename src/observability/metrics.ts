/**
 * Every Prometheus metric the gateway exports, in one place, on a registry owned by one gateway
 * (never prom-client's global one, so several gateways can live in one process). Names follow
 * Prometheus conventions: `wsgate_` prefix, base units (seconds, bytes), `_total` for counters.
 * Labels carry only names from the config (listener, route, pool, backend) and codes from
 * `errors/codes.ts`, never addresses, paths or subjects, so cardinality is bounded by the config.
 * `docs/metrics.md` lists them; a test keeps the two in sync.
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import { type CountCell, CountCells } from './count-cells.ts';
import { CellHistogram } from './histogram-cells.ts';

export type { CountCell } from './count-cells.ts';

/** Relay direction, as used in labels and logs. */
export type Direction = 'client_to_backend' | 'backend_to_client';
/** Who sent the first close frame or dropped the connection first. */
export type Initiator = 'client' | 'backend' | 'gateway';

/**
 * Running totals of one route and direction. Tunnels add to these plain numbers on the hot path
 * (per chunk, per message); they reach the Prometheus counters when metrics are collected, which
 * keeps label hashing out of the data path.
 */
export interface TrafficCell {
  messages: number;
  bytes: number;
}

interface TrafficEntry {
  readonly labels: { readonly route: string; readonly direction: Direction };
  readonly cell: TrafficCell;
  flushedMessages: number;
  flushedBytes: number;
}

const MISNAMED_DEFAULT_GAUGES = [
  'nodejs_active_handles_total',
  'nodejs_active_requests_total',
  'nodejs_active_resources_total',
];

const HANDSHAKE_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const PING_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const CONNECTION_BUCKETS = [1, 5, 30, 60, 300, 900, 1800, 3600, 7200, 14400, 43200, 86400];

export class GatewayMetrics {
  readonly registry = new Registry();
  readonly #traffic = new Map<string, TrafficEntry>();
  /** Hot-path counts, read at collection: upgrades that succeeded, picks, open and ended tunnels. */
  readonly #upgraded = new CountCells();
  readonly #picked = new CountCells();
  readonly #openByRoute = new CountCells();
  readonly #openByBackend = new CountCells();
  readonly #closed = new CountCells();

  readonly upgrades: Counter<'listener' | 'route' | 'code'> = new Counter({
    name: 'wsgate_upgrades_total',
    help: 'WebSocket upgrade requests by outcome code (UPGRADED on success).',
    labelNames: ['listener', 'route', 'code'] as const,
    registers: [this.registry],
    collect: () => this.#upgraded.addTo(this.upgrades),
  });

  readonly handshakeDuration = new CellHistogram({
    name: 'wsgate_handshake_duration_seconds',
    help: 'Time from the upgrade request to the 101 written to the client, for successful upgrades.',
    labelName: 'route',
    buckets: HANDSHAKE_BUCKETS,
    registry: this.registry,
  });

  readonly connectionsActive: Gauge<'route' | 'pool'> = new Gauge({
    name: 'wsgate_connections_active',
    help: 'WebSocket tunnels currently open.',
    labelNames: ['route', 'pool'] as const,
    registers: [this.registry],
    collect: () => this.#openByRoute.setOn(this.connectionsActive),
  });

  readonly connectionDuration = new CellHistogram({
    name: 'wsgate_connection_duration_seconds',
    help: 'Lifetime of WebSocket tunnels, from the 101 to teardown.',
    labelName: 'route',
    buckets: CONNECTION_BUCKETS,
    registry: this.registry,
  });

  readonly messages = new Counter({
    name: 'wsgate_messages_total',
    help: 'WebSocket data messages relayed (text and binary, fragments counted once).',
    labelNames: ['route', 'direction'] as const,
    registers: [this.registry],
    collect: () => this.#flushTraffic(),
  });

  readonly bytes = new Counter({
    name: 'wsgate_bytes_total',
    help: 'WebSocket bytes relayed after the handshake, frame headers included, as on the wire.',
    labelNames: ['route', 'direction'] as const,
    registers: [this.registry],
    collect: () => this.#flushTraffic(),
  });

  readonly closes: Counter<'route' | 'initiator' | 'code'> = new Counter({
    name: 'wsgate_closes_total',
    help: 'Ended tunnels by who closed first and the close code (1006 when no close frame was seen).',
    labelNames: ['route', 'initiator', 'code'] as const,
    registers: [this.registry],
    collect: () => this.#closed.addTo(this.closes),
  });

  readonly tunnelErrors = new Counter({
    name: 'wsgate_tunnel_errors_total',
    help: 'Tunnels that ended for a reason other than a close handshake between the peers, by code.',
    labelNames: ['route', 'code'] as const,
    registers: [this.registry],
  });

  readonly upstreamConnectDuration = new CellHistogram({
    name: 'wsgate_upstream_connect_duration_seconds',
    help: 'Time to connect to a backend (TCP and TLS), for successful connects.',
    labelName: 'pool',
    buckets: HANDSHAKE_BUCKETS,
    registry: this.registry,
  });

  readonly upstreamConnectFailures = new Counter({
    name: 'wsgate_upstream_connect_failures_total',
    help: 'Failed attempts to connect to a backend, by outcome code.',
    labelNames: ['pool', 'backend', 'code'] as const,
    registers: [this.registry],
  });

  readonly backendConnectionsActive: Gauge<'pool' | 'backend'> = new Gauge({
    name: 'wsgate_backend_connections_active',
    help: 'WebSocket tunnels currently open per backend.',
    labelNames: ['pool', 'backend'] as const,
    registers: [this.registry],
    collect: () => this.#openByBackend.setOn(this.backendConnectionsActive),
  });

  readonly httpRequests = new Counter({
    name: 'wsgate_http_requests_total',
    help: 'Plain HTTP requests proxied (long-polling, SSE, streaming), by HTTP status sent.',
    labelNames: ['route', 'status'] as const,
    registers: [this.registry],
  });

  readonly proxyProtocolErrors = new Counter({
    name: 'wsgate_proxy_protocol_errors_total',
    help: 'Connections a listener with proxyProtocol closed before any TLS or HTTP byte, by reason (invalid, too_large, wrong_version, timeout, incomplete, untrusted_peer).',
    labelNames: ['listener', 'reason'] as const,
    registers: [this.registry],
  });

  readonly configReloads = configReloadsCounter(this.registry);

  readonly configInfo = new Gauge({
    name: 'wsgate_config_info',
    help: 'The configuration in force: 1, labelled with the digest of its validated settings (the same settings give the same hash on every instance).',
    labelNames: ['hash'] as const,
    aggregator: 'max',
    registers: [this.registry],
  });

  readonly configLoaded = new Gauge({
    name: 'wsgate_config_loaded_timestamp_seconds',
    help: 'When the configuration in force was loaded (Unix time).',
    aggregator: 'max',
    registers: [this.registry],
  });

  readonly tlsReloads = new Counter({
    name: 'wsgate_tls_reloads_total',
    help: 'Certificate and key pairs read again after their files changed, by result (reloaded: served to new connections; refused: unreadable, unparsable or mismatched, the previous pair stays).',
    labelNames: ['listener', 'certificate', 'result'] as const,
    registers: [this.registry],
  });

  readonly tlsCertificateExpiry = new Gauge({
    name: 'wsgate_tls_certificate_expiry_timestamp_seconds',
    help: 'When the certificate a listener serves expires (its notAfter), in Unix seconds, by certificate (default, or the first name of an SNI entry).',
    labelNames: ['listener', 'certificate'] as const,
    aggregator: 'min',
    registers: [this.registry],
  });

  /** Client addresses the admission limits remember now (set by the gateway). */
  trackedClients: () => number = () => 0;

  readonly admissionTracked = new Gauge({
    name: 'wsgate_admission_tracked_clients',
    help: 'Client addresses the per-client admission limits remember now (at most admission.maxTrackedClients).',
    registers: [this.registry],
    collect: () => {
      this.admissionTracked.set(this.trackedClients());
    },
  });

  /** The limit store's state (set by the gateway). */
  limitStore: () => { up: boolean; leases: number } = () => ({ up: true, leases: 0 });

  readonly limitStoreUp = new Gauge({
    name: 'wsgate_limit_store_up',
    help: 'Whether the limit store decides upgrades now: 0 while the Redis store cannot be asked (upgrades are decided as whenUnreachable says); always 1 for the memory store.',
    aggregator: 'min',
    registers: [this.registry],
    collect: () => {
      this.limitStoreUp.set(this.limitStore().up ? 1 : 0);
    },
  });

  readonly limitStoreLeases = new Gauge({
    name: 'wsgate_limit_store_leases',
    help: 'Connection leases this gateway holds in the Redis limit store (refreshed every third of leaseTtl).',
    registers: [this.registry],
    collect: () => {
      this.limitStoreLeases.set(this.limitStore().leases);
    },
  });

  readonly limitStoreUnreachable = new Counter({
    name: 'wsgate_limit_store_unreachable_total',
    help: "Upgrades decided without the Redis limit store, by limit (client, subject) and action (admitted: by this process's own counts; refused: 503).",
    labelNames: ['limit', 'action'] as const,
    registers: [this.registry],
  });

  readonly limitStoreSeconds = new Histogram({
    name: 'wsgate_limit_store_seconds',
    help: 'Time the Redis limit store took to answer, by operation (client, subject: a decision during an upgrade; refresh: extending held leases), failures and timeouts included.',
    labelNames: ['operation'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
    registers: [this.registry],
  });

  readonly originRefusals = new Counter({
    name: 'wsgate_origin_refusals_total',
    help: 'Requests refused (403) by the Origin policy, by route and reason (not_allowed, missing, malformed).',
    labelNames: ['route', 'reason'] as const,
    registers: [this.registry],
  });

  readonly backendUp = new Gauge({
    name: 'wsgate_backend_up',
    help: 'Addresses of a configured backend that take new connections, by pool and backend: 1 or 0 for a backend listed by address, how many of its addresses are up for a discovered one.',
    labelNames: ['pool', 'backend'] as const,
    aggregator: 'min',
    registers: [this.registry],
  });

  readonly backendAddresses = new Gauge({
    name: 'wsgate_backend_addresses',
    help: 'Addresses in the pool from a discovered backend (the last set its lookups found), by pool and backend.',
    labelNames: ['pool', 'backend'] as const,
    aggregator: 'max',
    registers: [this.registry],
  });

  readonly discoveryLookups = new Counter({
    name: 'wsgate_discovery_lookups_total',
    help: 'DNS lookups of discovered backends, by pool, backend and result (ok; failed: an error, a timeout or no address, and the last set stays).',
    labelNames: ['pool', 'backend', 'result'] as const,
    registers: [this.registry],
  });

  readonly ejections = new Counter({
    name: 'wsgate_backend_ejections_total',
    help: 'Backends ejected by passive health checking after consecutive failures of real traffic, by pool and backend.',
    labelNames: ['pool', 'backend'] as const,
    registers: [this.registry],
  });

  readonly healthChecks = new Counter({
    name: 'wsgate_health_checks_total',
    help: 'Active health checks of backends, by pool, backend and result (ok, failed).',
    labelNames: ['pool', 'backend', 'result'] as const,
    registers: [this.registry],
  });

  readonly picks: Counter<'pool' | 'algorithm'> = new Counter({
    name: 'wsgate_balancer_picks_total',
    help: 'Backend choices for new connections and requests, by pool and what made them: sticky (consistent hashing on a sticky key), round_robin or least_connections.',
    labelNames: ['pool', 'algorithm'] as const,
    registers: [this.registry],
    collect: () => this.#picked.addTo(this.picks),
  });

  readonly authRefusals = new Counter({
    name: 'wsgate_auth_refusals_total',
    help: 'Requests refused by the token check, by route and reason (missing, malformed, algorithm, unknown_key, signature, expired, not_yet_valid, issuer, audience, no_expiry, claims, keys_unavailable).',
    labelNames: ['route', 'reason'] as const,
    registers: [this.registry],
  });

  readonly jwksFetches = new Counter({
    name: 'wsgate_jwks_fetches_total',
    help: "Fetches of a key set's JWKS URL, by key set and result (ok, error).",
    labelNames: ['key_set', 'result'] as const,
    registers: [this.registry],
  });

  readonly jwksKeys = new Gauge({
    name: 'wsgate_jwks_keys',
    help: 'Keys of a JWKS key set in use now; 0 means none was ever fetched and its tokens are refused.',
    labelNames: ['key_set'] as const,
    aggregator: 'min',
    registers: [this.registry],
  });

  readonly limitHits = new Counter({
    name: 'wsgate_limit_hits_total',
    help: 'Times a WebSocket limit was hit, by route, limit (message_size, frame_size, message_rate, byte_rate, idle_timeout, lifetime) and action (close, or throttle: a pause of the sender).',
    labelNames: ['route', 'limit', 'action'] as const,
    registers: [this.registry],
  });

  readonly throttledSeconds = new Counter({
    name: 'wsgate_throttled_seconds_total',
    help: 'Time senders spent paused by a throttling rate limit, by route and direction.',
    labelNames: ['route', 'direction'] as const,
    registers: [this.registry],
  });

  readonly pingRtt = new Histogram({
    name: 'wsgate_ping_rtt_seconds',
    help: "Round-trip time of the gateway's keepalive pings, from the ping written to its pong read, by route and side.",
    labelNames: ['route', 'side'] as const,
    buckets: PING_BUCKETS,
    registers: [this.registry],
  });

  readonly deadPeers = new Counter({
    name: 'wsgate_dead_peers_total',
    help: "Peers closed because they did not answer the gateway's keepalive ping in time, by route and side.",
    labelNames: ['route', 'side'] as const,
    registers: [this.registry],
  });

  /** Tunnels backed up now, by the direction whose receiver has not drained; tunnels count here. */
  readonly backpressure: Record<Direction, number> = { client_to_backend: 0, backend_to_client: 0 };

  readonly backpressured = new Gauge({
    name: 'wsgate_backpressured_tunnels',
    help: 'Tunnels whose writes in a direction wait for the receiving side to drain (the sender is paused).',
    labelNames: ['direction'] as const,
    registers: [this.registry],
    collect: () => {
      for (const direction of ['client_to_backend', 'backend_to_client'] as const) {
        this.backpressured.set({ direction }, this.backpressure[direction]);
      }
    },
  });

  readonly draining = new Gauge({
    name: 'wsgate_draining',
    help: '1 while the gateway is shutting down, else 0.',
    aggregator: 'max',
    registers: [this.registry],
  });

  readonly buildInfo = new Gauge({
    name: 'wsgate_build_info',
    help: 'Always 1; the labels tell the running version and Node.js version.',
    labelNames: ['version', 'nodejs'] as const,
    aggregator: 'max',
    registers: [this.registry],
  });

  constructor(version: string) {
    collectDefaultMetrics({ register: this.registry });
    // These default gauges repeat nodejs_active_{handles,requests,resources} under names that
    // break the counter-only `_total` convention (promtool check metrics flags them).
    for (const name of MISNAMED_DEFAULT_GAUGES) this.registry.removeSingleMetric(name);
    this.buildInfo.set({ version, nodejs: process.version }, 1);
    this.draining.set(0);
  }

  /** The count of successful upgrades (code UPGRADED) through `listener` to `route`. */
  upgradedCell(listener: string, route: string): CountCell {
    return this.#upgraded.cell(`${listener}\u0000${route}`, () => ({ listener, route, code: 'UPGRADED' }));
  }

  /** The count of tunnels of `route` ended, by who closed first and the close code's label. */
  closedCell(route: string, initiator: string, code: string): CountCell {
    return this.#closed.cell(`${route}\u0000${initiator}\u0000${code}`, () => ({ route, initiator, code }));
  }

  /** The count of backend choices in `pool` made by `algorithm`. */
  pickCell(pool: string, algorithm: string): CountCell {
    return this.#picked.cell(`${pool}\u0000${algorithm}`, () => ({ pool, algorithm }));
  }

  /** The open tunnels of `route` through `pool` (wsgate_connections_active). */
  openTunnelsCell(route: string, pool: string): CountCell {
    return this.#openByRoute.cell(`${route}\u0000${pool}`, () => ({ route, pool }));
  }

  /** The open tunnels to `backend` of `pool` (wsgate_backend_connections_active). */
  backendTunnelsCell(pool: string, backend: string): CountCell {
    return this.#openByBackend.cell(`${pool}\u0000${backend}`, () => ({ pool, backend }));
  }

  /** The running totals for a route and direction, shared by every tunnel on that route. */
  trafficCell(route: string, direction: Direction): TrafficCell {
    const key = `${route}\u0000${direction}`;
    let entry = this.#traffic.get(key);
    if (!entry) {
      entry = {
        labels: { route, direction },
        cell: { messages: 0, bytes: 0 },
        flushedMessages: 0,
        flushedBytes: 0,
      };
      this.#traffic.set(key, entry);
    }
    return entry.cell;
  }

  #flushTraffic(): void {
    for (const entry of this.#traffic.values()) {
      const { cell } = entry;
      if (cell.messages > entry.flushedMessages)
        this.messages.inc(entry.labels, cell.messages - entry.flushedMessages);
      if (cell.bytes > entry.flushedBytes) this.bytes.inc(entry.labels, cell.bytes - entry.flushedBytes);
      entry.flushedMessages = cell.messages;
      entry.flushedBytes = cell.bytes;
    }
  }

  /** The text exposition, as served on /metrics. */
  async render(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}

/**
 * The reload counter, in a gateway's registry and in a fleet supervisor's (which counts each
 * reload of the fleet once): one definition, so the two cannot drift apart.
 */
export function configReloadsCounter(registry: Registry): Counter<'result'> {
  return new Counter({
    name: 'wsgate_config_reloads_total',
    help: 'Configuration reloads, by result (ok: in force; unchanged: the same settings; invalid: refused by validation; failed: could not be applied, e.g. a listener could not bind). Only ok changes anything.',
    labelNames: ['result'] as const,
    registers: [registry],
  });
}

/** Bounded label for a close code: the exact code for registered ones, a class for private ones. */
export function closeCodeLabel(code: number | undefined): string {
  if (code === undefined) return '1006';
  if (code >= 4000 && code <= 4999) return '4xxx';
  if (code >= 3000 && code <= 3999) return '3xxx';
  if (code >= 1000 && code <= 1015) return String(code);
  return 'invalid';
}
