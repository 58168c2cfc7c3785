/**
 * The key sets of a configuration, by name: what the token check asks for the keys a token may
 * be verified with. Public keys from files and HMAC secrets answer at once; a JWKS URL answers
 * from its cache (remote-jwks.ts). A key set is `public` or `secret`, and a route's algorithms are
 * checked against that kind at load, so an HS256 token can never be checked with a public key as
 * its secret (algorithm confusion).
 */

import { createSecretKey } from 'node:crypto';
import type { Clock } from '../clock.ts';
import type { KeySetConfig } from '../config/auth-schema.ts';
import { candidatesFor, type VerifyKey } from '../keys/key-material.ts';
import type { Logger } from '../observability/logger.ts';
import type { KeyLookup, KeySet } from './key-lookup.ts';
import { type FetchResult, RemoteJwks } from './remote-jwks.ts';

export type { KeyLookup, KeySet } from './key-lookup.ts';

class StaticKeys implements KeySet {
  readonly kind = 'public';
  readonly #keys: readonly VerifyKey[];

  constructor(keys: readonly VerifyKey[]) {
    this.#keys = keys;
  }

  lookup(kid: string | undefined, alg: string): KeyLookup {
    return { keys: candidatesFor(this.#keys, kid, alg).map((entry) => entry.key) };
  }

  start(): void {}
  stop(): void {}
}

class SecretKey implements KeySet {
  readonly kind = 'secret';
  readonly #lookup: KeyLookup;

  constructor(secret: Buffer) {
    // Made a key object once (a copy of the secret), not imported again for each token.
    this.#lookup = { keys: [createSecretKey(secret)] };
  }

  lookup(): KeyLookup {
    return this.#lookup;
  }

  start(): void {}
  stop(): void {}
}

export interface KeySetDeps {
  readonly clock: Clock;
  readonly log: Logger;
  readonly onFetch: (keySet: string, result: FetchResult, keys: number) => void;
}

/** Every configured key set, ready to start. */
export function buildKeySets(
  configs: Readonly<Record<string, KeySetConfig>>,
  deps: KeySetDeps,
): ReadonlyMap<string, KeySet> {
  const sets = new Map<string, KeySet>();
  for (const [name, config] of Object.entries(configs)) {
    switch (config.kind) {
      case 'jwks':
        sets.set(
          name,
          new RemoteJwks({
            name,
            config,
            clock: deps.clock,
            log: deps.log,
            onFetch: (result, keys) => deps.onFetch(name, result, keys),
          }),
        );
        break;
      case 'static':
        sets.set(name, new StaticKeys(config.keys));
        break;
      case 'secret':
        sets.set(name, new SecretKey(config.secret));
        break;
    }
  }
  return sets;
}
