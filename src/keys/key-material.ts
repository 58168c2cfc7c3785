/**
 * Public keys as the token check uses them: parsed once (from a PEM file, a JWK or a JWKS, read
 * at load or fetched), with the key id and algorithm they are restricted to, and the rule that
 * picks the keys a token may have been signed with (RFC 7517 §4: `kid`, `alg`, `use`,
 * `key_ops`). Private key material in a file or a JWKS is reduced to its public half; secret
 * (`oct`) keys are never taken from a JWKS, so a public document cannot turn into an HMAC secret.
 */
import { createPublicKey, type JsonWebKey, type KeyObject, X509Certificate } from 'node:crypto';

/** A key that verifies signatures, with what restricts its use. */
export interface VerifyKey {
  readonly key: KeyObject;
  readonly kid: string | undefined;
  readonly alg: string | undefined;
}

/** Key types each algorithm family is checked with (node:crypto's `asymmetricKeyType`). */
function keyTypesFor(alg: string): readonly string[] {
  if (alg.startsWith('RS')) return ['rsa'];
  if (alg.startsWith('PS')) return ['rsa', 'rsa-pss'];
  if (alg.startsWith('ES')) return ['ec'];
  if (alg === 'EdDSA') return ['ed25519', 'ed448'];
  if (alg === 'Ed25519') return ['ed25519'];
  return [];
}

/**
 * The keys a token with header `kid`/`alg` may be verified with: those with its `kid` when any key
 * has it, else those without a `kid` (a PEM file), always of a type the algorithm uses. A token
 * with no `kid` at all, when every key has one, is tried against the first few keys of its type.
 */
export function candidatesFor(
  keys: readonly VerifyKey[],
  kid: string | undefined,
  alg: string,
): readonly VerifyKey[] {
  const types = keyTypesFor(alg);
  const usable = keys.filter(
    (entry) =>
      (entry.alg === undefined || entry.alg === alg) && types.includes(entry.key.asymmetricKeyType ?? ''),
  );
  if (kid !== undefined) {
    const named = usable.filter((entry) => entry.kid === kid);
    if (named.length > 0) return named;
  }
  const unnamed = usable.filter((entry) => entry.kid === undefined);
  // A token without a kid may be checked with any key of its type, as jose's JWKS sets do, but
  // with a bound: each key tried is a signature check a forger can make the gateway do.
  if (kid === undefined && unnamed.length === 0) return usable.slice(0, MAX_KEYS_WITHOUT_KID);
  return unnamed;
}

/** Keys tried for a token that names no key. */
const MAX_KEYS_WITHOUT_KID = 4;

interface JwkFields {
  readonly kty?: unknown;
  readonly kid?: unknown;
  readonly alg?: unknown;
  readonly use?: unknown;
  readonly key_ops?: unknown;
}

/** A JWK as a verifying key, or why it cannot be one. */
function fromJwk(jwk: JwkFields & JsonWebKey): VerifyKey | { problem: string } {
  if (jwk.kty === 'oct') return { problem: 'a secret (oct) key cannot be a public key' };
  if (jwk.use !== undefined && jwk.use !== 'sig') return { problem: `use "${String(jwk.use)}" is not "sig"` };
  if (Array.isArray(jwk.key_ops) && !jwk.key_ops.includes('verify')) {
    return { problem: 'key_ops does not include "verify"' };
  }
  try {
    const key = createPublicKey({ key: jwk, format: 'jwk' });
    return {
      key,
      kid: typeof jwk.kid === 'string' ? jwk.kid : undefined,
      alg: typeof jwk.alg === 'string' ? jwk.alg : undefined,
    };
  } catch (error) {
    return { problem: `not a usable JWK (${error instanceof Error ? error.message : String(error)})` };
  }
}

/**
 * The signing keys of a JWKS document (`{"keys": [...]}`). Entries that are not usable signing
 * keys (encryption keys, unknown types) are skipped and counted; a document without any is an error.
 */
export function parseJwks(json: unknown): { keys: VerifyKey[]; skipped: number } | { problem: string } {
  if (typeof json !== 'object' || json === null || !Array.isArray((json as { keys?: unknown }).keys)) {
    return { problem: 'not a JWKS document (no "keys" list)' };
  }
  const keys: VerifyKey[] = [];
  let skipped = 0;
  for (const entry of (json as { keys: unknown[] }).keys) {
    const parsed =
      typeof entry === 'object' && entry !== null
        ? fromJwk(entry as JwkFields & JsonWebKey)
        : { problem: 'not an object' };
    if ('problem' in parsed) skipped++;
    else keys.push(parsed);
  }
  if (keys.length === 0) return { problem: 'the JWKS holds no usable signing key' };
  return { keys, skipped };
}

/** The keys in one file: a PEM public key or certificate, a JWK, or a JWKS. */
export function parseKeyFile(content: Buffer): { keys: VerifyKey[] } | { problem: string } {
  const text = content.toString('utf8').trim();
  if (text.startsWith('{')) {
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      return { problem: 'not valid JSON' };
    }
    if (typeof json === 'object' && json !== null && 'keys' in json) {
      const set = parseJwks(json);
      return 'problem' in set ? set : { keys: set.keys };
    }
    const single = fromJwk(json as JwkFields & JsonWebKey);
    return 'problem' in single ? single : { keys: [single] };
  }
  if (text.includes('-----BEGIN CERTIFICATE-----')) {
    try {
      return { keys: [{ key: new X509Certificate(text).publicKey, kid: undefined, alg: undefined }] };
    } catch {
      return { problem: 'not a valid PEM certificate' };
    }
  }
  try {
    return { keys: [{ key: createPublicKey(text), kid: undefined, alg: undefined }] };
  } catch {
    return { problem: 'not a PEM public key, a certificate, a JWK or a JWKS' };
  }
}
