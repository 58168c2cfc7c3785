/**
 * The cross-field checks of pools: a backend is listed once (its URL is its metric label, its
 * address its identity); a `{ claim }` sticky source needs a route to the pool that verifies
 * tokens, or it could never yield a key; an affinity cookie with `SameSite=None` needs a way for
 * the gateway to see https (a TLS listener, or trusted proxies that say so), since browsers drop
 * such a cookie without `Secure`.
 */
import type { Config } from './schema.ts';
import type { SemanticProblem } from './semantic-problem.ts';

/** A backend listed twice in a pool (as written, or the same origin spelled differently). */
function checkDuplicateBackends(name: string, config: Config, out: SemanticProblem[]): void {
  const seen = new Map<string, number>();
  config.pools[name]?.backends.forEach((backend, index) => {
    const key = `${backend.discover ?? 'address'} ${backend.url}`;
    const first = seen.get(key);
    if (first === undefined) seen.set(key, index);
    else {
      out.push({
        path: ['pools', name, 'backends', index],
        message: `${backend.url} is listed already (backends[${first}]); give it a weight instead`,
      });
    }
  });
}

/** Whether some route to pool `name` verifies tokens. */
function tokensReach(name: string, config: Config): boolean {
  return Object.values(config.routes).some(
    (route) => route.pool === name && (route.auth?.keySet ?? config.auth.keySet) !== 'off',
  );
}

function checkSticky(name: string, config: Config, out: SemanticProblem[]): void {
  const sticky = config.pools[name]?.sticky;
  if (sticky === undefined) return;
  sticky.from.forEach((source, index) => {
    if (typeof source === 'object' && 'claim' in source && !tokensReach(name, config)) {
      out.push({
        path: ['pools', name, 'sticky', 'from', index],
        message: `{ claim: ${source.claim} } needs a verified token, and no route to pool "${name}" checks one (auth.keySet)`,
      });
    }
  });
  const canSeeHttps =
    Object.values(config.listeners).some((listener) => listener.tls !== undefined) ||
    config.forwarding.trustedProxies.length > 0;
  if (sticky.from.includes('affinityCookie') && sticky.cookie.sameSite === 'None' && !canSeeHttps) {
    out.push({
      path: ['pools', name, 'sticky', 'cookie', 'sameSite'],
      message:
        'None needs Secure, which is set only over https: no listener has tls and no forwarding.trustedProxies can say a request came over https, so browsers would drop the cookie',
    });
  }
}

export function checkPools(config: Config, out: SemanticProblem[]): void {
  for (const name of Object.keys(config.pools)) {
    checkDuplicateBackends(name, config, out);
    checkSticky(name, config, out);
  }
}
