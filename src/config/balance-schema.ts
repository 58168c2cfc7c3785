/**
 * How a pool spreads new connections: `balance`, the algorithm for connections without a sticky
 * key, and `sticky`, where a connection's sticky key comes from (tried in order, the first found
 * wins) and the load bound of the consistent hashing that routes keyed connections. The same key
 * routes a session's long-polling requests and its WebSocket to one backend.
 */
import { z } from 'zod';
import { secretFromEnv, secretFromFile } from './auth-schema.ts';
import { durationOrOff, OFF } from './measures.ts';
import type { SchemaContext } from './schema-context.ts';

const name = z.string().min(1);

const source = z.union([
  z
    .literal('clientAddress')
    .describe('The client address (the socket peer, or X-Forwarded-For from a trusted proxy).'),
  z
    .literal('affinityCookie')
    .describe(
      "The gateway's own affinity cookie (sticky.cookie): always yields, setting a new one when absent.",
    ),
  z.strictObject({
    path: z
      .number()
      .int()
      .min(1)
      .max(32)
      .describe('The path segment at this position, 1 for the first (SockJS: /prefix/{server}/...).'),
  }),
  z.strictObject({ header: name.describe('A request header, e.g. X-Session-Id.') }),
  z.strictObject({ query: name.describe('A query parameter.') }),
  z.strictObject({ cookie: name.describe('A cookie the application sets, e.g. JSESSIONID.') }),
  z.strictObject({
    claim: name.describe('A claim of the verified token (the route asks for one), e.g. sub.'),
  }),
]);

export type StickySource = z.output<typeof source>;

export const balanceSchema = z
  .enum(['round_robin', 'least_connections'])
  .default('round_robin')
  .describe(
    'How connections without a sticky key are spread: round_robin (smooth, by weight) or least_connections (two backends drawn by weight, the less loaded one).',
  );

function cookieSchema(context: SchemaContext) {
  return z
    .strictObject({
      name: z
        .string()
        .regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/, 'must be a cookie name')
        .default('wsgate_affinity')
        .describe('Name of the affinity cookie.'),
      maxAge: durationOrOff()
        .prefault(OFF)
        .describe('Lifetime of the cookie; off: a session cookie, gone when the browser closes.'),
      sameSite: z
        .enum(['Lax', 'Strict', 'None'])
        .default('Lax')
        .describe('SameSite attribute; None is sent with Secure only, over TLS.'),
      path: z
        .string()
        .regex(/^\/[\x21-\x3a\x3c-\x7e]*$/, 'must be a path: "/" then printable characters, no ";" or spaces')
        .default('/')
        .describe('Path attribute.'),
      secretEnv: secretFromEnv(context)
        .optional()
        .describe(
          'Environment variable holding the key that signs the cookie (at least 32 bytes), the same on every replica. Absent: a key derived from the pool name.',
        ),
      secretFile: secretFromFile(context).optional().describe('File holding the signing key instead.'),
    })
    .refine((cookie) => cookie.secretEnv === undefined || cookie.secretFile === undefined, {
      message: 'set secretEnv or secretFile, not both',
    })
    .prefault({})
    .describe('The gateway-issued affinity cookie, when `from` lists affinityCookie.');
}

export function stickySchema(context: SchemaContext) {
  return z
    .strictObject({
      from: z
        .array(source)
        .min(1)
        .describe(
          'Where the sticky key is taken from, in order: affinityCookie, clientAddress, { path: N }, { header: name }, { query: name }, { cookie: name }, { claim: name }. The first source that yields a key is used; none: the balance algorithm.',
        ),
      loadFactor: z
        .union([z.literal(OFF), z.number().min(1.01).max(10)])
        .default(OFF)
        .describe(
          "Bound on a backend's share of open WebSockets, as a factor of its fair share (e.g. 1.25): a key whose backend is full goes to its next choice. off: no bound.",
        ),
      cookie: cookieSchema(context),
    })
    .optional()
    .describe(
      'Sticky routing: connections with the same key reach the same backend, on every gateway replica, by consistent hashing. Absent: no stickiness.',
    );
}

export type StickySettings = NonNullable<z.output<ReturnType<typeof stickySchema>>>;
