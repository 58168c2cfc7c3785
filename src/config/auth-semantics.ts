/**
 * The cross-field checks of the token settings: every `auth.keySet` (top-level and per route)
 * names a key set, a route that asks for tokens lists its algorithms, those algorithms fit the key
 * set's kind (HS* only with a secret, the others only with public keys: the gate against algorithm
 * confusion), and an HMAC secret is at least as long as its hash's output (RFC 7518 §3.2).
 */
import { HMAC_ALGORITHMS } from './auth-schema.ts';
import type { Config } from './schema.ts';
import type { SemanticProblem } from './semantic-problem.ts';

const SECRET_BYTES: Readonly<Record<string, number>> = { HS256: 32, HS384: 48, HS512: 64 };
const isHmac = (alg: string): boolean => (HMAC_ALGORITHMS as readonly string[]).includes(alg);

interface Effective {
  readonly keySet: string;
  readonly keySetPath: readonly (string | number)[];
  readonly algorithms: readonly string[];
  readonly algorithmsPath: readonly (string | number)[];
}

/** The problems of one route's token settings (its own fields over the defaults). */
function problemsOf(config: Config, auth: Effective): SemanticProblem[] {
  const { keySet, keySetPath, algorithms, algorithmsPath } = auth;
  if (keySet === 'off') return [];
  const set = config.keySets[keySet];
  if (set === undefined) {
    const known = Object.keys(config.keySets);
    const defined = known.length > 0 ? `keySets: ${known.join(', ')}` : 'no keySets are defined';
    return [{ path: keySetPath, message: `no key set named "${keySet}" (${defined})` }];
  }
  if (algorithms.length === 0) {
    return [
      { path: algorithmsPath, message: 'list the algorithms tokens may be signed with (e.g. [RS256])' },
    ];
  }
  const problems: SemanticProblem[] = [];
  for (const alg of algorithms) {
    let message: string | undefined;
    if (set.kind === 'secret' && !isHmac(alg))
      message = `${alg} needs public keys; key set "${keySet}" is a secret`;
    else if (set.kind !== 'secret' && isHmac(alg)) {
      message = `${alg} needs a secret; key set "${keySet}" holds public keys (this would allow algorithm confusion)`;
    } else if (set.kind === 'secret' && set.secret.length < (SECRET_BYTES[alg] ?? 0)) {
      message = `${alg} needs a secret of at least ${SECRET_BYTES[alg]} bytes; key set "${keySet}" holds ${set.secret.length}`;
    }
    if (message !== undefined) problems.push({ path: algorithmsPath, message });
  }
  return problems;
}

export function checkAuthSettings(config: Config, out: SemanticProblem[]): void {
  const defaults = config.auth;
  const found = new Map<string, SemanticProblem>();
  const add = (problems: SemanticProblem[]): void => {
    for (const problem of problems) found.set(`${problem.path.join('.')}\u0000${problem.message}`, problem);
  };
  // A default key set that does not exist is wrong even if every route overrides it.
  if (defaults.keySet !== 'off' && config.keySets[defaults.keySet] === undefined) {
    add(
      problemsOf(config, {
        keySet: defaults.keySet,
        keySetPath: ['auth', 'keySet'],
        algorithms: [],
        algorithmsPath: [],
      }),
    );
  }
  for (const [name, route] of Object.entries(config.routes)) {
    const own = route.auth;
    add(
      problemsOf(config, {
        keySet: own?.keySet ?? defaults.keySet,
        keySetPath: own?.keySet === undefined ? ['auth', 'keySet'] : ['routes', name, 'auth', 'keySet'],
        algorithms: own?.algorithms ?? defaults.algorithms,
        algorithmsPath:
          own?.algorithms === undefined ? ['auth', 'algorithms'] : ['routes', name, 'auth', 'algorithms'],
      }),
    );
  }
  out.push(...found.values());
}
