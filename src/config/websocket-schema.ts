/**
 * The `websocket` block: what established WebSocket connections may carry and how long they live
 * (message and frame sizes, message and byte rates, idle timeout, gateway keepalive pings,
 * lifetime). The top-level block holds the defaults; a route's own `websocket` block has the same
 * fields, each optional, and replaces the defaults field by field (src/policy/route-policy.ts
 * merges them). Optional limits take `off`.
 */
import { z } from 'zod';
import { durationLeaf, durationOrOff, OFF, sizeLeaf, sizeOrOff } from './measures.ts';

/** Largest size limit accepted: far above anything a peer should send in one message. */
const MAX_LIMIT = '64GiB';

const action = z
  .enum(['throttle', 'close'])
  .describe(
    'throttle: stop reading from the sender until the bucket refills, so TCP slows it down (nothing dropped or reordered); close: close 1008 (policy violation).',
  );

/**
 * The gateway throttles with millisecond timers: a bucket must hold at least a millisecond's worth
 * of tokens, or a sender would get about `burst` per millisecond whatever `perSecond` says.
 */
const BURST_PER_MS = {
  message: 'must be at least perSecond / 1000 (a millisecond of tokens)',
  path: ['burst'],
};
const holdsAMillisecond = (rate: { perSecond: number; burst: number }) => rate.burst >= rate.perSecond / 1000;

const messageRate = z.union([
  z.literal(OFF),
  z
    .strictObject({
      perSecond: z.number().positive().max(1_000_000).describe('Messages per second, on average.'),
      burst: z
        .number()
        .int()
        .min(1)
        .max(1_000_000)
        .describe('Messages that may come at once after a quiet spell; at least perSecond / 1000.'),
      action: action.default('throttle'),
    })
    .refine(holdsAMillisecond, BURST_PER_MS),
]);

const byteRate = z.union([
  z.literal(OFF),
  z
    .strictObject({
      perSecond: sizeLeaf('1B', MAX_LIMIT).describe('Payload bytes per second, on average.'),
      burst: sizeLeaf('1B', MAX_LIMIT).describe(
        'Payload bytes that may come at once, at least perSecond / 1000; a larger frame closes (close), or (throttle) puts the bucket into debt so that the rest of it and what follows wait.',
      ),
      action: action.default('throttle'),
    })
    .refine(holdsAMillisecond, BURST_PER_MS),
]);

type Leaf = z.ZodType<unknown, unknown>;

/** The block with its defaults (`defaults`) or with every field optional (a route's overrides). */
function block<Shape extends Record<string, Leaf>>(
  shape: Shape,
  defaults: { [K in keyof Shape]: z.input<Shape[K]> },
) {
  return {
    withDefaults: z.strictObject(
      Object.fromEntries(Object.entries(shape).map(([key, leaf]) => [key, leaf.prefault(defaults[key])])) as {
        [K in keyof Shape]: z.ZodPrefault<Shape[K]>;
      },
    ),
    overrides: z.strictObject(
      Object.fromEntries(Object.entries(shape).map(([key, leaf]) => [key, leaf.optional()])) as {
        [K in keyof Shape]: z.ZodOptional<Shape[K]>;
      },
    ),
  };
}

const directions = <L extends Leaf>(leaf: () => L, what: string, c2b: z.input<L>, b2c: z.input<L>) =>
  block(
    {
      clientToBackend: leaf().describe(`Client to backend: ${what}.`),
      backendToClient: leaf().describe(`Backend to client: ${what}.`),
    },
    { clientToBackend: c2b, backendToClient: b2c },
  );

const maxMessageSize = directions(
  () => sizeOrOff('1B', MAX_LIMIT),
  'the largest message, its payload summed across fragments (inflated size under permessage-deflate); over it the sender gets 1009',
  '16MiB',
  OFF,
);
const maxFrameSize = directions(
  () => sizeOrOff('1B', MAX_LIMIT),
  'the largest payload of one frame as on the wire (compressed under permessage-deflate); over it the sender gets 1009',
  OFF,
  OFF,
);
const messageRates = directions(
  () => messageRate,
  'the message rate, a token bucket { perSecond, burst, action } or off; control frames do not count',
  OFF,
  OFF,
);
const byteRates = directions(
  () => byteRate,
  'the byte rate of data payloads, a token bucket { perSecond, burst, action } with sizes, or off',
  OFF,
  OFF,
);
const keepalive = block(
  {
    client: durationOrOff().describe(
      'The gateway pings the client this often (its pong never reaches the backend).',
    ),
    backend: durationOrOff().describe('The gateway pings the backend this often.'),
    timeout: durationLeaf().describe(
      'Time a pinged peer has to answer: one that sends nothing at all for this long after a ping (while the gateway reads it) is closed as dead.',
    ),
  },
  { client: '30s', backend: OFF, timeout: '30s' },
);

const scalars = block(
  {
    idleTimeout: durationOrOff().describe(
      'No data message in either direction for this long closes both sides with 1001 (off by default: an idle but live connection stays; keepalive finds dead ones).',
    ),
    pingsCountAsActivity: z
      .boolean()
      .describe(
        "Whether the peers' own pings and pongs reset the idle timeout (the gateway's keepalive pings and their pongs never do).",
      ),
    maxLifetime: durationOrOff().describe(
      'A connection is closed with 1001 after this long (shortened at random by lifetimeJitter), so long-lived clients rebalance.',
    ),
    lifetimeJitter: z
      .number()
      .min(0)
      .max(0.5)
      .describe(
        "Share of maxLifetime, 0 to 0.5, by which each connection's lifetime is shortened at random.",
      ),
  },
  { idleTimeout: OFF, pingsCountAsActivity: false, maxLifetime: OFF, lifetimeJitter: 0.1 },
);

const nested = {
  maxMessageSize: [maxMessageSize, 'Message size limits per direction.'],
  maxFrameSize: [maxFrameSize, 'Frame size limits per direction.'],
  messageRate: [messageRates, 'Message rate limits per direction.'],
  byteRate: [byteRates, 'Byte rate limits per direction.'],
  keepalive: [
    keepalive,
    'Pings the gateway sends to find dead peers (through NATs and cloud load balancers).',
  ],
} as const;

/** The top-level block: every field with its default. */
export const websocketSchema = z.strictObject({
  maxMessageSize: maxMessageSize.withDefaults.prefault({}).describe(nested.maxMessageSize[1]),
  maxFrameSize: maxFrameSize.withDefaults.prefault({}).describe(nested.maxFrameSize[1]),
  messageRate: messageRates.withDefaults.prefault({}).describe(nested.messageRate[1]),
  byteRate: byteRates.withDefaults.prefault({}).describe(nested.byteRate[1]),
  keepalive: keepalive.withDefaults.prefault({}).describe(nested.keepalive[1]),
  ...scalars.withDefaults.shape,
});

/** A route's block: the same fields, each optional, replacing the defaults one by one. */
export const websocketOverridesSchema = z.strictObject({
  maxMessageSize: maxMessageSize.overrides.optional().describe(nested.maxMessageSize[1]),
  maxFrameSize: maxFrameSize.overrides.optional().describe(nested.maxFrameSize[1]),
  messageRate: messageRates.overrides.optional().describe(nested.messageRate[1]),
  byteRate: byteRates.overrides.optional().describe(nested.byteRate[1]),
  keepalive: keepalive.overrides.optional().describe(nested.keepalive[1]),
  ...scalars.overrides.shape,
});

export type WebSocketSettings = z.output<typeof websocketSchema>;
export type WebSocketOverrides = z.output<typeof websocketOverridesSchema>;
