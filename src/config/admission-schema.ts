/**
 * The `admission` block: how many WebSocket connections the gateway takes at once, from everyone
 * and from one client address, and how fast one address may open them. It holds for the whole
 * gateway (every listener and route), counted in each process or, with `store: { redis }`, across
 * the fleet.
 */
import { z } from 'zod';
import { limitStoreSchema } from './limit-store-schema.ts';
import { OFF } from './measures.ts';
import type { SchemaContext } from './schema-context.ts';

const count = (max: number) => z.union([z.literal(OFF), z.number().int().min(1).max(max)]);

export function admissionSchema(context: SchemaContext) {
  return z.strictObject({
    maxConnections: count(10_000_000)
      .default(OFF)
      .describe(
        'WebSocket connections open at once (handshakes included), from everyone; over it: 503 with Retry-After.',
      ),
    perClient: z
      .strictObject({
        maxConnections: count(1_000_000)
          .default(OFF)
          .describe('WebSocket connections open at once from one client address; over it: 429.'),
        handshakeRate: z
          .union([
            z.literal(OFF),
            z
              .strictObject({
                perSecond: z
                  .number()
                  .positive()
                  .max(1_000_000)
                  .describe('Upgrade requests per second, on average.'),
                burst: z
                  .number()
                  .int()
                  .min(1)
                  .max(1_000_000)
                  .describe('Upgrade requests that may come at once.'),
              })
              .refine((rate) => rate.burst >= rate.perSecond / 1000, {
                message: 'must be at least perSecond / 1000 (a millisecond of tokens)',
                path: ['burst'],
              }),
          ])
          .default(OFF)
          .describe(
            'Upgrade requests one client address may make: a token bucket { perSecond, burst }; over it: 429 with Retry-After.',
          ),
      })
      .prefault({})
      .describe('Limits per client address (the socket peer, or X-Forwarded-For from a trusted proxy).'),
    perSubject: z
      .strictObject({
        maxConnections: count(1_000_000)
          .default(OFF)
          .describe(
            'WebSocket connections open at once for one token subject (`iss` and `sub`), across every route that asks for tokens; over it: 429.',
          ),
      })
      .prefault({})
      .describe('Limits per token subject (routes with `auth.keySet`).'),
    maxTrackedClients: z
      .number()
      .int()
      .min(1)
      .max(10_000_000)
      .default(100_000)
      .describe(
        'Client addresses the per-client limits remember at once; idle ones are forgotten first. When every one is busy, a new address gets 429.',
      ),
    store: limitStoreSchema(context),
  });
}

export type AdmissionSettings = z.output<ReturnType<typeof admissionSchema>>;
