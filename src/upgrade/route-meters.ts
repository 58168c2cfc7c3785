/**
 * The metric cells one route's upgrades and tunnels count in, bound once per route (a reload's
 * new route objects get their own): every handshake then reaches its counters by a property read
 * instead of building a label key and looking it up, and every tunnel of the route shares one
 * observer. The closed-tunnel counts, whose labels are known only when a tunnel ends, are found
 * then, by who closed and the close code (a number), without building a label key.
 */
import type { CountCell } from '../observability/count-cells.ts';
import type { HistogramCell } from '../observability/histogram-cells.ts';
import { closeCodeLabel, type GatewayMetrics } from '../observability/metrics.ts';
import type { TunnelCounters, TunnelObserver, TunnelSummary } from '../tunnel/tunnel.ts';

export class RouteMeters {
  readonly route: string;
  readonly pool: string;
  /** Where the route's tunnels report limit hits, throttling, ping round trips and dead peers. */
  readonly observer: TunnelObserver;
  /** The running message and byte totals, one per direction, shared by the route's tunnels. */
  readonly counters: TunnelCounters;
  /** The route's open tunnels (wsgate_connections_active). */
  readonly open: CountCell;
  readonly handshakeSeconds: HistogramCell;
  readonly tunnelSeconds: HistogramCell;
  readonly #metrics: GatewayMetrics;
  readonly #upgradedBy = new Map<string, CountCell>();
  readonly #openOnBackend = new WeakMap<object, CountCell>();
  /** Closed-tunnel cells by initiator, then by close code (1000–1015) or by the label of the others. */
  readonly #closedBy = new Map<string, Map<number | string, CountCell>>();

  constructor(metrics: GatewayMetrics, route: string, pool: string) {
    this.#metrics = metrics;
    this.route = route;
    this.pool = pool;
    this.observer = {
      limitHit: (limit, action) => metrics.limitHits.inc({ route, limit, action }),
      throttled: (direction, seconds) => metrics.throttledSeconds.inc({ route, direction }, seconds),
      pingRtt: (side, seconds) => metrics.pingRtt.observe({ route, side }, seconds),
      deadPeer: (side) => metrics.deadPeers.inc({ route, side }),
    };
    this.counters = {
      client_to_backend: metrics.trafficCell(route, 'client_to_backend'),
      backend_to_client: metrics.trafficCell(route, 'backend_to_client'),
    };
    this.open = metrics.openTunnelsCell(route, pool);
    this.handshakeSeconds = metrics.handshakeDuration.cell(route);
    this.tunnelSeconds = metrics.connectionDuration.cell(route);
  }

  /** The count of the route's upgrades through the listener named `listener`. */
  upgraded(listener: string): CountCell {
    let cell = this.#upgradedBy.get(listener);
    if (cell === undefined) {
      cell = this.#metrics.upgradedCell(listener, this.route);
      this.#upgradedBy.set(listener, cell);
    }
    return cell;
  }

  /** The open tunnels to `backend` (wsgate_backend_connections_active), found once per backend. */
  openOn(backend: { readonly label: string }): CountCell {
    let cell = this.#openOnBackend.get(backend);
    if (cell === undefined) {
      cell = this.#metrics.backendTunnelsCell(this.pool, backend.label);
      this.#openOnBackend.set(backend, cell);
    }
    return cell;
  }

  /** Counts a tunnel of the route that ended: how long it lasted, who closed it and with what. */
  ended(summary: TunnelSummary): void {
    this.tunnelSeconds.observe(summary.durationSeconds);
    this.#closedCell(summary.initiator, summary.closeCode).value++;
    if (summary.errorCode) this.#metrics.tunnelErrors.inc({ route: this.route, code: summary.errorCode });
  }

  #closedCell(initiator: string, code: number | undefined): CountCell {
    let byCode = this.#closedBy.get(initiator);
    if (byCode === undefined) {
      byCode = new Map();
      this.#closedBy.set(initiator, byCode);
    }
    // A code of its own label is a key as it is; the others (4xxx, 3xxx, invalid, none) by their
    // label, constant strings, so that no peer can grow the map past a few dozen keys.
    const key = code !== undefined && code >= 1000 && code <= 1015 ? code : closeCodeLabel(code);
    let cell = byCode.get(key);
    if (cell === undefined) {
      cell = this.#metrics.closedCell(this.route, initiator, closeCodeLabel(code));
      byCode.set(key, cell);
    }
    return cell;
  }
}
