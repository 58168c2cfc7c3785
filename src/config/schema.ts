/**
 * The configuration schema: the single source of truth for what a wsgate YAML file may contain,
 * its defaults and units, and the TypeScript types the rest of the gateway reads. Every object is
 * strict (an unknown key is an error), durations and sizes are strings with units and come out as
 * milliseconds and bytes (within the range the gateway can use: no zero timeouts, nothing longer
 * than a timer can wait), and PEM files are read here (relative to the config file) so that an
 * unreadable certificate is reported at its line like any other mistake.
 */
import { isIP } from 'node:net';
import { z } from 'zod';
import { admissionSchema } from './admission-schema.ts';
import { authOverridesSchema, authSchema, keySetSchema } from './auth-schema.ts';
import { backendSchema, discoverySchema, drainTimeoutSchema, slowStartSchema } from './backend-schema.ts';
import { balanceSchema, stickySchema } from './balance-schema.ts';
import { healthSchema } from './health-schema.ts';
import { duration, size } from './measures.ts';
import { originsOverridesSchema, originsSchema } from './origin-schema.ts';
import { pemFile } from './pem-file.ts';
import type { SchemaContext } from './schema-context.ts';
import { listenerTlsSchema, proxyProtocolPeersSchema, proxyProtocolSchema } from './tls-schema.ts';
import { websocketOverridesSchema, websocketSchema } from './websocket-schema.ts';

export { RANGE_META } from './measures.ts';
export type { OriginOverrides, OriginSettings } from './origin-schema.ts';
export type { PemFile } from './pem-file.ts';
export type { SchemaContext } from './schema-context.ts';
export type { WebSocketOverrides, WebSocketSettings } from './websocket-schema.ts';

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
const nameKey = z.string().regex(NAME, 'names use letters, digits, "_", "-" and "." only');

const port = z.number().int().min(0).max(65535);
const address = z.string().refine((text) => isIP(text) !== 0 || text === 'localhost', {
  message: 'must be an IP address (e.g. 0.0.0.0, 127.0.0.1, ::) or localhost',
});

function listenerSchema(context: SchemaContext) {
  return z.strictObject({
    address: address.default('0.0.0.0').describe('Address to bind.'),
    port: port.describe('Port to bind; 0 picks a free port.'),
    tls: listenerTlsSchema(context)
      .optional()
      .describe('Terminate TLS (wss:// and https://) on this listener.'),
    proxyProtocol: proxyProtocolSchema,
    proxyProtocolPeers: proxyProtocolPeersSchema,
    handshakeTimeout: duration('10s').describe(
      'Time a client has to finish its TLS handshake and send a complete request head.',
    ),
    requestTimeout: duration('60s').describe('Time a client has to send a complete plain HTTP request.'),
    keepAliveTimeout: duration('5s').describe('Idle time before an HTTP keep-alive connection is closed.'),
    maxHeaderSize: size('16KiB', '1KiB', '1MiB').describe(
      'Largest request head accepted; larger heads get 431.',
    ),
  });
}

function routeSchema() {
  return z.strictObject({
    hosts: z
      .array(
        z
          .string()
          .toLowerCase()
          .regex(/^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/, {
            message: 'must be a host name like "chat.example.com" or a wildcard like "*.example.com"',
          }),
      )
      .default([])
      .describe('Host names this route serves (exact or "*.example.com"); empty or absent means any host.'),
    path: z
      .string()
      .startsWith('/', 'must start with "/"')
      .default('/')
      .describe('Path prefix; the longest matching prefix wins.'),
    pool: nameKey.describe('Name of the pool that serves this route.'),
    websocket: websocketOverridesSchema
      .optional()
      .describe("This route's own WebSocket limits; each field set here replaces the top-level one."),
    origins: originsOverridesSchema
      .optional()
      .describe("This route's own Origin policy; each field set here replaces the top-level one."),
    auth: authOverridesSchema
      .optional()
      .describe("This route's own token policy; each field set here replaces the top-level one."),
  });
}

function poolTlsSchema(context: SchemaContext) {
  return z.strictObject({
    ca: pemFile(context)
      .optional()
      .describe('PEM CA bundle to verify https:// backends (default: system CAs).'),
    serverName: z.string().optional().describe('SNI and certificate name to check (default: the URL host).'),
    verify: z.boolean().default(true).describe('Verify backend certificates; turn off only for testing.'),
  });
}

function poolSchema(context: SchemaContext) {
  return z.strictObject({
    backends: z
      .array(backendSchema)
      .min(1, 'a pool needs at least one backend')
      .describe('Backends of this pool.'),
    connectTimeout: duration('5s').describe('Time to establish a TCP (and TLS) connection to a backend.'),
    handshakeTimeout: duration('10s').describe(
      'Time a backend has to answer an upgrade request after connecting.',
    ),
    responseTimeout: duration('60s').describe(
      'Time a backend has to start answering a plain HTTP request (its status line). Long-polling backends hold requests for their poll interval: keep this above it.',
    ),
    retries: z
      .number()
      .int()
      .min(0)
      .max(10)
      .default(2)
      .describe('Further backends tried when connecting fails before any byte was sent.'),
    preserveHost: z
      .boolean()
      .default(true)
      .describe("Send the client's Host header to the backend (false: the backend URL's host)."),
    tls: poolTlsSchema(context).prefault({}).describe('TLS settings for https:// backends.'),
    discovery: discoverySchema,
    drainTimeout: drainTimeoutSchema,
    slowStart: slowStartSchema,
    balance: balanceSchema,
    sticky: stickySchema(context),
    health: healthSchema,
  });
}

const logSchema = z.strictObject({
  level: z
    .enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'])
    .default('info')
    .describe('Lowest level written.'),
  format: z
    .enum(['json', 'pretty'])
    .default('json')
    .describe('json: one JSON object per line; pretty: for humans.'),
  query: z
    .enum(['redact', 'keep'])
    .default('redact')
    .describe(
      'Query strings in logged paths: redact writes the parameter names with their values replaced (tokens and secrets often travel there), keep writes them as received.',
    ),
  httpRequests: z
    .strictObject({
      level: z
        .enum(['trace', 'debug', 'info', 'warn'])
        .default('info')
        .describe(
          'Level of the access line of a plain HTTP request that the backend answered; failures log at the level of their outcome code.',
        ),
      sample: z
        .number()
        .min(0)
        .max(1)
        .default(1)
        .describe(
          'Share of those lines written, from 0 (none) to 1 (all); failed requests are always logged.',
        ),
    })
    .prefault({})
    .describe('The access line written for each plain HTTP request (long-polling, SSE, streaming).'),
});

const adminSchema = z.strictObject({
  enabled: z.boolean().default(true).describe('Serve /metrics, /healthz, /readyz and /status.'),
  readiness: z
    .enum(['listening', 'healthyBackends'])
    .default('listening')
    .describe(
      '/readyz is 200 once the listeners are bound (listening), or only while every route has a backend that is up (healthyBackends).',
    ),
  address: address.default('127.0.0.1').describe('Address to bind; keep it private.'),
  port: port
    .default(8410)
    .describe(
      "Port to bind; 0 picks a free port. The default, 8410, is clear of the ports of Prometheus (9090), its exporters (9100-9999) and other proxies' admin ports.",
    ),
});

const forwardingSchema = z.strictObject({
  trustedProxies: z
    .array(z.string())
    .default([])
    .describe('Addresses or CIDR ranges whose X-Forwarded-* headers are kept and appended to.'),
});

const tunnelSchema = z.strictObject({
  closeTimeout: duration('5s').describe('Time a side has to finish closing before its socket is destroyed.'),
  sendTimeout: duration('30s').describe(
    'Time a peer that stopped reading has to take what the gateway queued for it (about a socket buffer and 64 KiB) before its connection is destroyed and the tunnel closed.',
  ),
});

const shutdownSchema = z.strictObject({
  drainDelay: duration('0s', { zeroAllowed: true }).describe(
    'After SIGTERM, time to keep serving normally while /readyz answers 503, so that load balancers and Kubernetes endpoints stop sending traffic first; then the drain starts. SIGINT skips it.',
  ),
  drainTimeout: duration('30s').describe(
    'Longest time from SIGTERM to exit, drain delay included; leftovers are destroyed then.',
  ),
  closeSpread: duration('1s', { zeroAllowed: true }).describe(
    'Close frames (1001) to live tunnels are spread over this window (0s: all at once); drainDelay plus closeSpread must be less than drainTimeout.',
  ),
});

const reloadSchema = z.strictObject({
  watch: z
    .boolean()
    .default(false)
    .describe(
      'Reload when the configuration file changes (a Kubernetes ConfigMap update, an edit); SIGHUP and `wsgate reload` work either way.',
    ),
  checkInterval: duration('5s').describe(
    'With watch, how often the file is read again in case a change was not signalled (network mounts, a replaced directory).',
  ),
});

/** Builds the schema; PEM paths resolve against `context.baseDir`. */
export function createConfigSchema(context: SchemaContext) {
  return z.strictObject({
    log: logSchema.prefault({}).describe('Logging.'),
    workers: z
      .union([z.literal('auto'), z.number().int().min(1).max(256)])
      .default(1)
      .describe(
        'Worker processes sharing the listeners, under one supervisor that serves the admin endpoints for all: a number, or auto (one per core the process may use). 1: one process, no supervisor.',
      ),
    listenerSharing: z
      .enum(['supervisor', 'reusePort'])
      .default('supervisor')
      .describe(
        'With workers: supervisor: the supervisor accepts each connection and hands it to the workers in turn; reusePort: each worker binds its own socket with SO_REUSEPORT and the kernel spreads connections (Linux; cheaper handshakes, no port 0).',
      ),
    admin: adminSchema.prefault({}).describe('The admin server: metrics and health checks.'),
    listeners: z
      .record(nameKey, listenerSchema(context))
      .refine((map) => Object.keys(map).length > 0, 'at least one listener is needed')
      .describe('Addresses the gateway accepts connections on, by name.'),
    routes: z
      .record(nameKey, routeSchema())
      .refine((map) => Object.keys(map).length > 0, 'at least one route is needed')
      .describe('Which requests go to which pool, by name.'),
    pools: z.record(nameKey, poolSchema(context)).describe('Groups of backends, by name.'),
    forwarding: forwardingSchema.prefault({}).describe('Handling of X-Forwarded-* headers.'),
    tunnel: tunnelSchema.prefault({}).describe('Established WebSocket tunnels.'),
    keySets: z
      .record(nameKey, keySetSchema(context))
      .default({})
      .describe(
        'Where the keys that verify tokens (JWT) come from, by name; routes name one in `auth.keySet`.',
      ),
    auth: authSchema
      .prefault({})
      .describe(
        'What a route asks of a token (JWT), inherited by every route (which may override each field).',
      ),
    admission: admissionSchema(context)
      .prefault({})
      .describe('How many WebSocket connections the gateway takes at once, and how fast from one address.'),
    origins: originsSchema
      .prefault({})
      .describe(
        'Which browser origins may connect (Cross-Site WebSocket Hijacking), inherited by every route.',
      ),
    websocket: websocketSchema
      .prefault({})
      .describe(
        'Limits of established WebSocket connections, inherited by every route (which may override each field).',
      ),
    shutdown: shutdownSchema.prefault({}).describe('Graceful shutdown on SIGTERM.'),
    reload: reloadSchema
      .prefault({})
      .describe('Configuration reloads: SIGHUP, `wsgate reload`, and optionally the file watched.'),
  });
}

export type ConfigSchema = ReturnType<typeof createConfigSchema>;
/** The validated, normalized configuration (durations in ms, sizes in bytes, PEMs read). */
export type Config = z.output<ConfigSchema>;
export type ListenerConfig = Config['listeners'][string];
export type RouteConfig = Config['routes'][string];
export type PoolConfig = Config['pools'][string];
export type BackendConfig = PoolConfig['backends'][number];
