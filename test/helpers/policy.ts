/**
 * Tunnel policies for tests that build a tunnel or relay by hand: no limits, no keepalive, no
 * idle timeout or lifetime unless the test sets them.
 */
import type { DirectionLimits, TunnelPolicy } from '../../src/policy/route-policy.ts';
import type { RelayOptions, RelayOwner } from '../../src/tunnel/relay.ts';
import type { TunnelObserver } from '../../src/tunnel/tunnel.ts';

export const NO_LIMITS: DirectionLimits = Object.freeze({
  maxMessageBytes: undefined,
  maxFrameBytes: undefined,
  messageRate: undefined,
  byteRate: undefined,
});

/** A policy with nothing but the deadlines, plus `overrides`. */
export function tunnelPolicy(overrides: Partial<TunnelPolicy> = {}): TunnelPolicy {
  return {
    closeTimeoutMs: 5_000,
    sendTimeoutMs: 30_000,
    limits: { client_to_backend: NO_LIMITS, backend_to_client: NO_LIMITS },
    idleTimeoutMs: undefined,
    pingsCountAsActivity: false,
    pingIntervalMs: { client: undefined, backend: undefined },
    pongTimeoutMs: 30_000,
    maxLifetimeMs: undefined,
    lifetimeJitter: 0,
    ...overrides,
  };
}

/** A tunnel observer that records nothing. */
export const IGNORE_OBSERVER: TunnelObserver = {
  limitHit: () => {},
  throttled: () => {},
  pingRtt: () => {},
  deadPeer: () => {},
};

/** A relay owner that is told everything and does nothing; tests replace the events they watch. */
export const QUIET_OWNER: RelayOwner = {
  relayCloseFrame: () => {},
  relayBackedUp: () => {},
  relayGatewayPong: () => {},
  relayLimit: () => {},
  relayThrottleStart: () => {},
  relayThrottled: () => {},
  relaySettled: () => {},
};

/** A client-to-backend relay's options with no limits, no deflate and callbacks that do nothing. */
export const QUIET_RELAY = {
  direction: 'client_to_backend',
  allowedRsv: 0,
  limits: NO_LIMITS,
  limitCodes: { tooBig: 'CLIENT_MESSAGE_TOO_BIG', rateLimited: 'CLIENT_RATE_LIMITED' },
  deflate: undefined,
  from: 'client',
  owner: QUIET_OWNER,
} as const satisfies Partial<RelayOptions>;
