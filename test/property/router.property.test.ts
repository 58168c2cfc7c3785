/**
 * Router properties (fast-check): the indexed router picks the same route as a plain scan of every
 * route (host specificity first, then the longest matching prefix, the first defined among equals)
 * on random route sets and requests. Small alphabets make hosts, wildcards and prefixes collide
 * often. Each property is time-boxed so the file stays quick on a slow machine.
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { RouteConfig } from '../../src/config/schema.ts';
import { Router } from '../../src/routing/router.ts';

/** Each property stops after this long on a slow machine; it still passes if no counterexample was found. */
const TIME_LIMIT_MS = 5_000;
const params = (numRuns: number) => ({ numRuns, plugins: [fc.interruptAfterTimeLimit(TIME_LIMIT_MS)] });

/** The most specific host class a route is in for `host`: higher wins, -1 when it does not match. */
function hostRank(config: RouteConfig, host: string | undefined): number {
  if (config.hosts.length === 0) return 0;
  if (host === undefined) return -1;
  let rank = -1;
  for (const pattern of config.hosts) {
    if (pattern === host && !pattern.startsWith('*.')) return Number.POSITIVE_INFINITY;
    const suffix = pattern.startsWith('*.') ? pattern.slice(1) : undefined;
    if (suffix !== undefined && host.length > suffix.length && host.endsWith(suffix)) {
      rank = Math.max(rank, 1 + suffix.length);
    }
  }
  return rank;
}

/** The reference: look at every route, keep the best (host rank, then prefix length), first among equals. */
function referenceMatch(
  routes: Readonly<Record<string, RouteConfig>>,
  host: string | undefined,
  url: string,
): string | undefined {
  const [path = ''] = url.split('?');
  let best: { name: string; rank: number; length: number } | undefined;
  for (const [name, config] of Object.entries(routes)) {
    const rank = hostRank(config, host);
    if (rank < 0 || !path.startsWith(config.path)) continue;
    const better =
      best === undefined || rank > best.rank || (rank === best.rank && config.path.length > best.length);
    if (better) best = { name, rank, length: config.path.length };
  }
  return best?.name;
}

const labelArb = fc.constantFrom('a', 'b', 'ab', 'example', 'com');
const hostNameArb = fc.array(labelArb, { minLength: 1, maxLength: 4 }).map((labels) => labels.join('.'));
const hostPatternArb = fc.oneof(
  { weight: 2, arbitrary: hostNameArb },
  { weight: 2, arbitrary: hostNameArb.map((name) => `*.${name}`) },
  { weight: 1, arbitrary: fc.constantFrom('*.', '*', '.a', 'a.', '') },
);
const pathTextArb = fc.string({ unit: fc.constantFrom('/', 'a', 'b', 'é', '\u{1F600}'), maxLength: 6 });
const routePathArb = fc.oneof(
  { weight: 5, arbitrary: pathTextArb.map((text) => `/${text}`) },
  { weight: 1, arbitrary: pathTextArb },
);
const routeArb = fc.record({
  hosts: fc.oneof(
    { weight: 1, arbitrary: fc.constant([]) },
    { weight: 3, arbitrary: fc.array(hostPatternArb, { minLength: 1, maxLength: 3 }) },
  ),
  path: routePathArb,
  pool: fc.constantFrom('p', 'q'),
});
/** Route names include integer-like ones, which objects list first: order matters among equals. */
const nameArb = fc.oneof(fc.nat(30).map(String), fc.stringMatching(/^[a-z]{1,3}$/));
const routesArb = fc
  .uniqueArray(fc.tuple(nameArb, routeArb), { selector: ([name]) => name, maxLength: 25 })
  .map((entries) => Object.fromEntries(entries) as Record<string, RouteConfig>);
const requestHostArb = fc.oneof(
  { weight: 1, arbitrary: fc.constant(undefined) },
  { weight: 6, arbitrary: fc.array(labelArb, { minLength: 1, maxLength: 5 }).map((l) => l.join('.')) },
  { weight: 1, arbitrary: fc.constantFrom('', '.', '.a', 'a.', 'a..com', '*.a', 'x.a') },
);
const requestUrlArb = fc
  .tuple(routePathArb, fc.option(fc.string({ unit: fc.constantFrom('/', 'a', '?', '='), maxLength: 5 })))
  .map(([path, query]) => (query === null ? path : `${path}?${query}`));
const requestArb = fc.record({ host: requestHostArb, url: requestUrlArb });

describe('Router', () => {
  it('agrees with a scan of every route', () => {
    fc.assert(
      fc.property(routesArb, fc.array(requestArb, { minLength: 1, maxLength: 20 }), (routes, requests) => {
        const router = new Router(routes);
        for (const { host, url } of requests) {
          assert.equal(router.match(host, url)?.name, referenceMatch(routes, host, url), `${host} ${url}`);
        }
      }),
      params(2_000),
    );
  });

  it('agrees on requests built from the routes themselves', () => {
    // Random requests rarely hit deep prefixes; these extend a route's own host and path.
    const derivedArb = routesArb
      .filter((routes) => Object.keys(routes).length > 0)
      .chain((routes) => {
        const configs = Object.values(routes);
        const request = fc.record({
          route: fc.constantFrom(...configs),
          sub: fc.constantFrom('', 'x.', 'a.b.'),
          tail: fc.constantFrom('', 'a', '/', '/a?b', '?/a'),
        });
        return fc.tuple(fc.constant(routes), fc.array(request, { minLength: 1, maxLength: 10 }));
      });
    fc.assert(
      fc.property(derivedArb, ([routes, requests]) => {
        const router = new Router(routes);
        for (const { route, sub, tail } of requests) {
          const pattern = route.hosts[0];
          const host = pattern === undefined ? undefined : `${sub}${pattern.replace(/^\*\./, 'w.')}`;
          const url = `${route.path}${tail}`;
          assert.equal(router.match(host, url)?.name, referenceMatch(routes, host, url), `${host} ${url}`);
        }
      }),
      params(2_000),
    );
  });
});
