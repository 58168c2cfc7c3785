/**
 * Picks the route for a request from its host and path. Among the routes whose host pattern and
 * path prefix both match, the most specific host wins (exact name, then the longest wildcard
 * suffix, then routes for any host), and then the longest path prefix. Prefixes are compared as
 * strings; routing/route-lookup.ts hands the router paths and prefixes already normalized the way
 * a backend reads them.
 *
 * Routes are indexed when the router is built: one prefix tree per exact host, per wildcard
 * suffix and for any host. A lookup tries the exact host, then each wildcard suffix the host
 * ends with (longest first), then any host, and takes the longest prefix in the first of these
 * classes that has one; its cost depends on the lengths of the host and path, not on the number
 * of routes.
 */
import type { RouteConfig } from '../config/schema.ts';
import { PrefixTree } from './prefix-tree.ts';

/** A route as the data plane sees it: its name and its pool (its policy is looked up by name). */
export interface Route {
  readonly name: string;
  readonly poolName: string;
}

const WILDCARD = '*.';

function treeFor(trees: Map<string, PrefixTree<Route>>, key: string): PrefixTree<Route> {
  let tree = trees.get(key);
  if (tree === undefined) {
    tree = new PrefixTree();
    trees.set(key, tree);
  }
  return tree;
}

export class Router {
  /** Routes by the exact host they name. */
  readonly #exactHosts = new Map<string, PrefixTree<Route>>();
  /** Routes by wildcard suffix, with its leading dot: "*.example.com" → ".example.com". */
  readonly #wildcardSuffixes = new Map<string, PrefixTree<Route>>();
  /** Routes without hosts. */
  readonly #anyHost = new PrefixTree<Route>();
  /** The length of the longest wildcard suffix: no dot further from the end can start a match. */
  readonly #longestSuffix: number = 0;

  constructor(routes: Readonly<Record<string, RouteConfig>>) {
    // Insertion keeps the first route for a prefix, so among equals the route defined first wins.
    for (const [name, config] of Object.entries(routes)) {
      const route: Route = { name, poolName: config.pool };
      if (config.hosts.length === 0) this.#anyHost.insert(config.path, route);
      for (const host of config.hosts) {
        const suffix = host.startsWith(WILDCARD) ? host.slice(WILDCARD.length - 1) : undefined;
        if (suffix !== undefined) this.#longestSuffix = Math.max(this.#longestSuffix, suffix.length);
        const tree =
          suffix === undefined ? treeFor(this.#exactHosts, host) : treeFor(this.#wildcardSuffixes, suffix);
        tree.insert(config.path, route);
      }
    }
  }

  /** The best route for `host` (already normalized) and the request target `url`, if any. */
  match(host: string | undefined, url: string): Route | undefined {
    const queryAt = url.indexOf('?');
    const path = queryAt === -1 ? url : url.slice(0, queryAt);
    if (host !== undefined) {
      const exact = this.#exactHosts.get(host)?.longestPrefixOf(path);
      if (exact !== undefined) return exact;
      if (this.#wildcardSuffixes.size > 0) {
        // A wildcard matches at a dot with at least one character before it; the first dot gives
        // the longest suffix. Dots further from the end than the longest suffix are not looked at:
        // a host of many dots would otherwise cost its length squared (a suffix hashed per dot).
        const from = Math.max(1, host.length - this.#longestSuffix);
        for (let dot = host.indexOf('.', from); dot !== -1; dot = host.indexOf('.', dot + 1)) {
          const wildcard = this.#wildcardSuffixes.get(host.slice(dot))?.longestPrefixOf(path);
          if (wildcard !== undefined) return wildcard;
        }
      }
    }
    return this.#anyHost.longestPrefixOf(path);
  }
}
