/**
 * Tokens for tests: RSA signing keys with their public JWK, JWTs signed with jose (or forged by
 * hand: `alg: none`, an HS256 token keyed with an RSA public key), and a local identity provider
 * that serves a JWKS document the test can rotate, break or take down, counting its fetches.
 */
import { createHmac, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { TestContext } from 'node:test';
import { type JWTPayload, SignJWT } from 'jose';
import { closeServer, listen, trackConnections } from './backends.ts';

export interface SigningKey {
  readonly kid: string;
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  /** The public JWK, with kid, alg and use. */
  readonly jwk: Record<string, unknown>;
}

export function rsaKey(kid: string): SigningKey {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = { ...publicKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' };
  return { kid, privateKey, publicKey, jwk };
}

/** Seconds since the epoch, now. */
export const nowSeconds = (): number => Math.floor(Date.now() / 1000);

/** A token signed with `key` (RS256), valid for an hour unless `claims` say otherwise. */
export function signToken(
  key: SigningKey,
  claims: JWTPayload = {},
  header: { kid?: string } = {},
): Promise<string> {
  return new SignJWT({ sub: 'user-1', iat: nowSeconds(), exp: nowSeconds() + 3600, ...claims })
    .setProtectedHeader({ alg: 'RS256', kid: header.kid ?? key.kid })
    .sign(key.privateKey);
}

/** An HS256 token signed with `secret`. */
export function signHmac(secret: Uint8Array, claims: JWTPayload = {}): Promise<string> {
  return new SignJWT({ sub: 'user-1', exp: nowSeconds() + 3600, ...claims })
    .setProtectedHeader({ alg: 'HS256' })
    .sign(secret);
}

const base64url = (data: string | Buffer): string => Buffer.from(data).toString('base64url');

/** A token with `alg: none` and no signature. */
export function unsignedToken(claims: JWTPayload): string {
  return `${base64url(JSON.stringify({ alg: 'none', typ: 'JWT' }))}.${base64url(JSON.stringify(claims))}.`;
}

/**
 * Algorithm confusion: an HS256 token whose HMAC key is the RSA public key's PEM, which a verifier
 * that lets the token choose the algorithm would accept.
 */
export function confusedToken(key: SigningKey, claims: JWTPayload): string {
  const input = `${base64url(JSON.stringify({ alg: 'HS256', kid: key.kid }))}.${base64url(JSON.stringify(claims))}`;
  const pem = key.publicKey.export({ format: 'pem', type: 'spki' });
  return `${input}.${createHmac('sha256', pem).update(input).digest('base64url')}`;
}

export interface IdentityProvider {
  readonly url: string;
  /** Fetches of the JWKS so far. */
  fetches(): number;
  /** The keys served from now on. */
  serve(keys: readonly SigningKey[]): void;
  /** Answer 503 from now on (true) or the JWKS again (false). */
  fail(down: boolean): void;
  /** Keep the answers to fetches from now on until release() (a slow identity provider). */
  hold(): void;
  /** Answers the fetches held, and every later one at once. */
  release(): void;
}

/** A local JWKS endpoint at `/jwks.json`, closed by `t.after`. */
export async function startIdentityProvider(
  t: TestContext,
  keys: readonly SigningKey[],
): Promise<IdentityProvider> {
  let served = keys;
  let down = false;
  let fetches = 0;
  let held: (() => void)[] | undefined;
  const server: Server = createServer((req, res) => {
    fetches++;
    if (held !== undefined) {
      held.push(() => answer(req, res));
      return;
    }
    answer(req, res);
  });
  const answer = (req: IncomingMessage, res: ServerResponse): void => {
    if (down || req.url !== '/jwks.json') {
      res.writeHead(down ? 503 : 404).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/jwk-set+json' });
    res.end(JSON.stringify({ keys: served.map((key) => key.jwk) }));
  };
  const { sockets } = trackConnections(server);
  const port = await listen(server);
  t.after(() => closeServer(server, sockets));
  return {
    url: `http://127.0.0.1:${port}/jwks.json`,
    fetches: () => fetches,
    serve: (next) => {
      served = next;
    },
    fail: (next) => {
      down = next;
    },
    hold: () => {
      held ??= [];
    },
    release: () => {
      const waiting = held ?? [];
      held = undefined;
      for (const send of waiting) send();
    },
  };
}
