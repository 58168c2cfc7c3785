/**
 * The signature of a JWS (RFC 7515) by algorithm (RFC 7518 §3, RFC 8037, RFC 9864), checked
 * synchronously with node:crypto: HMAC compared in constant time, RSA PKCS#1 v1.5, RSA-PSS with a
 * salt as long as the hash, ECDSA with the raw `r || s` signature of its curve's exact size, EdDSA.
 * Each algorithm first says whether a key can verify it at all (`unfit`): the key's kind (a
 * secret for HS*, a public key otherwise, never an empty secret), its type, its curve, RSA moduli
 * of 2048 bits or more (RFC 7518 §3.3, as jose enforces), and for an `rsa-pss` key the hashes and
 * salt it may be restricted to. An RSA signature must be exactly as long as the modulus, so that
 * one token has one spelling. A key that cannot is no candidate for the token
 * (verify-token.ts refuses `unknown_key` when none fits), never a verification that throws.
 * `verify` never throws either: whatever node:crypto refuses (a signature of the wrong shape, a
 * PSS key restricted to another hash) is a signature that does not verify.
 */
import { constants, createHmac, type KeyObject, timingSafeEqual, verify } from 'node:crypto';

/** How one JWS algorithm checks a signature. */
export interface JwsAlgorithm {
  /** Why `key` cannot verify this algorithm, or undefined when it can. */
  unfit(key: KeyObject): string | undefined;
  /** Whether `signature` is this algorithm's signature of `input` with `key` (a key that fits). */
  verify(key: KeyObject, input: Buffer, signature: Buffer): boolean;
}

/** Smallest RSA modulus accepted (RFC 7518 §3.3 and §3.5). */
const MIN_RSA_BITS = 2048;

function wrongKind(key: KeyObject, alg: string, kind: 'secret' | 'public'): string | undefined {
  return key.type === kind ? undefined : `a ${key.type} key cannot verify ${alg}`;
}

function wrongType(key: KeyObject, alg: string, types: readonly string[]): string | undefined {
  const type = key.asymmetricKeyType ?? 'unknown';
  return types.includes(type) ? undefined : `a key of type ${type} cannot verify ${alg}`;
}

function shortRsa(key: KeyObject): string | undefined {
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
  return bits >= MIN_RSA_BITS ? undefined : `RSA key shorter than ${MIN_RSA_BITS} bits`;
}

/**
 * Whether `signature` is as long as the key's modulus (RFC 8017 §8.1.2, §8.2.2): OpenSSL's PSS
 * check also takes one a byte shorter (its leading zero left out), a second spelling of one token.
 */
function modulusSized(key: KeyObject, signature: Buffer): boolean {
  return signature.length === Math.ceil((key.asymmetricKeyDetails?.modulusLength ?? 0) / 8);
}

/**
 * What an `rsa-pss` key's own parameters forbid (a key may fix its hash, its MGF1 hash and a
 * smallest salt; node:crypto then uses those, whatever the algorithm asks): RFC 7518 §3.5 wants
 * the algorithm's hash for both and a salt of its length.
 */
function pssRestricted(key: KeyObject, alg: string, hash: string, saltLength: number): string | undefined {
  if (key.asymmetricKeyType !== 'rsa-pss') return undefined;
  const details = key.asymmetricKeyDetails;
  const fixed = [details?.hashAlgorithm, details?.mgf1HashAlgorithm].filter((name) => name !== undefined);
  if (fixed.some((name) => name !== hash))
    return `an RSA-PSS key restricted to ${fixed.join('/')} cannot verify ${alg}`;
  if ((details?.saltLength ?? 0) > saltLength)
    return `an RSA-PSS key asking for a longer salt cannot verify ${alg}`;
  return undefined;
}

function hmac(alg: string, hash: string): JwsAlgorithm {
  return {
    unfit: (key) =>
      wrongKind(key, alg, 'secret') ?? ((key.symmetricKeySize ?? 0) > 0 ? undefined : 'an empty HMAC secret'),
    verify(key, input, signature) {
      try {
        const expected = createHmac(hash, key).update(input).digest();
        return expected.length === signature.length && timingSafeEqual(expected, signature);
      } catch {
        return false;
      }
    },
  };
}

const RSA_TYPES = ['rsa'];

/** RSASSA-PKCS1-v1_5: node:crypto's default padding for an `rsa` key, so the key goes as it is. */
function rsa(alg: string, hash: string): JwsAlgorithm {
  return {
    unfit: (key) => wrongKind(key, alg, 'public') ?? wrongType(key, alg, RSA_TYPES) ?? shortRsa(key),
    verify(key, input, signature) {
      if (!modulusSized(key, signature)) return false;
      try {
        return verify(hash, input, key, signature);
      } catch {
        return false;
      }
    },
  };
}

const PSS_TYPES = ['rsa', 'rsa-pss'];

/** RSASSA-PSS with MGF1 of the same hash and a salt of the hash's length (RFC 7518 §3.5). */
function pss(alg: string, hash: string, saltLength: number): JwsAlgorithm {
  return {
    unfit: (key) =>
      wrongKind(key, alg, 'public') ??
      wrongType(key, alg, PSS_TYPES) ??
      shortRsa(key) ??
      pssRestricted(key, alg, hash, saltLength),
    verify(key, input, signature) {
      if (!modulusSized(key, signature)) return false;
      try {
        return verify(hash, input, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength }, signature);
      } catch {
        return false;
      }
    },
  };
}

const EC_TYPES = ['ec'];

/** ECDSA on one curve, the signature being `r || s` of exactly `size` bytes (RFC 7518 §3.4). */
function ecdsa(alg: string, hash: string, curve: string, curveName: string, size: number): JwsAlgorithm {
  return {
    unfit(key) {
      const other = wrongKind(key, alg, 'public') ?? wrongType(key, alg, EC_TYPES);
      if (other !== undefined) return other;
      const named = key.asymmetricKeyDetails?.namedCurve;
      return named === curve ? undefined : `EC key on curve ${named ?? 'unknown'}, ${alg} needs ${curveName}`;
    },
    verify(key, input, signature) {
      if (signature.length !== size) return false;
      try {
        return verify(hash, input, { key, dsaEncoding: 'ieee-p1363' }, signature);
      } catch {
        return false;
      }
    },
  };
}

/** EdDSA (RFC 8037): the curve is the key's; `Ed25519` (RFC 9864) takes Ed25519 keys only. */
function eddsa(alg: string, types: readonly string[]): JwsAlgorithm {
  return {
    unfit: (key) => wrongKind(key, alg, 'public') ?? wrongType(key, alg, types),
    verify(key, input, signature) {
      try {
        return verify(null, input, key, signature);
      } catch {
        return false;
      }
    },
  };
}

const ALGORITHMS: ReadonlyMap<string, JwsAlgorithm> = new Map([
  ['HS256', hmac('HS256', 'sha256')],
  ['HS384', hmac('HS384', 'sha384')],
  ['HS512', hmac('HS512', 'sha512')],
  ['RS256', rsa('RS256', 'sha256')],
  ['RS384', rsa('RS384', 'sha384')],
  ['RS512', rsa('RS512', 'sha512')],
  ['PS256', pss('PS256', 'sha256', 32)],
  ['PS384', pss('PS384', 'sha384', 48)],
  ['PS512', pss('PS512', 'sha512', 64)],
  ['ES256', ecdsa('ES256', 'sha256', 'prime256v1', 'P-256', 64)],
  ['ES384', ecdsa('ES384', 'sha384', 'secp384r1', 'P-384', 96)],
  ['ES512', ecdsa('ES512', 'sha512', 'secp521r1', 'P-521', 132)],
  ['EdDSA', eddsa('EdDSA', ['ed25519', 'ed448'])],
  ['Ed25519', eddsa('Ed25519', ['ed25519'])],
]);

/** The algorithm named by a JWS header's `alg`, if it is one this module checks. */
export function jwsAlgorithm(alg: string): JwsAlgorithm | undefined {
  return ALGORITHMS.get(alg);
}
