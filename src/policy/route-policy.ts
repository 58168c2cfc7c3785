/**
 * What a route's connections obey, resolved once per configuration: the gateway-wide `websocket`
 * settings with the route's own on top (field by field), frozen, one object per route. The upgrade
 * context takes its route's policy and hands it to the tunnel, so that a tunnel keeps the policy it
 * started with whatever the gateway loads later, and every limit a route can set has one place to
 * live. Absent limits are `undefined`: nothing is checked for them.
 */
import type { TokenSourceSettings } from '../auth/token-sources.ts';
import type { TokenRules } from '../auth/verify-token.ts';
import type { AuthOverrides, AuthSettings } from '../config/auth-schema.ts';
import type { Config, WebSocketOverrides, WebSocketSettings } from '../config/schema.ts';
import type { Direction } from '../observability/metrics.ts';
import type { OriginPattern } from '../protocol/origin.ts';

/** What a rate limit does when its bucket is empty. */
export type LimitAction = 'throttle' | 'close';

/** A token bucket: `perSecond` tokens added each second, at most `burst` saved up. */
export interface RateLimit {
  readonly perSecond: number;
  readonly burst: number;
  readonly action: LimitAction;
}

/** The message limits of one direction. */
export interface DirectionLimits {
  /** Largest message, payload bytes summed across its fragments (inflated under permessage-deflate). */
  readonly maxMessageBytes: number | undefined;
  /** Largest payload of one frame, as on the wire. */
  readonly maxFrameBytes: number | undefined;
  readonly messageRate: RateLimit | undefined;
  readonly byteRate: RateLimit | undefined;
}

/** The deadlines of a tunnel. */
export interface TunnelPolicy {
  /** Time a side has to finish closing before its socket is destroyed. */
  readonly closeTimeoutMs: number;
  /** Time a destination may take to drain what is queued for it before the tunnel ends. */
  readonly sendTimeoutMs: number;
  /** Limits on what each direction carries. */
  readonly limits: Readonly<Record<Direction, DirectionLimits>>;
  /** No data message either way for this long closes the tunnel (1001). */
  readonly idleTimeoutMs: number | undefined;
  /** Whether pings and pongs count as activity for the idle timeout. */
  readonly pingsCountAsActivity: boolean;
  /** The gateway pings each side this often (undefined: never). */
  readonly pingIntervalMs: Readonly<Record<'client' | 'backend', number | undefined>>;
  /** Time a pinged side has to answer (or send anything) before it is closed as dead. */
  readonly pongTimeoutMs: number;
  /** Longest life of a tunnel, before jitter. */
  readonly maxLifetimeMs: number | undefined;
  /** Share of `maxLifetimeMs` (0 to 0.5) by which each tunnel's lifetime is shortened at random. */
  readonly lifetimeJitter: number;
}

/** Which browser origins may connect (src/protocol/origin.ts). */
export interface OriginPolicy {
  /** Empty: no Origin check. */
  readonly allow: readonly OriginPattern[];
  /** An upgrade without an Origin header. */
  readonly missing: 'allow' | 'refuse';
  /** Whether plain HTTP requests that carry an Origin are checked too. */
  readonly plainHttp: boolean;
}

/** What a route asks of a token, and what it does with one (src/front/jwt-stage.ts). */
export interface AuthPolicy extends TokenRules, TokenSourceSettings {
  /** Name of the key set in `keySets`. */
  readonly keySet: string;
  /** Claim name and the header it is sent to the backend in. */
  readonly claimHeaders: readonly (readonly [claim: string, header: string])[];
  /** What happens to a live WebSocket when its token expires; undefined: nothing. */
  readonly expiry: { readonly graceMs: number; readonly code: number } | undefined;
}

export interface RoutePolicy {
  readonly tunnel: TunnelPolicy;
  readonly origin: OriginPolicy;
  /** Undefined: the route asks for no token. */
  readonly auth: AuthPolicy | undefined;
}

/** `defaults` with each field `own` sets replaced. */
function over<T extends object>(defaults: T, own: { [K in keyof T]?: T[K] | undefined } | undefined): T {
  const result = { ...defaults };
  for (const key of Object.keys(own ?? {}) as (keyof T)[]) {
    const value = own?.[key];
    if (value !== undefined) result[key] = value;
  }
  return result;
}

/** A route's settings over the gateway's: each field the route sets replaces the default. */
function merged(defaults: WebSocketSettings, own: WebSocketOverrides | undefined): WebSocketSettings {
  if (own === undefined) return defaults;
  return {
    maxMessageSize: over(defaults.maxMessageSize, own.maxMessageSize),
    maxFrameSize: over(defaults.maxFrameSize, own.maxFrameSize),
    messageRate: over(defaults.messageRate, own.messageRate),
    byteRate: over(defaults.byteRate, own.byteRate),
    keepalive: over(defaults.keepalive, own.keepalive),
    idleTimeout: own.idleTimeout ?? defaults.idleTimeout,
    pingsCountAsActivity: own.pingsCountAsActivity ?? defaults.pingsCountAsActivity,
    maxLifetime: own.maxLifetime ?? defaults.maxLifetime,
    lifetimeJitter: own.lifetimeJitter ?? defaults.lifetimeJitter,
  };
}

const absent = <T>(value: T | 'off'): T | undefined => (value === 'off' ? undefined : value);

function directionLimits(settings: WebSocketSettings, key: 'clientToBackend' | 'backendToClient') {
  return Object.freeze({
    maxMessageBytes: absent(settings.maxMessageSize[key]),
    maxFrameBytes: absent(settings.maxFrameSize[key]),
    messageRate: absent(settings.messageRate[key]),
    byteRate: absent(settings.byteRate[key]),
  });
}

/** The tunnel policy for `settings` (already merged). */
function tunnelPolicy(config: Config, settings: WebSocketSettings): TunnelPolicy {
  return Object.freeze({
    closeTimeoutMs: config.tunnel.closeTimeout,
    sendTimeoutMs: config.tunnel.sendTimeout,
    limits: Object.freeze({
      client_to_backend: directionLimits(settings, 'clientToBackend'),
      backend_to_client: directionLimits(settings, 'backendToClient'),
    }),
    idleTimeoutMs: absent(settings.idleTimeout),
    pingsCountAsActivity: settings.pingsCountAsActivity,
    pingIntervalMs: Object.freeze({
      client: absent(settings.keepalive.client),
      backend: absent(settings.keepalive.backend),
    }),
    pongTimeoutMs: settings.keepalive.timeout,
    maxLifetimeMs: absent(settings.maxLifetime),
    lifetimeJitter: settings.lifetimeJitter,
  });
}

const list = <T>(value: T | readonly T[]): readonly T[] => (Array.isArray(value) ? value : [value as T]);

/** A route's token policy: its `auth` block over the gateway's, resolved; undefined when off. */
function authPolicy(defaults: AuthSettings, own: AuthOverrides | undefined): AuthPolicy | undefined {
  const { expiry, ...rest } = own ?? {};
  const settings = { ...over(defaults, rest), expiry: over(defaults.expiry, expiry) };
  if (settings.keySet === 'off') return undefined;
  return Object.freeze({
    keySet: settings.keySet,
    algorithms: Object.freeze([...settings.algorithms]),
    issuer: settings.issuer === 'off' ? undefined : list(settings.issuer),
    audience: settings.audience === 'off' ? undefined : list(settings.audience),
    clockToleranceMs: settings.clockTolerance,
    requireExpiry: settings.requireExpiry,
    requiredClaims: Object.entries(settings.requiredClaims).map(
      ([name, value]) => [name, list(value)] as const,
    ),
    tokenFrom: settings.tokenFrom,
    subprotocolMarker: settings.subprotocolMarker,
    cookie: settings.cookie,
    queryParameter: settings.queryParameter,
    claimHeaders: Object.entries(settings.claimHeaders),
    expiry: settings.expiry.close
      ? Object.freeze({ graceMs: settings.expiry.grace, code: settings.expiry.code })
      : undefined,
  });
}

/** The policy of every route of `config`, by route name. */
export function resolvePolicies(config: Config): ReadonlyMap<string, RoutePolicy> {
  const policies = new Map<string, RoutePolicy>();
  for (const [name, route] of Object.entries(config.routes)) {
    const settings = merged(config.websocket, route.websocket);
    const origin = Object.freeze(over(config.origins, route.origins));
    const auth = authPolicy(config.auth, route.auth);
    policies.set(name, Object.freeze({ tunnel: tunnelPolicy(config, settings), origin, auth }));
  }
  return policies;
}

/** Every duration of a policy the sweeper must resolve (so it ticks often enough for the shortest). */
export function policyDeadlines(policy: TunnelPolicy): number[] {
  const { sendTimeoutMs, idleTimeoutMs, pingIntervalMs, pongTimeoutMs, maxLifetimeMs } = policy;
  const pinging = pingIntervalMs.client !== undefined || pingIntervalMs.backend !== undefined;
  return [
    sendTimeoutMs,
    idleTimeoutMs,
    pingIntervalMs.client,
    pingIntervalMs.backend,
    pinging ? pongTimeoutMs : undefined,
    maxLifetimeMs,
  ].filter((ms): ms is number => ms !== undefined);
}

/** The query parameters tokens travel in, on every route that looks there (never logged). */
export function tokenParameters(policies: ReadonlyMap<string, RoutePolicy>): ReadonlySet<string> {
  const names = new Set<string>();
  for (const { auth } of policies.values()) {
    if (auth?.tokenFrom.includes('query')) names.add(auth.queryParameter);
  }
  return names;
}

/**
 * The headers any route fills from a token's claims: removed from what clients send on every
 * route, those without tokens included, since they may share a backend that believes them.
 */
export function identityHeaders(policies: ReadonlyMap<string, RoutePolicy>): ReadonlySet<string> {
  const names = new Set<string>();
  for (const { auth } of policies.values()) {
    for (const [, header] of auth?.claimHeaders ?? []) names.add(header.toLowerCase());
  }
  return names;
}
