/**
 * The token settings: `keySets` (where the keys that verify JWTs come from: a JWKS URL, key
 * files, or an HMAC secret from an environment variable or a file, never written in the YAML)
 * and `auth` (what a route asks of a token: the key set, the algorithms, issuer, audience, claims,
 * where the token travels, which claims go to the backend as headers, and what happens when it
 * expires). The top-level `auth` block holds the defaults; a route's own block replaces them
 * field by field. Files and variables are read here, so a missing one is reported at its line.
 */
import { resolve } from 'node:path';
import { z } from 'zod';
import { parseKeyFile, type VerifyKey } from '../keys/key-material.ts';
import { durationLeaf, OFF } from './measures.ts';
import { readConfigFile } from './pem-file.ts';
import type { SchemaContext } from './schema-context.ts';

/** Algorithms a route may allow; `none` is not one of them, whatever a token says. */
export const ASYMMETRIC_ALGORITHMS = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
  'Ed25519',
] as const;
export const HMAC_ALGORITHMS = ['HS256', 'HS384', 'HS512'] as const;
export type Algorithm = (typeof ASYMMETRIC_ALGORITHMS)[number] | (typeof HMAC_ALGORITHMS)[number];

/** Shortest HMAC secret accepted: the output size of SHA-256 (RFC 7518 §3.2). */
export const MIN_SECRET_BYTES = 32;

function checkedSecret(secret: Buffer, where: string, ctx: z.RefinementCtx): Buffer | typeof z.NEVER {
  if (secret.length < MIN_SECRET_BYTES) {
    ctx.addIssue({
      code: 'custom',
      message: `${where} holds ${secret.length} bytes; an HMAC secret needs at least ${MIN_SECRET_BYTES}`,
    });
    return z.NEVER;
  }
  return secret;
}

function keyFiles(context: SchemaContext) {
  return z
    .array(
      z.string().transform((path, ctx): VerifyKey[] => {
        const content = readConfigFile(context, path, ctx);
        if (content === undefined) return z.NEVER;
        const parsed = parseKeyFile(content);
        if ('problem' in parsed) {
          ctx.addIssue({ code: 'custom', message: `${resolve(context.baseDir, path)}: ${parsed.problem}` });
          return z.NEVER;
        }
        return parsed.keys;
      }),
    )
    .min(1, 'name at least one key file')
    .transform((lists) => lists.flat())
    .describe(
      'Public key files: PEM (a public key or a certificate) or JSON (a JWK or a JWKS), relative to the config file.',
    );
}

export function secretFromEnv(context: SchemaContext) {
  return z
    .string()
    .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name')
    .transform((name, ctx) => {
      const value = context.env[name];
      if (value === undefined || value === '') {
        ctx.addIssue({ code: 'custom', message: `environment variable ${name} is not set` });
        return z.NEVER;
      }
      return checkedSecret(Buffer.from(value, 'utf8'), `environment variable ${name}`, ctx);
    })
    .describe('Name of the environment variable that holds the HMAC secret (its bytes, as UTF-8).');
}

export function secretFromFile(context: SchemaContext) {
  return z
    .string()
    .transform((path, ctx) => {
      const content = readConfigFile(context, path, ctx);
      if (content === undefined) return z.NEVER;
      // A trailing newline is how editors and `kubectl create secret` leave files.
      const secret = Buffer.from(content.toString('latin1').replace(/\r?\n$/, ''), 'latin1');
      return checkedSecret(secret, resolve(context.baseDir, path), ctx);
    })
    .describe('File that holds the HMAC secret (a trailing newline is not part of it).');
}

const SOURCES = ['jwksUrl', 'files', 'secretEnv', 'secretFile'] as const;
const JWKS_OPTIONS = ['fetchTimeout', 'refreshInterval', 'refreshCooldown'] as const;

/** A JWKS document fetched from the identity provider, kept fresh in the background. */
export interface JwksKeySet {
  readonly kind: 'jwks';
  readonly url: string;
  readonly fetchTimeout: number;
  readonly refreshInterval: number;
  readonly refreshCooldown: number;
}

/** Keys read from files at load time. */
export interface StaticKeySet {
  readonly kind: 'static';
  readonly keys: readonly VerifyKey[];
}

/** An HMAC secret. */
export interface SecretKeySet {
  readonly kind: 'secret';
  readonly secret: Buffer;
}

export type KeySetConfig = JwksKeySet | StaticKeySet | SecretKeySet;

/** One key set: exactly one of the four sources (the JWKS options only with `jwksUrl`). */
export function keySetSchema(context: SchemaContext) {
  return z
    .strictObject({
      jwksUrl: z
        .url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' })
        .optional()
        .describe('URL of the identity provider\'s JWKS document (its "jwks_uri").'),
      fetchTimeout: durationLeaf()
        .optional()
        .describe(
          'With jwksUrl: time one fetch of the JWKS may take (connect, answer and body); default 5s.',
        ),
      refreshInterval: durationLeaf()
        .optional()
        .describe(
          'With jwksUrl: how often the JWKS is fetched again in the background; while the provider cannot be reached, the last keys fetched stay in use. Default 10m.',
        ),
      refreshCooldown: durationLeaf()
        .optional()
        .describe(
          'With jwksUrl: a token signed with a key id the gateway does not know makes it fetch the JWKS again, at most this often. Default 30s.',
        ),
      files: keyFiles(context).optional(),
      secretEnv: secretFromEnv(context).optional(),
      secretFile: secretFromFile(context).optional(),
    })
    .superRefine((set, ctx) => {
      const given = SOURCES.filter((source) => set[source] !== undefined);
      if (given.length !== 1) {
        ctx.addIssue({
          code: 'custom',
          message:
            given.length === 0
              ? 'a key set needs one of jwksUrl, files, secretEnv or secretFile'
              : `a key set has one source, not ${given.join(' and ')}`,
        });
      }
      if (set.jwksUrl !== undefined) return;
      for (const option of JWKS_OPTIONS) {
        if (set[option] !== undefined) {
          ctx.addIssue({ code: 'custom', path: [option], message: 'applies only with jwksUrl' });
        }
      }
    })
    .transform((set): KeySetConfig => {
      if (set.jwksUrl !== undefined) {
        return {
          kind: 'jwks',
          url: set.jwksUrl,
          fetchTimeout: set.fetchTimeout ?? 5_000,
          refreshInterval: set.refreshInterval ?? 600_000,
          refreshCooldown: set.refreshCooldown ?? 30_000,
        };
      }
      if (set.files !== undefined) return { kind: 'static', keys: set.files };
      return { kind: 'secret', secret: set.secretEnv ?? set.secretFile ?? Buffer.alloc(0) };
    })
    .describe('Where the keys that verify tokens come from.');
}

const tokenSource = z.enum(['authorization', 'subprotocol', 'cookie', 'query']);
export type TokenSourceName = z.output<typeof tokenSource>;

const claimValue = z.union([z.string(), z.number(), z.boolean()]);
const headerName = z
  .string()
  .regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/, 'must be an HTTP header name')
  .refine(
    (name) =>
      !/^(host|connection|upgrade|content-length|transfer-encoding|sec-websocket-.*|x-forwarded-.*|x-request-id)$/i.test(
        name,
      ),
    'is a header the gateway itself controls',
  );

const fields = {
  keySet: z
    .union([z.literal(OFF), z.string().min(1)])
    .describe('Name of the key set (in `keySets`) that verifies tokens; off: no token is asked for.'),
  algorithms: z
    .array(z.enum([...ASYMMETRIC_ALGORITHMS, ...HMAC_ALGORITHMS]))
    .describe(
      'Signature algorithms accepted (e.g. [RS256]); "none" never is. HS* need a secret key set, the others public keys: a token cannot choose how it is checked.',
    ),
  issuer: z
    .union([z.literal(OFF), z.string().min(1), z.array(z.string().min(1)).min(1)])
    .describe('The `iss` a token must carry (one or a list); off: not checked.'),
  audience: z
    .union([z.literal(OFF), z.string().min(1), z.array(z.string().min(1)).min(1)])
    .describe('The `aud` a token must carry (one of a list); off: not checked.'),
  clockTolerance: durationLeaf({ zeroAllowed: true }).describe(
    'Clock difference allowed with the identity provider when checking `exp` and `nbf`.',
  ),
  requireExpiry: z
    .boolean()
    .describe('Refuse tokens without `exp` (a session could then never be bound to its token).'),
  requiredClaims: z
    .record(z.string().min(1), z.union([claimValue, z.array(claimValue).min(1)]))
    .describe(
      'Claims a token must carry, by name: the claim must equal the value, or contain it (an array claim, or a space-separated string such as `scope`); a list asks for each value. Missing: 403.',
    ),
  tokenFrom: z
    .array(tokenSource)
    .min(1)
    .refine((list) => new Set(list).size === list.length, 'lists a source twice')
    .describe(
      'Where the token is looked for, in order: authorization (Authorization: Bearer), subprotocol (Sec-WebSocket-Protocol, after the marker), cookie, query. The first one found is used.',
    ),
  subprotocolMarker: z
    .string()
    .regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/, 'must be a subprotocol token')
    .describe(
      'The entry in Sec-WebSocket-Protocol that the token follows: a browser offers [marker, token, ...subprotocols].',
    ),
  cookie: z.string().min(1).describe('Name of the cookie the token travels in.'),
  queryParameter: z.string().min(1).describe('Name of the query parameter the token travels in.'),
  claimHeaders: z
    .record(z.string().min(1), headerName)
    .describe(
      'Claims sent to the backend as headers, claim name to header name (e.g. sub: X-User-Id); any copy of those headers from the client is removed first.',
    ),
  expiry: z
    .strictObject({
      close: z.boolean().describe('Close the WebSocket when its token expires.'),
      grace: durationLeaf({ zeroAllowed: true }).describe(
        'Time the connection may outlive its token (after `exp` and the clock tolerance).',
      ),
      code: z
        .number()
        .int()
        .refine((code) => code === 1008 || (code >= 4000 && code <= 4999), 'must be 1008 or 4000-4999')
        .describe('Close code sent to the client: 1008 (policy violation) or an application code 4000-4999.'),
    })
    .describe('What happens to a live WebSocket when its token expires.'),
};

export const authSchema = z.strictObject({
  keySet: fields.keySet.default(OFF),
  algorithms: fields.algorithms.default([]),
  issuer: fields.issuer.default(OFF),
  audience: fields.audience.default(OFF),
  clockTolerance: fields.clockTolerance.prefault('30s'),
  requireExpiry: fields.requireExpiry.default(true),
  requiredClaims: fields.requiredClaims.default({}),
  tokenFrom: fields.tokenFrom.default(['authorization', 'subprotocol']),
  subprotocolMarker: fields.subprotocolMarker.default('bearer'),
  cookie: fields.cookie.default('access_token'),
  queryParameter: fields.queryParameter.default('access_token'),
  claimHeaders: fields.claimHeaders.default({}),
  expiry: z
    .strictObject({
      close: fields.expiry.shape.close.default(true),
      grace: fields.expiry.shape.grace.prefault('0s'),
      code: fields.expiry.shape.code.default(1008),
    })
    .prefault({})
    .describe(fields.expiry.description ?? ''),
});

export const authOverridesSchema = z.strictObject({
  keySet: fields.keySet.optional(),
  algorithms: fields.algorithms.optional(),
  issuer: fields.issuer.optional(),
  audience: fields.audience.optional(),
  clockTolerance: fields.clockTolerance.optional(),
  requireExpiry: fields.requireExpiry.optional(),
  requiredClaims: fields.requiredClaims.optional(),
  tokenFrom: fields.tokenFrom.optional(),
  subprotocolMarker: fields.subprotocolMarker.optional(),
  cookie: fields.cookie.optional(),
  queryParameter: fields.queryParameter.optional(),
  claimHeaders: fields.claimHeaders.optional(),
  expiry: z
    .strictObject({
      close: fields.expiry.shape.close.optional(),
      grace: fields.expiry.shape.grace.optional(),
      code: fields.expiry.shape.code.optional(),
    })
    .optional()
    .describe(fields.expiry.description ?? ''),
});

export type AuthSettings = z.output<typeof authSchema>;
export type AuthOverrides = z.output<typeof authOverridesSchema>;
