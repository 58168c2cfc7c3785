/**
 * The connection to Redis of the Redis limit store: node-redis options from `admission.store.redis`
 * (host, port, database from the URL; TLS from `rediss://` and the `tls` block; the credentials),
 * set to fail fast rather than wait: no offline queue (a command while disconnected is refused at
 * once), a bounded command queue, a connect timeout, and reconnection with a capped backoff.
 */
import { isIP } from 'node:net';
import { createClient, ErrorReply } from '@redis/client';
import type { RedisStoreSettings } from '../config/limit-store-schema.ts';

/** What the store needs of a Redis client. */
export interface RedisConnection {
  readonly isReady: boolean;
  sendCommand(args: readonly string[], options?: { abortSignal?: AbortSignal }): Promise<unknown>;
  connect(): Promise<unknown>;
  close(): Promise<void>;
  destroy(): void;
  on(event: 'error', listener: (error: Error) => void): unknown;
  on(event: 'ready', listener: () => void): unknown;
}

/** Commands waiting for Redis at most: past it a decision is made without it. */
const QUEUE_LIMIT = 10_000;
const CONNECT_TIMEOUT_MS = 2_000;
/** The longest wait between reconnection attempts. */
export const RECONNECT_CAP_MS = 2_000;

/** Milliseconds before reconnect attempt `retries`: 50 ms doubling to 2 s, with jitter. */
export function reconnectDelay(retries: number): number {
  const capped = Math.min(50 * 2 ** Math.min(retries, 10), RECONNECT_CAP_MS);
  return Math.round(capped * (0.5 + Math.random() / 2));
}

export function connectRedis(settings: RedisStoreSettings): RedisConnection {
  const url = new URL(settings.url);
  const secure = url.protocol === 'rediss:';
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const port = url.port === '' ? 6379 : Number(url.port);
  const common = { host, port, connectTimeout: CONNECT_TIMEOUT_MS, reconnectStrategy: reconnectDelay };
  const tls = settings.tls;
  const socket = secure
    ? {
        ...common,
        tls: true as const,
        // No SNI for an address (RFC 6066 §3); the certificate is still checked against it.
        ...(tls?.serverName || isIP(host) === 0 ? { servername: tls?.serverName ?? host } : {}),
        ...(tls?.ca ? { ca: tls.ca.pem } : {}),
        ...(tls?.cert && tls.key ? { cert: tls.cert.pem, key: tls.key.pem } : {}),
      }
    : { ...common, tls: false as const };
  const username = settings.username ?? (url.username === '' ? undefined : decodeURIComponent(url.username));
  const password =
    settings.password ??
    settings.passwordFile ??
    (url.password === '' ? undefined : decodeURIComponent(url.password));
  const database = url.pathname.length > 1 ? Number(url.pathname.slice(1)) : undefined;
  return createClient({
    socket,
    ...(username !== undefined ? { username } : {}),
    ...(password !== undefined ? { password } : {}),
    ...(database !== undefined ? { database } : {}),
    name: 'wsgate',
    RESP: 2,
    disableOfflineQueue: true,
    commandsQueueMaxLength: QUEUE_LIMIT,
  });
}

/** A script's answer of a shape it never gives: the key held something else. */
export class UnexpectedAnswer extends Error {
  constructor(reply: unknown) {
    super(`unexpected answer from Redis: ${JSON.stringify(reply)}`);
  }
}

/**
 * True for a failure of one key's data rather than of Redis: a key of another type (WRONGTYPE), a
 * value a script cannot read (ERR, a script error), an answer of the wrong shape.
 */
export function isKeyError(error: unknown): boolean {
  if (error instanceof UnexpectedAnswer) return true;
  return error instanceof ErrorReply && /^(WRONGTYPE|ERR) /.test(error.message);
}
