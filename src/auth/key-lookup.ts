/**
 * What the token check asks a key set (key-set.ts, remote-jwks.ts): the keys a token with this
 * `kid` and algorithm may be verified with, as node:crypto key objects (public keys, or an HMAC
 * secret made a secret key once).
 */
import type { KeyObject } from 'node:crypto';

/** The keys to try, in order; `unavailable`: none could ever be had (a JWKS never fetched). */
export type KeyLookup = { readonly keys: readonly KeyObject[] } | 'unavailable';

/** Where a route's token check gets its keys. */
export interface KeySet {
  readonly kind: 'public' | 'secret';
  lookup(kid: string | undefined, alg: string): KeyLookup | Promise<KeyLookup>;
  start(): void;
  stop(): void;
}
