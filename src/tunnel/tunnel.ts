/**
 * A live WebSocket between a client and a backend after the 101: two relays (relay.ts), one per
 * direction, each with its frame scanner, forward bytes unchanged (masking is already right for
 * each), with backpressure: when a destination's buffer is full, the source stops being read until
 * `drain`. The scanners read frame headers as they pass, to count messages, see close frames and
 * catch protocol violations, without ever buffering a payload. The tunnel owns what concerns both
 * directions: who closed, why, the close deadline, and teardown.
 *
 * Closing, the part proxies usually get wrong:
 * - Close frames between the peers are relayed untouched; whoever sent the first one closed.
 * - When the gateway must end a tunnel itself (shutdown, a side lost, a protocol violation) it
 *   writes its own close frame to each side that is still there, but only at a frame boundary
 *   (unmasked to the client, masked to the backend, RFC 6455 §5.1), and drops whatever that side's
 *   peer sends afterwards, since nothing may follow a close frame (§5.5.1).
 * - A FIN or reset on one side ends the other; `closeTimeout` later, whatever is left is destroyed,
 *   so no socket lingers in CLOSE_WAIT. Teardown runs exactly once, when both sockets are closed.
 *
 * Stalls: a socket paused for backpressure is not read, so neither a FIN queued behind its unread
 * bytes nor a reset would be seen. While a side is backed up the tunnel joins the gateway's
 * sweeper: each tick probes the paused socket with an empty write (which fails on a reset
 * connection, so the usual loss handling follows), and a destination that has not drained within
 * `sendTimeout` is destroyed (nothing written to a peer that does not read would reach it), the
 * other side gets a close frame and the tunnel ends.
 */
import type { Socket } from 'node:net';
import { type CloseFrame, type Closes, codeInfo, type ErrorCode } from '../errors/codes.ts';
import type { Initiator } from '../observability/metrics.ts';
import type { LimitAction } from '../policy/route-policy.ts';
import { encodeCloseFrame } from './close-frame.ts';
import type { ScanResult } from './frame-scanner.ts';
import { Liveness } from './liveness.ts';
import { probeForReset } from './probe.ts';
import { PENDING, Relay, type RelayOwner } from './relay.ts';
import { RelayWatch } from './relay-watch.ts';
import { directionFrom, other, SIDE_BIT, SIDES, type Side } from './sides.ts';
import { keepAlive, linkSocket, type SocketEvent, type SocketEvents } from './socket-link.ts';
import type { Sweepable } from './sweeper.ts';
import { relayOptions, type TunnelHeads, type TunnelOptions } from './tunnel-options.ts';
import type { LimitName } from './verdict.ts';

export type {
  DeflateParameters,
  TunnelCounters,
  TunnelHeads,
  TunnelObserver,
  TunnelOptions,
  TunnelSession,
  TunnelSettings,
  TunnelSummary,
} from './tunnel-options.ts';

const KEEPALIVE_PENDING = 16; // in #sideFlags: TCP keepalive is to be turned on at the first sweep

export class Tunnel implements Sweepable, RelayOwner, SocketEvents {
  readonly id: string;
  readonly #options: TunnelOptions;
  /** Handshake leftovers, apart from the options (kept): forwarded by start(), then let go. */
  #heads: TunnelHeads | undefined;
  readonly #sockets: Record<Side, Socket>;
  /** The relay of the stream coming FROM each side. */
  readonly #relays: Record<Side, Relay>;
  readonly #startedAt = performance.now();
  /** Sides whose socket closed (SIDE_BIT), to end once their close frame is written (<< 2); KEEPALIVE_PENDING. */
  #sideFlags = 0;
  /** Set after an unexpected exception: scanner state is no longer trusted, data is dropped. */
  #broken = false;
  #closeCode: number | undefined;
  #closeReason = '';
  #initiator: Initiator | undefined;
  #errorCode: ErrorCode | undefined;
  #closeTimer: NodeJS.Timeout | undefined;
  #finished = false;
  /** Idle timeout, keepalive and lifetime; undefined when the policy has none (or closing began). */
  #liveness: Liveness | undefined;
  /** What the liveness checks see of the relays (with liveness only). */
  #watch: RelayWatch | undefined;

  constructor(options: TunnelOptions, heads: TunnelHeads) {
    this.id = options.id;
    this.#options = options;
    this.#heads = heads;
    this.#sockets = { client: options.client, backend: options.backend };
    this.#relays = {
      client: new Relay(relayOptions(options, 'client', this)),
      backend: new Relay(relayOptions(options, 'backend', this)),
    };
    if (Liveness.needed(options.policy) || options.session !== undefined) {
      this.#liveness = new Liveness(
        options.policy,
        options.settings.sweeper.now(),
        Math.random,
        options.session?.endsAt,
      );
      this.#watch = new RelayWatch(this.#relays, options.settings.sweeper, this.#liveness);
    }
  }

  /** Wires both sockets and forwards the bytes that came with the handshakes. Call after the 101. */
  start(): void {
    // TCP keepalive on both sides, pinged or not: a gateway ping waits for a frame boundary, so a
    // side stopped mid-frame has no other dead-peer check. A swept tunnel turns it on at its first
    // sweep (under a second): a shorter connection saves eight system calls, none is found later.
    if (this.#liveness) this.#sideFlags |= KEEPALIVE_PENDING;
    for (const side of SIDES) {
      const socket = this.#sockets[side];
      socket.setNoDelay(true);
      if (!this.#liveness) keepAlive(socket);
      linkSocket(socket, this, side);
      if (socket.destroyed) queueMicrotask(() => this.#onClose(side));
    }
    // Leftover handshake bytes go through the scanners first (dropping them is a classic bug).
    const heads = this.#heads;
    this.#heads = undefined;
    try {
      if (heads && heads.backend.length > 0) this.#onData('backend', heads.backend);
      if (heads && heads.client.length > 0) this.#onData('client', heads.client);
    } catch (error) {
      this.#onBug(error);
    }
    this.#relays.client.resume('handshake');
    this.#relays.backend.resume('handshake');
    if (this.#liveness) this.#options.settings.sweeper.add(this);
  }

  /**
   * The gateway ends the tunnel for `code` (GATEWAY_SHUTDOWN on a drain): each side still there
   * gets the close frame the table gives it, then the usual close deadline applies.
   */
  close(code: ErrorCode): void {
    this.#gatewayClose(code);
  }

  /** Destroys both sockets now; teardown follows from their close events. */
  destroy(): void {
    this.#sockets.client.destroy();
    this.#sockets.backend.destroy();
  }

  /**
   * Sweeper tick: ends the tunnel on a destination stalled past `sendTimeout` (and probes paused
   * sources), then runs the idle, keepalive and lifetime checks.
   */
  sweep(now: number): void {
    try {
      if ((this.#sideFlags & KEEPALIVE_PENDING) !== 0) {
        this.#sideFlags &= ~KEEPALIVE_PENDING;
        for (const side of SIDES) keepAlive(this.#sockets[side]);
      }
      for (const side of SIDES) {
        const since = this.#toward(side).backedUpSince;
        if (since !== undefined) {
          if (now - since >= this.#options.policy.sendTimeoutMs) this.#sendTimedOut(side);
          else probeForReset(this.#sockets[other(side)]);
        } else if (this.#relays[side].throttled) {
          // A throttled socket is not read either: a reset behind its unread bytes would go unseen.
          probeForReset(this.#sockets[side]);
        }
      }
      if (!this.#needsSweep()) this.#options.settings.sweeper.delete(this);
      if (this.#initiator !== undefined) this.#liveness = undefined; // closing: nothing more to watch
      const verdict = this.#watch && this.#liveness?.sweep(now, this.#watch);
      if (verdict === undefined) return;
      if (verdict === 'CLIENT_UNRESPONSIVE') this.#options.observer.deadPeer('client');
      else if (verdict === 'BACKEND_UNRESPONSIVE') this.#options.observer.deadPeer('backend');
      else if (verdict !== 'TOKEN_EXPIRED')
        this.#options.observer.limitHit(verdict === 'IDLE_TIMEOUT' ? 'idle_timeout' : 'lifetime', 'close');
      this.#liveness = undefined;
      this.#gatewayClose(verdict);
    } catch (error) {
      this.#onBug(error);
    }
  }

  /** An event of the socket of `side`, from the shared listeners (called by them only). */
  socketEvent(side: Side, event: SocketEvent, value: Buffer | Error | undefined): void {
    // Data first: it is the event of every read.
    if (event === 'data' || event === 'end') {
      try {
        if (event === 'data') this.#onData(side, value as Buffer);
        else this.#onEnd(side);
      } catch (error) {
        this.#onBug(error);
      }
    } else if (event === 'drain') this.#onDrain(side);
    else if (event === 'close') this.#onClose(side);
    else this.#options.log.debug({ side, err: value }, 'socket error');
  }

  /** The relay whose destination is `side`. */
  #toward(side: Side): Relay {
    return this.#relays[other(side)];
  }

  /**
   * A bug must cost one tunnel, not the process. The scanners may be mid-update, so the only
   * trusted fact is whether what was last written toward each side ended at a frame boundary:
   * there the INTERNAL_ERROR close frame (1011) goes out, elsewhere the socket is destroyed.
   */
  #onBug(error: unknown): void {
    this.#options.log.error({ err: error }, 'tunnel failed unexpectedly');
    if (this.#broken) return;
    this.#broken = true;
    const { closes } = codeInfo('INTERNAL_ERROR');
    this.#recordGatewayClose('INTERNAL_ERROR');
    for (const side of SIDES) {
      const frame = closes[side];
      const socket = this.#sockets[side];
      const relay = this.#toward(side);
      if (relay.closed || !socket.writable) continue;
      if (relay.closeSeen) {
        socket.end(); // the peer's close frame already went to this side
      } else if (relay.boundaryOut && frame) {
        relay.closed = true;
        socket.end(encodeCloseFrame(frame[0], frame[1], side === 'backend'));
      } else {
        socket.destroy();
      }
    }
    this.#armCloseTimer();
  }

  /** RelayOwner (called by this tunnel's relays only): a close frame came from `from`. */
  relayCloseFrame(from: Side, code: number | undefined, reason: string): void {
    this.#onCloseFrame(from, code, reason);
  }

  /** RelayOwner: the socket toward the other side could not take a whole write. */
  relayBackedUp(from: Side): void {
    this.#backedUp(other(from));
  }

  /** RelayOwner: `from` answered the gateway's ping. */
  relayGatewayPong(from: Side, rttMs: number): void {
    this.#options.observer.pingRtt(from, rttMs / 1000);
  }

  /** RelayOwner: a limit of the direction from `from` was hit. */
  relayLimit(_from: Side, limit: LimitName, action: LimitAction): void {
    this.#options.observer.limitHit(limit, action);
  }

  /** RelayOwner: a throttle pause of `from` began. */
  relayThrottleStart(_from: Side): void {
    this.#options.settings.sweeper.add(this);
  }

  /** RelayOwner: a throttle pause of `from` ended after `ms`. */
  relayThrottled(from: Side, ms: number): void {
    this.#options.observer.throttled(directionFrom(from), ms / 1000);
  }

  /** RelayOwner: a read from `from` that waited for the inflater settled. */
  relaySettled(from: Side, result: ScanResult): void {
    try {
      this.#afterRead(from, result);
    } catch (error) {
      this.#onBug(error);
    }
  }

  /** The socket toward `to` could not take a whole write: its source waits for 'drain'. */
  #backedUp(to: Side): void {
    const relay = this.#toward(to);
    if (relay.backedUpSince !== undefined) return;
    relay.backedUpSince = this.#options.settings.sweeper.now();
    this.#options.settings.backpressure[relay.direction]++;
    this.#options.settings.sweeper.add(this);
  }

  /** `side` took everything queued for it (or is gone): no longer backed up. */
  #flowsAgain(side: Side): void {
    const relay = this.#toward(side);
    if (relay.backedUpSince === undefined) return;
    relay.backedUpSince = undefined;
    this.#options.settings.backpressure[relay.direction]--;
    if (!this.#needsSweep()) this.#options.settings.sweeper.delete(this);
  }

  /** Whether anything of this tunnel needs the sweeper's ticks: liveness, a stall, a throttle. */
  #needsSweep(): boolean {
    if (this.#finished) return false;
    if (this.#liveness !== undefined) return true;
    const { client, backend } = this.#relays;
    return (
      client.backedUpSince !== undefined ||
      backend.backedUpSince !== undefined ||
      client.throttled ||
      backend.throttled
    );
  }

  #onDrain(side: Side): void {
    this.#flowsAgain(side);
    this.#toward(side).resume('backpressure');
  }

  /** `stalled` read nothing of what was queued for it within `sendTimeout`. */
  #sendTimedOut(stalled: Side): void {
    this.#flowsAgain(stalled);
    // Nothing more is written to a peer that does not read (the table gives it no close frame).
    const relay = this.#toward(stalled);
    relay.closed = true;
    this.#sockets[stalled].destroy();
    this.#gatewayClose(stalled === 'client' ? 'CLIENT_SEND_TIMEOUT' : 'BACKEND_SEND_TIMEOUT');
    // What the other side still sends is dropped; reading it lets its close or FIN be seen.
    relay.flowFreely();
  }

  #onData(from: Side, chunk: Buffer): void {
    if (this.#broken) return;
    const result = this.#relays[from].read(chunk);
    if (result !== PENDING) this.#afterRead(from, result);
  }

  /** What follows a read from `from`: a failed verdict closes, a pending close goes out at a boundary. */
  #afterRead(from: Side, result: ScanResult): void {
    if (this.#broken || this.#finished) return;
    const relay = this.#relays[from];
    if (relay.closed) return; // after our close frame nothing may reach the destination
    if (!result.ok) {
      this.#onVerdict(from, result);
      return;
    }
    const pending = relay.pendingClose;
    if (pending && relay.boundaryOut) {
      // The peer's own close frame may be what reached the boundary: then the destination has its close.
      if (relay.closeSeen) relay.pendingClose = undefined;
      else this.#writeClose(other(from), pending);
    }
  }

  #onCloseFrame(from: Side, code: number | undefined, reason: string): void {
    // A closing handshake is not throttled: the answering close frame must not wait for tokens.
    this.#relays.client.stopThrottling();
    this.#relays.backend.stopThrottling();
    // A close frame read after a veto of the same sender: the gateway's close (the veto's) came first.
    if (this.#initiator === undefined && !this.#relays[from].vetoed) {
      this.#initiator = from;
      this.#closeCode = code ?? 1005;
      this.#closeReason = reason;
    }
    // A close frame answering ours completes that side's closing handshake.
    if (this.#toward(from).closed) this.#endSide(from);
    this.#armCloseTimer();
  }

  /**
   * A chunk from `from` failed: a protocol violation or a limit. The relay passed on everything
   * before the offending frame, so the stream toward the other side is at a frame boundary and
   * gets its close frame at once (unless an inflated size went over inside a frame: then that
   * connection is dropped); the sender gets its own from the table.
   */
  #onVerdict(from: Side, result: Extract<ScanResult, { ok: false }>): void {
    if (result.violation === 'DATA_AFTER_CLOSE') {
      this.#relays[from].closed = true; // the close frame went on; drop what follows
      return;
    }
    const toward = other(from);
    const veto = result.veto;
    const code = veto ? veto.code : from === 'client' ? 'CLIENT_PROTOCOL_ERROR' : 'BACKEND_PROTOCOL_ERROR';
    const fields = { side: from, detail: result.detail };
    if (veto) this.#options.log.info({ ...fields, limit: veto.limit }, 'limit exceeded');
    else this.#options.log.info({ ...fields, violation: result.violation }, 'protocol violation');
    const frame = codeInfo(code).closes[toward];
    // Mid-frame (an inflated size passed its limit inside a frame) no close frame can follow.
    if (frame && this.#relays[from].boundaryOut) this.#writeClose(toward, frame);
    else {
      this.#relays[from].closed = true;
      this.#sockets[toward].destroy();
    }
    this.#gatewayClose(code);
    // A limit waits for the sender's closing handshake; a violation fails the connection (RFC 6455
    // §7.1.7): the violator's socket ends right after its close frame.
    if (veto) return;
    if (this.#toward(from).pendingClose) this.#sideFlags |= SIDE_BIT[from] << 2;
    else this.#endSide(from);
  }

  /** The gateway ends the tunnel: the table's close frame to each side still there, then the deadline. */
  #gatewayClose(code: ErrorCode): void {
    this.#recordGatewayClose(code);
    const closes = this.#closes(code);
    for (const side of SIDES) {
      const frame = closes[side];
      if (frame) this.#closeToward(side, frame);
    }
    this.#armCloseTimer();
  }

  /**
   * Why the tunnel ends, unless that is already known; and, when nobody closed before, the
   * gateway as the initiator with the first close frame it sends (the client's, else the backend's).
   */
  #recordGatewayClose(code: ErrorCode): void {
    this.#errorCode ??= code;
    if (this.#initiator !== undefined) return;
    this.#initiator = 'gateway';
    const closes = this.#closes(code);
    const first = closes.client ?? closes.backend;
    this.#closeCode = first?.[0];
    this.#closeReason = first?.[1] ?? '';
  }

  /** The close frames for `code`: the table's, with the session's own frame for an expired token. */
  #closes(code: ErrorCode): Closes {
    const { closes } = codeInfo(code);
    const session = this.#options.session;
    return code === 'TOKEN_EXPIRED' && session !== undefined ? { ...closes, client: session.close } : closes;
  }

  /** Sends a gateway close frame toward `to` now, or at the next frame boundary. */
  #closeToward(to: Side, frame: CloseFrame): void {
    const from = other(to);
    const relay = this.#relays[from];
    if (relay.closed || relay.closeSeen) return; // `to` already has a close frame
    const target = this.#sockets[to];
    if (!target.writable) return;
    if (relay.boundaryOut) this.#writeClose(to, frame);
    else if (this.#closed(from))
      target.destroy(); // mid-frame with no way to finish the frame
    else relay.queueClose(frame); // the frame must finish first: no throttle may hold it back
  }

  #writeClose(to: Side, frame: CloseFrame): void {
    const relay = this.#toward(to);
    relay.pendingClose = undefined;
    relay.closed = true;
    if (!this.#sockets[to].writable) return;
    relay.writeClose(frame, to === 'backend');
    if ((this.#sideFlags & (SIDE_BIT[to] << 2)) !== 0) this.#endSide(to);
    // Whatever the other side still sends is dropped, so it may as well flow freely.
    relay.flowFreely();
  }

  #onEnd(from: Side): void {
    if (!this.#relays[from].closeSeen && !this.#toward(from).closed) this.#lost(from);
    this.#endSide(other(from));
    this.#endSide(from);
    this.#armCloseTimer();
  }

  #onClose(from: Side): void {
    if (this.#closed(from)) return;
    this.#sideFlags |= SIDE_BIT[from];
    if (this.#closed('client') && this.#closed('backend')) {
      this.#finish();
      return;
    }
    if (!this.#relays[from].closeSeen && !this.#toward(from).closed) this.#lost(from);
    this.#endSide(other(from));
    this.#armCloseTimer();
  }

  /** `side` went away without a close frame: tell the other side, with a close frame if possible. */
  #lost(side: Side): void {
    if (this.#initiator === undefined) this.#initiator = side; // close code stays undefined: 1006
    this.#gatewayClose(side === 'client' ? 'CLIENT_LOST' : 'BACKEND_LOST');
  }

  #closed(side: Side): boolean {
    return (this.#sideFlags & SIDE_BIT[side]) !== 0;
  }

  #endSide(side: Side): void {
    const socket = this.#sockets[side];
    if (!socket.destroyed && socket.writable && !socket.writableEnded) socket.end();
  }

  #armCloseTimer(): void {
    if (this.#closeTimer || this.#finished) return;
    this.#closeTimer = setTimeout(() => {
      if (!this.#closed('client') || !this.#closed('backend')) this.#errorCode ??= 'CLOSE_TIMEOUT';
      this.destroy();
    }, this.#options.policy.closeTimeoutMs);
    this.#closeTimer.unref();
  }

  #finish(): void {
    if (this.#finished) return;
    this.#finished = true;
    clearTimeout(this.#closeTimer);
    this.#liveness = undefined;
    this.#flowsAgain('client');
    this.#flowsAgain('backend');
    this.#options.settings.sweeper.delete(this);
    this.#relays.client.stop();
    this.#relays.backend.stop();
    const { client, backend } = this.#relays;
    this.#options.onEnd({
      id: this.id,
      durationSeconds: (performance.now() - this.#startedAt) / 1000,
      messages: { client_to_backend: client.messages, backend_to_client: backend.messages },
      bytes: { client_to_backend: client.bytes, backend_to_client: backend.bytes },
      closeCode: this.#closeCode,
      closeReason: this.#closeReason,
      initiator: this.#initiator ?? 'client',
      errorCode: this.#errorCode,
    });
  }
}
