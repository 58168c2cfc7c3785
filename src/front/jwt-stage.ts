/**
 * The token check of a route, for upgrades and plain HTTP requests alike (a client must not get
 * past it by falling back to long-polling). The client's copies of the claim headers are already
 * gone (identity-headers.ts, on every route). It finds the token where the route says (taking a query or
 * subprotocol token out of the request), verifies it (src/auth/verify-token.ts), and sends the
 * configured claims to the backend as headers. The verified token stays in `ctx.auth` for what
 * follows: the per-subject limit and the tunnel, which closes when the token expires.
 *
 * Refusals follow RFC 6750 §3: no token is a 401 with `WWW-Authenticate: Bearer`, a bad one a 401
 * with `error="invalid_token"`, a missing claim a 403 with `error="insufficient_scope"`; nothing
 * else is told. With no keys ever fetched, the answer is a 503: the gateway fails closed.
 */
import type { KeySet } from '../auth/key-set.ts';
import { searchToken } from '../auth/token-sources.ts';
import { type TokenRefusal, verifyToken } from '../auth/verify-token.ts';
import type { AuthPolicy } from '../policy/route-policy.ts';
import type { Rejection, RequestStage } from './request-stage.ts';

export interface JwtStageDeps {
  /** Wall-clock time in milliseconds (token times are seconds since the epoch). */
  readonly wallNow: () => number;
  readonly onRefused: (reason: TokenRefusal) => void;
}

const MISSING: Rejection = { code: 'AUTH_TOKEN_MISSING', headers: [['WWW-Authenticate', 'Bearer']] };

function rejection(refusal: TokenRefusal, detail: string): Rejection {
  if (refusal === 'claims') {
    return {
      code: 'AUTH_INSUFFICIENT',
      headers: [['WWW-Authenticate', 'Bearer error="insufficient_scope"']],
      detail,
    };
  }
  if (refusal === 'keys_unavailable') return { code: 'AUTH_KEYS_UNAVAILABLE', detail };
  return {
    code: 'AUTH_TOKEN_INVALID',
    headers: [['WWW-Authenticate', 'Bearer error="invalid_token"']],
    detail: `${refusal}: ${detail}`,
  };
}

/** Longest claim header value sent: a backend refuses a head larger than its limit. */
const MAX_CLAIM_HEADER_LENGTH = 8192;

/**
 * A claim as a header value: printable ASCII as it is, anything else percent-encoded; absent when
 * the token has no such claim, `false` when it cannot be sent (too long, or nested too deep to
 * write out).
 */
export function claimHeaderValue(claim: unknown): string | undefined | false {
  if (claim === undefined || claim === null) return undefined;
  let text: string;
  if (typeof claim === 'string') text = claim;
  else if (typeof claim === 'number' || typeof claim === 'boolean') text = String(claim);
  else if (Array.isArray(claim) && claim.every((item) => typeof item === 'string')) text = claim.join(',');
  else {
    try {
      text = JSON.stringify(claim);
    } catch {
      return false; // nested deeper than the stack (a token of 16 KiB can be)
    }
  }
  const value = /^[\x20-\x7e]*$/.test(text) ? text : encodeURIComponent(text);
  return value.length > MAX_CLAIM_HEADER_LENGTH ? false : value;
}

export function jwtStage(policy: AuthPolicy, keySet: KeySet, deps: JwtStageDeps): RequestStage {
  return {
    name: 'jwt',
    appliesTo: 'both',
    run(ctx) {
      const search = searchToken(ctx.req, ctx.pass === 'upgrade', policy, ctx.upstream);
      if (search.markerOffered) ctx.auth.subprotocolMarker = policy.subprotocolMarker;
      if (search.ambiguous !== undefined) {
        deps.onRefused('malformed');
        return rejection('malformed', search.ambiguous);
      }
      if (search.found === undefined) {
        deps.onRefused('missing');
        return MISSING;
      }
      const { source, token } = search.found;
      return verifyToken(token, keySet, policy, deps.wallNow()).then((verdict) => {
        if (!verdict.ok) {
          deps.onRefused(verdict.refusal);
          return rejection(verdict.refusal, `${verdict.detail} (token from ${source})`);
        }
        for (const [claim, header] of policy.claimHeaders) {
          const value = claimHeaderValue(verdict.token.claims[claim]);
          if (value === false) {
            // The backend would get the request without the identity it relies on: refused instead.
            deps.onRefused('malformed');
            return rejection(
              'malformed',
              `claim "${claim}" cannot be sent as ${header} (token from ${source})`,
            );
          }
          if (value !== undefined) ctx.upstream.set.push([header, value]);
        }
        ctx.auth.token = verdict.token;
        return undefined;
      });
    },
  };
}
