/**
 * The rows of the outcome table (codes.ts) for tunnels: how a WebSocket ended after the 101, with
 * the close frames the gateway writes to each side still there to read one.
 */
import type { CodeInfo } from './code-info.ts';

export const TUNNEL_CODES = {
  // After the 101: how a tunnel ended. First the close handshakes between the peers.
  CLIENT_CLOSED: {
    phase: 'tunnel',
    status: 0,
    closes: {},
    source: 'downstream',
    level: 'info',
    description:
      "The client sent the first close frame; it was relayed, and the backend's answer too (a normal end).",
  },
  BACKEND_CLOSED: {
    phase: 'tunnel',
    status: 0,
    closes: {},
    source: 'upstream',
    level: 'info',
    description: 'The backend sent the first close frame; the client got its code and reason (a normal end).',
  },
  // Then the ways the gateway had to step in.
  CLIENT_PROTOCOL_ERROR: {
    phase: 'tunnel',
    status: 0,
    closes: { client: [1002, 'protocol error'], backend: [1002, 'protocol error'] },
    source: 'downstream',
    level: 'info',
    description:
      'The client broke RFC 6455 framing (unmasked frame, reserved bits or opcode, bad control frame); both sides get 1002.',
  },
  BACKEND_PROTOCOL_ERROR: {
    phase: 'tunnel',
    status: 0,
    closes: { client: [1014, 'backend protocol error'], backend: [1002, 'protocol error'] },
    source: 'upstream',
    level: 'warn',
    description: 'The backend broke RFC 6455 framing; the backend gets 1002, the client 1014.',
  },
  CLIENT_LOST: {
    phase: 'tunnel',
    status: 0,
    closes: { client: [1001, 'client lost'], backend: [1001, 'client went away'] },
    source: 'downstream',
    level: 'debug',
    description:
      'The client connection ended or reset without a close frame; the backend gets 1001 (and the client too, if it only half-closed and still reads).',
  },
  BACKEND_LOST: {
    phase: 'tunnel',
    status: 0,
    closes: { client: [1014, 'backend lost'], backend: [1001, 'backend lost'] },
    source: 'upstream',
    level: 'warn',
    description:
      'The backend connection ended or reset without a close frame; the client gets 1014 (or a TCP close if mid-frame).',
  },
  CLIENT_SEND_TIMEOUT: {
    phase: 'tunnel',
    status: 0,
    closes: { backend: [1001, 'client not reading'] },
    source: 'downstream',
    level: 'info',
    description:
      'The client did not read what the gateway had queued for it within `tunnel.sendTimeout` (a stalled or vanished reader); its connection is destroyed (a close frame would never reach it) and the backend gets 1001.',
  },
  BACKEND_SEND_TIMEOUT: {
    phase: 'tunnel',
    status: 0,
    closes: { client: [1014, 'backend not reading'] },
    source: 'upstream',
    level: 'warn',
    description:
      'The backend did not read what the gateway had queued for it within `tunnel.sendTimeout`; its connection is destroyed and the client gets 1014.',
  },
  CLIENT_MESSAGE_TOO_BIG: {
    phase: 'tunnel',
    status: 0,
    closes: { client: [1009, 'message too big'], backend: [1001, 'client message too big'] },
    source: 'downstream',
    level: 'info',
    description:
      'The client sent a message over `maxMessageSize` (summed across fragments, inflated under permessage-deflate) or a frame over `maxFrameSize`; the client gets 1009, the backend 1001, and the backend never receives the whole message.',
  },
  BACKEND_MESSAGE_TOO_BIG: {
    phase: 'tunnel',
    status: 0,
    closes: { client: [1014, 'backend message too big'], backend: [1009, 'message too big'] },
    source: 'upstream',
    level: 'warn',
    description:
      'The backend sent a message or frame over the backend-to-client size limit; the backend gets 1009, the client 1014, and the client never receives the whole message.',
  },
  CLIENT_RATE_LIMITED: {
    phase: 'tunnel',
    status: 0,
    closes: { client: [1008, 'rate limit exceeded'], backend: [1001, 'client rate limited'] },
    source: 'downstream',
    level: 'info',
    description:
      'The client went over a message or byte rate limit whose action is `close`; the client gets 1008 (policy violation), the backend 1001, and the message that went over is not delivered.',
  },
  BACKEND_RATE_LIMITED: {
    phase: 'tunnel',
    status: 0,
    closes: { client: [1014, 'backend rate limited'], backend: [1008, 'rate limit exceeded'] },
    source: 'upstream',
    level: 'warn',
    description:
      'The backend went over a backend-to-client rate limit whose action is `close`; the backend gets 1008, the client 1014.',
  },
  IDLE_TIMEOUT: {
    phase: 'tunnel',
    status: 0,
    closes: { client: [1001, 'idle timeout'], backend: [1001, 'idle timeout'] },
    source: 'gateway',
    level: 'debug',
    description: 'No data message went either way for `idleTimeout`; both sides get 1001.',
  },
  CLIENT_UNRESPONSIVE: {
    phase: 'tunnel',
    status: 0,
    closes: { client: [1001, 'ping timeout'], backend: [1001, 'client not responding'] },
    source: 'downstream',
    level: 'info',
    description:
      "The client sent nothing, not even the pong to the gateway's ping, for `keepalive.timeout` after that ping while the gateway was reading it (a dead peer); both sides get 1001.",
  },
  BACKEND_UNRESPONSIVE: {
    phase: 'tunnel',
    status: 0,
    closes: { client: [1014, 'backend not responding'], backend: [1001, 'ping timeout'] },
    source: 'upstream',
    level: 'warn',
    description:
      "The backend did not answer the gateway's ping (or send anything) within `keepalive.timeout`; the backend gets 1001, the client 1014.",
  },
  LIFETIME_EXCEEDED: {
    phase: 'tunnel',
    status: 0,
    closes: { client: [1001, 'max lifetime reached'], backend: [1001, 'max lifetime reached'] },
    source: 'gateway',
    level: 'debug',
    description:
      'The connection reached `maxLifetime` (less its jitter); both sides get 1001, so the client reconnects and is balanced again.',
  },
  TOKEN_EXPIRED: {
    phase: 'tunnel',
    status: 0,
    closes: { client: [1008, 'token expired'], backend: [1001, 'client token expired'] },
    source: 'gateway',
    level: 'info',
    description:
      'The token the connection was opened with expired (`exp`, plus `clockTolerance` and `auth.expiry.grace`); the client gets 1008 "token expired", or the 4000-4999 code of `auth.expiry.code`, and can reconnect with a fresh token; the backend gets 1001.',
  },
  GATEWAY_SHUTDOWN: {
    phase: 'tunnel',
    status: 0,
    closes: { client: [1001, 'gateway shutting down'], backend: [1001, 'gateway shutting down'] },
    source: 'gateway',
    level: 'info',
    description: 'The gateway is shutting down; both sides get 1001 (going away).',
  },
  BACKEND_REMOVED: {
    phase: 'tunnel',
    status: 0,
    closes: { client: [1001, 'backend removed'], backend: [1001, 'backend removed'] },
    source: 'gateway',
    level: 'info',
    description:
      "The tunnel's backend left its pool (gone from DNS) and the pool's `drainTimeout` passed with the tunnel still open; both sides get 1001 (going away), and the client reconnects to a backend still in the pool.",
  },
  CLOSE_TIMEOUT: {
    phase: 'tunnel',
    status: 0,
    closes: {},
    source: 'gateway',
    level: 'debug',
    description:
      'A side did not finish the closing handshake within `tunnel.closeTimeout`; its socket was destroyed.',
  },
} as const satisfies Record<string, CodeInfo>;
