/**
 * The gateway's own affinity cookie (`sticky.from: [affinityCookie]`): a random key, signed, that
 * the gateway sets on the first response of a session (a plain HTTP response or the 101) and reads
 * back on every later request, so that a session's long-polling requests and its WebSocket reach
 * one backend by consistent hashing on the key. The value names no backend: it is 16 random bytes
 * and an HMAC over them, so a client cannot write one that picks a backend of its choosing (a
 * cookie whose signature fails is ignored and replaced). Replicas agree on a cookie because they
 * share the signing key: the configured secret, or one derived from the pool's name.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

export interface AffinityCookieSettings {
  readonly name: string;
  /** Seconds, or undefined for a session cookie. */
  readonly maxAgeSeconds: number | undefined;
  readonly sameSite: 'Lax' | 'Strict' | 'None';
  readonly path: string;
  /** The signing secret shared by replicas; undefined: derived from the pool's name. */
  readonly secret: Buffer | undefined;
}

const NONCE_BYTES = 16;
const MAC_BYTES = 12;

export class AffinityCookie {
  readonly #settings: AffinityCookieSettings;
  readonly #key: Buffer;

  constructor(settings: AffinityCookieSettings, poolName: string) {
    this.#settings = settings;
    this.#key = settings.secret ?? createHash('sha256').update(`wsgate affinity\u0000${poolName}`).digest();
  }

  get name(): string {
    return this.#settings.name;
  }

  #mac(nonce: string): Buffer {
    return createHmac('sha256', this.#key).update(nonce).digest().subarray(0, MAC_BYTES);
  }

  /** The key in a cookie value the gateway issued; undefined when it is not one. */
  verify(value: string): string | undefined {
    const dot = value.indexOf('.');
    if (dot === -1) return undefined;
    const nonce = value.slice(0, dot);
    // Compared as text: base64 decoding is lenient and would read past trailing junk.
    const mac = Buffer.from(value.slice(dot + 1));
    const expected = Buffer.from(this.#mac(nonce).toString('base64url'));
    if (!/^[A-Za-z0-9_-]{22}$/.test(nonce) || mac.length !== expected.length) return undefined;
    return timingSafeEqual(mac, expected) ? nonce : undefined;
  }

  /** A new key, and the Set-Cookie header value that hands it to the client. */
  issue(secure: boolean): { key: string; setCookie: string } {
    const key = randomBytes(NONCE_BYTES).toString('base64url');
    const { name, maxAgeSeconds, sameSite, path } = this.#settings;
    const parts = [`${name}=${key}.${this.#mac(key).toString('base64url')}`, `Path=${path}`, 'HttpOnly'];
    parts.push(`SameSite=${sameSite}`);
    // SameSite=None needs Secure, or browsers drop the cookie; Secure is only set over TLS.
    if (secure) parts.push('Secure');
    if (maxAgeSeconds !== undefined) parts.push(`Max-Age=${maxAgeSeconds}`);
    return { key, setCookie: parts.join('; ') };
  }
}
