/**
 * Finds the route of a request the way a backend will read its path. The target is forwarded
 * byte for byte, but backends normalize before they serve, and not all alike. Matching the raw
 * bytes would let `/%61dmin` or `//admin` fall to a `/` route while the backend serves `/admin`
 * under the other route's policy. So routes are matched on a normalized key
 * (protocol/path-key.ts: unreserved characters decoded, other escapes in upper case, path
 * parameters dropped, runs of `/` merged), configured prefixes alike.
 *
 * Where backends disagree, the path is read each way they might read it, and refused when two
 * readings pick different routes or one of them holds a dot segment:
 * - an encoded slash (`%2F`, and `%5C`, which some servers read as `\` and then `/`), decoded by
 *   some backends and not by others;
 * - a doubly encoded character (`%252F`), which backends that decode twice turn into `%2F`;
 * - letter case, which Express, ASP.NET and IIS ignore when they match paths (`/ADMIN/x`).
 * A path whose readings all stay within one route (`/api/group%2Fproject`) is served as it is.
 */
import type { RouteConfig } from '../config/schema.ts';
import { matchingPath, mergeSlashes } from '../protocol/path-key.ts';
import { hasDotSegment } from './request-target.ts';
import { type Route, Router } from './router.ts';

export type Lookup =
  | { readonly route: Route | undefined; readonly refused?: undefined }
  | { readonly route?: undefined; readonly refused: string };

/** The key as a backend that decodes encoded slashes reads it, if it holds any. */
function slashDecoded(key: string): string | undefined {
  if (!key.includes('%2F') && !key.includes('%5C')) return undefined;
  return mergeSlashes(key.replace(/%2F|%5C/g, '/'));
}

/** The key as a backend that decodes twice reads it, if it holds an encoded `%`. */
function twiceDecoded(key: string): string | undefined {
  if (!key.includes('%25')) return undefined;
  const once = matchingPath(key.replaceAll('%25', '%'));
  return slashDecoded(once) ?? once;
}

/** Routes with their prefixes normalized, and in lower case when `folded`. */
function routerOf(routes: Readonly<Record<string, RouteConfig>>, folded: boolean): Router {
  const normalized: Record<string, RouteConfig> = {};
  for (const [name, config] of Object.entries(routes)) {
    const path = matchingPath(config.path);
    normalized[name] = { ...config, path: folded ? path.toLowerCase() : path };
  }
  return new Router(normalized);
}

export class RouteLookup {
  readonly #router: Router;
  /** The same routes as a case-insensitive backend matches them. */
  readonly #folded: Router;
  /** Whether any prefix has an upper-case letter (else a lower-case path needs no folded look). */
  readonly #upperPrefixes: boolean;

  constructor(routes: Readonly<Record<string, RouteConfig>>) {
    this.#router = routerOf(routes, false);
    this.#folded = routerOf(routes, true);
    this.#upperPrefixes = Object.values(routes).some((route) => route.path !== route.path.toLowerCase());
  }

  /** The route for `host` (normalized) and the raw request target, or why the target is refused. */
  find(host: string | undefined, target: string): Lookup {
    const queryAt = target.indexOf('?');
    const key = matchingPath(queryAt === -1 ? target : target.slice(0, queryAt));
    const route = this.#router.match(host, key);
    const readings: [string, string | undefined][] = [
      ['an encoded slash', slashDecoded(key)],
      ['a doubly encoded character', twiceDecoded(key)],
    ];
    for (const [what, reading] of readings) {
      if (reading === undefined) continue;
      if (hasDotSegment(reading)) return { refused: `${what} hides a dot segment` };
      if (this.#router.match(host, reading) !== route) {
        return { refused: `${what} would move the request to another route` };
      }
    }
    const lower = key.toLowerCase();
    if (this.#upperPrefixes || lower !== key) {
      if (this.#folded.match(host, lower)?.name !== route?.name) {
        return { refused: 'its letter case would move the request to another route' };
      }
    }
    return { route };
  }
}
