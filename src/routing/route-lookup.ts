/**
 * Finds the route of a request the way a backend will read its path. The target is forwarded
 * byte for byte, but backends normalize before they serve: they decode `%73` to `s`, merge `//`,
 * and some decode `%2F` to `/`. Matching the raw bytes would let `/%61dmin` or `//admin` fall to a
 * `/` route while the backend serves `/admin` under the other route's policy. So routes are
 * matched on a normalized key (routing/path-key.ts: unreserved characters decoded, other escapes
 * in upper case, path parameters dropped, runs of `/` merged), configured prefixes alike; and because an encoded slash (`%2F`,
 * and `%5C`, which some servers read as `\` and then `/`) is read both ways by different backends,
 * a path holding one is refused when the two readings pick different routes or the decoded one
 * holds a dot segment. A path whose encoded slashes stay within one route (`/api/group%2Fproject`)
 * is served as it is.
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

export class RouteLookup {
  readonly #router: Router;

  constructor(routes: Readonly<Record<string, RouteConfig>>) {
    const normalized: Record<string, RouteConfig> = {};
    for (const [name, config] of Object.entries(routes))
      normalized[name] = { ...config, path: matchingPath(config.path) };
    this.#router = new Router(normalized);
  }

  /** The route for `host` (normalized) and the raw request target, or why the target is refused. */
  find(host: string | undefined, target: string): Lookup {
    const queryAt = target.indexOf('?');
    const key = matchingPath(queryAt === -1 ? target : target.slice(0, queryAt));
    const route = this.#router.match(host, key);
    const decoded = slashDecoded(key);
    if (decoded !== undefined) {
      if (hasDotSegment(decoded)) return { refused: 'an encoded slash hides a dot segment' };
      if (this.#router.match(host, decoded) !== route) {
        return { refused: 'an encoded slash would move the request to another route' };
      }
    }
    return { route };
  }
}
