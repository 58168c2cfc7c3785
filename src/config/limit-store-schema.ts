/**
 * `admission.store`: where the per-client and per-subject limits keep their counts. `memory` (the
 * default) counts in each process; `redis` counts for every replica and worker that shares one
 * Redis, so a cap of 10 connections per user holds across the fleet. How Redis is reached (URL,
 * TLS, credentials), how long a lease outlives a gateway that died holding it, how long a decision
 * may wait for Redis, and what happens when it cannot be asked.
 */
import { z } from 'zod';
import { duration } from './measures.ts';
import { pemFile, textFile } from './pem-file.ts';
import type { SchemaContext } from './schema-context.ts';

function redisUrl() {
  return z
    .string()
    .refine(
      (text) => {
        try {
          const url = new URL(text);
          const database = url.pathname === '' || url.pathname === '/' || /^\/\d{1,5}$/.test(url.pathname);
          return (url.protocol === 'redis:' || url.protocol === 'rediss:') && url.hostname !== '' && database;
        } catch {
          return false;
        }
      },
      {
        message:
          'must be a redis:// or rediss:// URL with a host and at most a database number, like "redis://redis.example:6379/0"',
      },
    )
    .describe(
      '`redis://[user:password@]host[:port][/db]`, or `rediss://` for TLS. A password is better given by `password` (as an environment variable reference) or `passwordFile` than written here.',
    );
}

function redisTlsSchema(context: SchemaContext) {
  return z.strictObject({
    ca: pemFile(context)
      .optional()
      .describe("PEM bundle of the CAs Redis's certificate is checked against; absent: Node.js's CA list."),
    cert: pemFile(context)
      .optional()
      .describe('PEM client certificate, when Redis asks for one (mutual TLS).'),
    key: pemFile(context).optional().describe('PEM private key of `cert`.'),
    serverName: z
      .string()
      .min(1)
      .optional()
      .describe("Name Redis's certificate must carry (and SNI); absent: the URL's host."),
  });
}

function redisStoreSchema(context: SchemaContext) {
  return z
    .strictObject({
      url: redisUrl(),
      username: z.string().min(1).optional().describe('ACL user name (absent: the URL\'s, or "default").'),
      password: z
        .string()
        .min(1)
        .optional()
        .describe(
          'Password, best written as an environment variable reference so that it stays out of the file.',
        ),
      passwordFile: textFile(context)
        .optional()
        .describe(
          'File that holds the password, e.g. a mounted Secret (a trailing newline is not part of it).',
        ),
      tls: redisTlsSchema(context).optional().describe('TLS settings, for a `rediss://` URL.'),
      keyPrefix: z
        .string()
        .max(100)
        .default('wsgate:')
        .describe(
          'Put before every key, so that several fleets (or other applications) can share one Redis.',
        ),
      leaseTtl: duration('30s').describe(
        'How long a connection stays counted after the last refresh of its lease (every third of this): the time after which a gateway that died stops counting against the caps. At least 1s.',
      ),
      timeout: duration('250ms').describe(
        'Longest wait for Redis on one upgrade; past it (or when Redis is not connected), the upgrade is decided as `whenUnreachable` says.',
      ),
      whenUnreachable: z
        .enum(['open', 'closed'])
        .default('open')
        .describe(
          "What an upgrade gets when Redis cannot be asked: open, decided by this process's own counts (the limits hold per process, as with the memory store); closed, refused with 503 and Retry-After.",
        ),
    })
    .superRefine((redis, ctx) => {
      if (redis.password !== undefined && redis.passwordFile !== undefined)
        ctx.addIssue({
          code: 'custom',
          path: ['passwordFile'],
          message: 'give password or passwordFile, not both',
        });
      if (redis.tls !== undefined && new URL(redis.url).protocol !== 'rediss:')
        ctx.addIssue({ code: 'custom', path: ['tls'], message: 'TLS settings need a rediss:// URL' });
      if ((redis.tls?.cert === undefined) !== (redis.tls?.key === undefined))
        ctx.addIssue({ code: 'custom', path: ['tls'], message: 'give cert and key together' });
      if (redis.leaseTtl < 1000)
        ctx.addIssue({ code: 'custom', path: ['leaseTtl'], message: 'must be at least 1s' });
      if (redis.timeout * 3 > redis.leaseTtl)
        ctx.addIssue({
          code: 'custom',
          path: ['timeout'],
          message: 'must be at most a third of leaseTtl (a lease is refreshed every third of it)',
        });
    });
}

export function limitStoreSchema(context: SchemaContext) {
  return z
    .union([z.literal('memory'), z.strictObject({ redis: redisStoreSchema(context) })])
    .default('memory')
    .describe(
      'Where the per-client and per-subject limits count: `memory`, in each process (per worker); `{ redis: {...} }`, in one Redis shared by every replica and worker.',
    );
}

export type LimitStoreSettings = z.output<ReturnType<typeof limitStoreSchema>>;
export type RedisStoreSettings = z.output<ReturnType<typeof redisStoreSchema>>;
