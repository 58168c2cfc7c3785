/**
 * Checking one JWT (RFC 7519) against a route's policy, synchronously with node:crypto (the
 * signature itself is jws-signature.ts). The token must be a JWS in compact serialization: three
 * parts of strict base64url (no padding, canonical), at most MAX_TOKEN_LENGTH characters, a
 * header that is a JSON object. Its algorithm must be one the route allows (never `none`), before
 * a key is looked up; the keys come from the route's key set by `kid` and algorithm, a key that
 * cannot verify the algorithm (another type, another curve, an RSA modulus under 2048 bits) is
 * passed over, and none fitting is `unknown_key`. Another key is tried only when a signature does
 * not verify. No extension is taken: a header with `crit` is `malformed`, before the signature
 * when jose refused it there (every extension but `b64`), else once it verified, as is one with
 * `b64` (a forged one is a bad signature, as jose had it). Then the claims, in jose's order so
 * that refusals stay what they were: `iss`, `aud` and `exp` present when asked for, `iss` and
 * `aud` values, `iat`, `nbf` and `exp` numbers, `nbf` and `exp` against the clock with the
 * tolerance, and the route's required claims. A refusal
 * names its reason (for the log and the metric), never anything the client could learn from; the
 * log's `detail` says which check failed, with jose's error codes (`ERR_JWT_EXPIRED`, ...).
 */
import { jwsAlgorithm } from './jws-signature.ts';
import type { KeyLookup, KeySet } from './key-lookup.ts';

/** What a route asks of a token (its resolved `auth` settings). */
export interface TokenRules {
  readonly algorithms: readonly string[];
  readonly issuer: readonly string[] | undefined;
  readonly audience: readonly string[] | undefined;
  readonly clockToleranceMs: number;
  readonly requireExpiry: boolean;
  /** Claim name, and every value it must equal or contain. */
  readonly requiredClaims: readonly (readonly [string, readonly (string | number | boolean)[]])[];
}

/** Why a token was refused, as the metric names it. */
export type TokenRefusal =
  | 'missing'
  | 'malformed'
  | 'algorithm'
  | 'unknown_key'
  | 'signature'
  | 'expired'
  | 'not_yet_valid'
  | 'issuer'
  | 'audience'
  | 'no_expiry'
  | 'claims'
  | 'keys_unavailable';

/** A JWT claims set: a JSON object, whatever its members hold. */
export type JwtClaims = Readonly<Record<string, unknown>>;

/** A token that passed: what the gateway keeps of it. */
export interface VerifiedToken {
  readonly claims: JwtClaims;
  /** `iss` and `sub` together, the key of the per-subject limit; undefined without `sub`. */
  readonly subjectKey: string | undefined;
  /** `exp` in milliseconds since the epoch, if the token has one. */
  readonly expiresAtMs: number | undefined;
}

export type TokenVerdict =
  | { readonly ok: true; readonly token: VerifiedToken }
  | { readonly ok: false; readonly refusal: TokenRefusal; readonly detail: string };

/**
 * Longest token read, in characters: more than identity providers issue, and the bound of the
 * work a forged token can ask for (base64url, JSON, one hash per candidate key).
 */
export const MAX_TOKEN_LENGTH = 64 * 1024;

/** A compact JWS: three base64url parts, the header not empty. */
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*$/;

const INVALID_JWS = 'ERR_JWS_INVALID';
const INVALID_JWT = 'ERR_JWT_INVALID';
const CLAIM_FAILED = 'ERR_JWT_CLAIM_VALIDATION_FAILED';
const BAD_SIGNATURE = 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED: signature verification failed';

const refuse = (refusal: TokenRefusal, detail: string): TokenVerdict => ({ ok: false, refusal, detail });

/** The 6-bit value of a base64url character (one the COMPACT_JWS pattern accepted). */
function sextet(code: number): number {
  if (code === 95) return 63; // '_'
  if (code >= 97) return code - 71; // a-z: 26..51
  if (code >= 65) return code - 65; // A-Z: 0..25
  if (code >= 48) return code - (48 - 52); // 0-9: 52..61
  return 62; // '-'
}

/**
 * Whether `token[start, end)` is base64url as an encoder writes it: no length that leaves a lone
 * character, no bits set past the last byte (RFC 4648 §3.5), so that no two spellings of one
 * signature or claims set verify.
 */
function canonical(token: string, start: number, end: number): boolean {
  const rest = (end - start) % 4;
  if (rest === 0) return true;
  if (rest === 1) return false;
  return (sextet(token.charCodeAt(end - 1)) & (rest === 2 ? 0x0f : 0x03)) === 0;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** The JSON object a base64url part holds, or undefined if it holds anything else. */
function jsonObject(part: string): Record<string, unknown> | undefined {
  let value: unknown;
  try {
    value = JSON.parse(utf8.decode(Buffer.from(part, 'base64url')));
  } catch {
    return undefined;
  }
  return typeof value === 'object' && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : undefined;
}

/**
 * Why a header's `crit` makes the JWS invalid before its signature is checked (RFC 7515
 * §4.1.11): every extension but `b64` (RFC 7797), the one jose knew, and that only with a boolean
 * `b64`. Such a header that passes here is refused once its signature verified: a JWT never
 * has an unencoded payload (RFC 7797 §7), and we take no extension.
 */
function unknownExtension(header: Record<string, unknown>): string | undefined {
  const crit = header.crit;
  if (crit === undefined) return undefined;
  const onlyB64 = Array.isArray(crit) && crit.length > 0 && crit.every((name) => name === 'b64');
  if (onlyB64 && typeof header.b64 === 'boolean') {
    return undefined;
  }
  return '"crit" (Critical) Header Parameter: no extension is supported';
}

/** Whether `claim` equals `value` or contains it (an array, or a space-separated string). */
function holds(claim: unknown, value: string | number | boolean): boolean {
  if (claim === value) return true;
  if (Array.isArray(claim)) return claim.includes(value);
  return typeof claim === 'string' && typeof value === 'string' && claim.split(' ').includes(value);
}

/** jose's audience rule: a string in the list, or an array with at least one member in it. */
function audienceMatches(aud: unknown, audience: readonly string[]): boolean {
  if (typeof aud === 'string') return audience.includes(aud);
  return Array.isArray(aud) && audience.some((wanted) => aud.includes(wanted));
}

const missing = (refusal: TokenRefusal, name: string): TokenVerdict =>
  refuse(refusal, `${CLAIM_FAILED}: missing required "${name}" claim`);

/** A NumericDate claim's problem: present but not a number. */
function notNumber(claims: JwtClaims, name: string): TokenVerdict | undefined {
  const value = claims[name];
  if (value === undefined || typeof value === 'number') return undefined;
  return refuse('malformed', `${CLAIM_FAILED}: "${name}" claim must be a number`);
}

/** The standard claims of a token whose signature verified, in the order jose checks them. */
function standardClaims(claims: JwtClaims, rules: TokenRules, now: number): TokenVerdict | undefined {
  // Presence first: iss, then aud, then exp (jose's order, so the refusal is the same).
  if (rules.issuer !== undefined && !Object.hasOwn(claims, 'iss')) return missing('issuer', 'iss');
  if (rules.audience !== undefined && !Object.hasOwn(claims, 'aud')) return missing('audience', 'aud');
  if (rules.requireExpiry && !Object.hasOwn(claims, 'exp')) return missing('no_expiry', 'exp');
  const iss = claims.iss;
  if (rules.issuer !== undefined && !(typeof iss === 'string' && rules.issuer.includes(iss))) {
    return refuse('issuer', `${CLAIM_FAILED}: unexpected "iss" claim value`);
  }
  if (rules.audience !== undefined && !audienceMatches(claims.aud, rules.audience)) {
    return refuse('audience', `${CLAIM_FAILED}: unexpected "aud" claim value`);
  }
  const seconds = Math.floor(now / 1000);
  const tolerance = rules.clockToleranceMs / 1000;
  const badDate = notNumber(claims, 'iat') ?? notNumber(claims, 'nbf');
  if (badDate !== undefined) return badDate;
  if (typeof claims.nbf === 'number' && claims.nbf > seconds + tolerance) {
    return refuse('not_yet_valid', `${CLAIM_FAILED}: "nbf" claim timestamp check failed`);
  }
  const badExpiry = notNumber(claims, 'exp');
  if (badExpiry !== undefined) return badExpiry;
  if (typeof claims.exp === 'number' && claims.exp <= seconds - tolerance) {
    return refuse('expired', 'ERR_JWT_EXPIRED: "exp" claim timestamp check failed');
  }
  return undefined;
}

/**
 * `iss` as text for the subject key, as a template literal writes it; undefined for a value that
 * cannot be written (an object whose `toString` and `valueOf` members are not functions, arrays
 * nested deeper than the stack), so that no claims set makes the check throw.
 */
function issuerText(iss: unknown): string | undefined {
  try {
    return String(iss ?? '');
  } catch {
    return undefined;
  }
}

/** The payload of a token whose signature and standard claims passed, checked for the route's claims. */
function withClaims(payload: JwtClaims, rules: TokenRules): TokenVerdict {
  // A StringOrURI (RFC 7519 §4.1.2): a number or an object would key the per-subject limit badly.
  const sub = payload.sub;
  if (sub !== undefined && typeof sub !== 'string') {
    return refuse('malformed', `"sub" is a ${typeof sub}, not a string`);
  }
  for (const [name, values] of rules.requiredClaims) {
    const lacking = values.find((value) => !holds(payload[name], value));
    if (lacking !== undefined) return refuse('claims', `claim "${name}" lacks ${JSON.stringify(lacking)}`);
  }
  const issuer = sub === undefined ? '' : issuerText(payload.iss);
  if (issuer === undefined) return refuse('malformed', '"iss" cannot be written as text');
  return {
    ok: true,
    token: {
      claims: payload,
      subjectKey: sub === undefined ? undefined : `${issuer}\u0000${sub}`,
      expiresAtMs: typeof payload.exp === 'number' ? payload.exp * 1000 : undefined,
    },
  };
}

/** The claims of a token whose signature verified: parsed, then checked. */
function claimsOf(payloadPart: string, rules: TokenRules, now: number): TokenVerdict {
  const claims = jsonObject(payloadPart);
  if (claims === undefined) {
    return refuse('malformed', `${INVALID_JWT}: JWT Claims Set must be a top-level JSON object`);
  }
  return standardClaims(claims, rules, now) ?? withClaims(claims, rules);
}

/** Checks `token`; `now` is the wall clock's time in milliseconds. Never throws. */
export async function verifyToken(
  token: string,
  keySet: KeySet,
  rules: TokenRules,
  now: number,
): Promise<TokenVerdict> {
  if (token.length > MAX_TOKEN_LENGTH) {
    return refuse(
      'malformed',
      `${INVALID_JWS}: token of ${token.length} characters, over ${MAX_TOKEN_LENGTH}`,
    );
  }
  if (!COMPACT_JWS.test(token)) return refuse('malformed', `${INVALID_JWS}: Invalid Compact JWS`);
  const headerEnd = token.indexOf('.');
  const payloadEnd = token.indexOf('.', headerEnd + 1);
  if (
    !canonical(token, 0, headerEnd) ||
    !canonical(token, headerEnd + 1, payloadEnd) ||
    !canonical(token, payloadEnd + 1, token.length)
  ) {
    return refuse('malformed', `${INVALID_JWS}: a part is not canonical base64url`);
  }
  const header = jsonObject(token.slice(0, headerEnd));
  if (header === undefined) return refuse('malformed', `${INVALID_JWS}: JWS Protected Header is invalid`);
  const alg = typeof header.alg === 'string' ? header.alg : '';
  const kid = typeof header.kid === 'string' ? header.kid : undefined;
  if (!rules.algorithms.includes(alg)) return refuse('algorithm', `alg "${alg.slice(0, 20)}" is not allowed`);
  const algorithm = jwsAlgorithm(alg);
  if (algorithm === undefined) return refuse('algorithm', `alg "${alg.slice(0, 20)}" is not supported`);
  const found = keySet.lookup(kid, alg);
  const lookup: KeyLookup = found instanceof Promise ? await found : found;
  if (lookup === 'unavailable') return refuse('keys_unavailable', 'no keys were ever fetched');
  if (lookup.keys.length === 0) return refuse('unknown_key', `no key for kid ${JSON.stringify(kid ?? null)}`);
  const extension = unknownExtension(header);
  if (extension !== undefined) return refuse('malformed', `${INVALID_JWS}: ${extension}`);
  const input = Buffer.from(token.slice(0, payloadEnd), 'latin1');
  const signature = Buffer.from(token.slice(payloadEnd + 1), 'base64url');
  let unfit: string | undefined;
  let mismatched = false;
  // A key that cannot verify the algorithm is no candidate; a signature that does not verify may
  // be another key's of the same id. The first that verifies is final: the claims decide.
  for (const key of lookup.keys) {
    const why = algorithm.unfit(key);
    if (why !== undefined) {
      unfit ??= why;
      continue;
    }
    if (algorithm.verify(key, input, signature)) {
      // A crit that unknownExtension let through names b64 only, and b64 is there.
      if (header.b64 !== undefined) return refuse('malformed', `${INVALID_JWT}: JWTs MUST NOT use "b64"`);
      return claimsOf(token.slice(headerEnd + 1, payloadEnd), rules, now);
    }
    mismatched = true;
  }
  if (mismatched) return refuse('signature', BAD_SIGNATURE);
  return refuse('unknown_key', unfit ?? `no key for kid ${JSON.stringify(kid ?? null)}`);
}
