/**
 * Checking one JWT against a route's policy, with jose: the header's algorithm must be one the
 * route allows (never `none`), the key comes from the route's key set by `kid` and algorithm,
 * then the signature, `exp` and `nbf` (with the clock tolerance), `iss`, `aud`, and the required
 * claims. A refusal names its reason (for the log and the metric), never anything the client
 * could learn from; which jose error it was goes to the log as `detail`.
 */
import { decodeProtectedHeader, errors, type JWTPayload, type JWTVerifyOptions, jwtVerify } from 'jose';
import type { KeySet } from './key-set.ts';

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

/** A token that passed: what the gateway keeps of it. */
export interface VerifiedToken {
  readonly claims: Readonly<JWTPayload>;
  /** `iss` and `sub` together, the key of the per-subject limit; undefined without `sub`. */
  readonly subjectKey: string | undefined;
  /** `exp` in milliseconds since the epoch, if the token has one. */
  readonly expiresAtMs: number | undefined;
}

export type TokenVerdict =
  | { readonly ok: true; readonly token: VerifiedToken }
  | { readonly ok: false; readonly refusal: TokenRefusal; readonly detail: string };

const refuse = (refusal: TokenRefusal, detail: string): TokenVerdict => ({ ok: false, refusal, detail });

/** Whether `claim` equals `value` or contains it (an array, or a space-separated string). */
function holds(claim: unknown, value: string | number | boolean): boolean {
  if (claim === value) return true;
  if (Array.isArray(claim)) return claim.includes(value);
  return typeof claim === 'string' && typeof value === 'string' && claim.split(' ').includes(value);
}

function refusalOf(error: unknown): TokenRefusal {
  if (error instanceof errors.JWTExpired) return 'expired';
  if (error instanceof errors.JWTClaimValidationFailed) {
    if (error.claim === 'nbf' && error.reason === 'check_failed') return 'not_yet_valid';
    if (error.claim === 'iss') return 'issuer';
    if (error.claim === 'aud') return 'audience';
    if (error.claim === 'exp' && error.reason === 'missing') return 'no_expiry';
    return 'malformed';
  }
  if (error instanceof errors.JOSEAlgNotAllowed) return 'algorithm';
  if (error instanceof errors.JWSSignatureVerificationFailed) return 'signature';
  return 'malformed';
}

function describe(error: unknown): string {
  if (error instanceof errors.JOSEError) return `${error.code}: ${error.message}`;
  return error instanceof Error ? error.message : String(error);
}

/** The payload of a token whose signature and standard claims passed, checked for the route's claims. */
function withClaims(payload: JWTPayload, rules: TokenRules): TokenVerdict {
  // A StringOrURI (RFC 7519 §4.1.2): a number or an object would key the per-subject limit badly.
  if (payload.sub !== undefined && typeof payload.sub !== 'string') {
    return refuse('malformed', `"sub" is a ${typeof payload.sub}, not a string`);
  }
  for (const [name, values] of rules.requiredClaims) {
    const missing = values.find((value) => !holds(payload[name], value));
    if (missing !== undefined) return refuse('claims', `claim "${name}" lacks ${JSON.stringify(missing)}`);
  }
  return {
    ok: true,
    token: {
      claims: payload,
      subjectKey: payload.sub === undefined ? undefined : `${payload.iss ?? ''}\u0000${payload.sub}`,
      expiresAtMs: typeof payload.exp === 'number' ? payload.exp * 1000 : undefined,
    },
  };
}

/** Checks `token`; `now` is the wall clock's time in milliseconds. */
export async function verifyToken(
  token: string,
  keySet: KeySet,
  rules: TokenRules,
  now: number,
): Promise<TokenVerdict> {
  let alg: string;
  let kid: string | undefined;
  try {
    const header = decodeProtectedHeader(token);
    alg = typeof header.alg === 'string' ? header.alg : '';
    kid = typeof header.kid === 'string' ? header.kid : undefined;
  } catch (error) {
    return refuse('malformed', describe(error));
  }
  if (!rules.algorithms.includes(alg)) return refuse('algorithm', `alg "${alg.slice(0, 20)}" is not allowed`);
  const lookup = await keySet.lookup(kid, alg);
  if (lookup === 'unavailable') return refuse('keys_unavailable', 'no keys were ever fetched');
  if (lookup.keys.length === 0) return refuse('unknown_key', `no key for kid ${JSON.stringify(kid ?? null)}`);
  const options: JWTVerifyOptions = {
    algorithms: [...rules.algorithms],
    clockTolerance: rules.clockToleranceMs / 1000,
    currentDate: new Date(now),
    requiredClaims: rules.requireExpiry ? ['exp'] : [],
  };
  if (rules.issuer !== undefined) options.issuer = [...rules.issuer];
  if (rules.audience !== undefined) options.audience = [...rules.audience];
  let last: unknown;
  for (const key of lookup.keys) {
    try {
      const { payload } = await jwtVerify(token, key, options);
      return withClaims(payload, rules);
    } catch (error) {
      last = error;
      // Another key of the same id and type may be the right one; any other failure is final.
      if (!(error instanceof errors.JWSSignatureVerificationFailed)) break;
    }
  }
  return refuse(refusalOf(last), describe(last));
}
