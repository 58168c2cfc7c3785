/**
 * Picks the route for a request from its host and path. Among the routes whose host pattern and
 * path prefix both match, the most specific host wins (exact name, then the longest wildcard
 * suffix, then routes for any host), and then the longest path prefix. Matching is on the raw
 * request path, without decoding, so what is matched is exactly what the backend receives.
 */
import type { RouteConfig } from '../config/schema.ts';

/** A route as the data plane sees it: its name, its pool and the compiled match. */
export interface Route {
  readonly name: string;
  readonly poolName: string;
  readonly pathPrefix: string;
  readonly config: RouteConfig;
}

interface CompiledRoute {
  readonly route: Route;
  readonly exactHosts: ReadonlySet<string>;
  /** Wildcard suffixes, each with its leading dot: "*.example.com" → ".example.com". */
  readonly wildcardSuffixes: readonly string[];
  readonly anyHost: boolean;
}

/** Host specificity of a match: higher is more specific; -1 when the host does not match. */
function hostScore(compiled: CompiledRoute, host: string | undefined): number {
  if (host !== undefined && compiled.exactHosts.has(host)) return 1_000_000;
  let best = -1;
  if (host !== undefined) {
    for (const suffix of compiled.wildcardSuffixes) {
      if (host.length > suffix.length && host.endsWith(suffix)) best = Math.max(best, 1_000 + suffix.length);
    }
  }
  if (best === -1 && compiled.anyHost) best = 0;
  return best;
}

export class Router {
  readonly #routes: readonly CompiledRoute[];

  constructor(routes: Readonly<Record<string, RouteConfig>>) {
    this.#routes = Object.entries(routes).map(([name, config]) => ({
      route: { name, poolName: config.pool, pathPrefix: config.path, config },
      exactHosts: new Set(config.hosts.filter((host) => !host.startsWith('*.'))),
      wildcardSuffixes: config.hosts.filter((host) => host.startsWith('*.')).map((host) => host.slice(1)),
      anyHost: config.hosts.length === 0,
    }));
  }

  /** The best route for `host` (already normalized) and the request target `url`, if any. */
  match(host: string | undefined, url: string): Route | undefined {
    const queryAt = url.indexOf('?');
    const path = queryAt === -1 ? url : url.slice(0, queryAt);
    let best: Route | undefined;
    let bestHost = -1;
    let bestPath = -1;
    for (const compiled of this.#routes) {
      const prefix = compiled.route.pathPrefix;
      if (!path.startsWith(prefix)) continue;
      const score = hostScore(compiled, host);
      if (score < 0) continue;
      if (score > bestHost || (score === bestHost && prefix.length > bestPath)) {
        best = compiled.route;
        bestHost = score;
        bestPath = prefix.length;
      }
    }
    return best;
  }
}
