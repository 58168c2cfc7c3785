/**
 * The benchmark's WebSocket load client, on raw `node:net` sockets. It opens connections with a
 * checked handshake (random Sec-WebSocket-Key, Sec-WebSocket-Accept verified), sends precomputed
 * masked binary frames (two variants per connection, each with its own random mask and payload,
 * alternating so a stale or misrouted echo is caught) and checks every echo byte for byte with a
 * minimal streaming frame parser. Two workloads: `relay` (N connections ping-ponging one message
 * each, or paced at a fixed total rate; a warm-up then a measured window, both bounded in time and
 * count) and `openIdle` (N connections, one echo each, then left open). Failures are counted by
 * kind, never thrown.
 */
import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { acceptKey, clientFrame, OPCODE_BINARY, OPCODE_CLOSE, OPCODE_CONTINUATION } from './ws-protocol.ts';

/** Failure counts by kind; any non-zero count makes a measurement invalid. */
export type Failures = Record<string, number>;

function countFailure(failures: Failures, kind: string, by = 1): void {
  failures[kind] = (failures[kind] ?? 0) + by;
}

export function failureTotal(failures: Failures): number {
  return Object.values(failures).reduce((total, count) => total + count, 0);
}

export class HandshakeError extends Error {
  readonly kind: string;
  constructor(kind: string, message: string) {
    super(message);
    this.kind = kind;
  }
}

const MAX_RESPONSE_HEAD = 16 * 1024;

/**
 * Connects and performs the opening handshake. Resolves with the socket and any bytes received
 * after the response head; rejects with a HandshakeError whose `kind` names the failure.
 */
export function handshake(
  host: string,
  port: number,
  timeoutMs: number,
): Promise<{ socket: Socket; rest: Buffer }> {
  return new Promise((resolve, reject) => {
    const key = randomBytes(16).toString('base64');
    const socket = connect({ host, port, noDelay: true });
    let head: Buffer = Buffer.alloc(0);
    let settled = false;
    const fail = (kind: string, message: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      reject(new HandshakeError(kind, message));
    };
    const timer = setTimeout(fail, timeoutMs, 'handshake-timeout', `no handshake within ${timeoutMs} ms`);
    const request =
      `GET / HTTP/1.1\r\nHost: ${host}:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`;
    socket.on('connect', () => socket.write(request));
    const onData = (chunk: Buffer): void => {
      head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) {
        if (head.length > MAX_RESPONSE_HEAD) fail('handshake-bad-response', 'response head too large');
        return;
      }
      const text = head.subarray(0, end).toString('latin1');
      if (!/^HTTP\/1\.1 101 /.test(text)) {
        fail('handshake-status', `status line: ${text.split('\r\n')[0] ?? ''}`);
        return;
      }
      const accept = /^sec-websocket-accept:[ \t]*(\S+)[ \t]*$/im.exec(text)?.[1];
      if (accept !== acceptKey(key)) {
        fail('handshake-accept', 'wrong or missing Sec-WebSocket-Accept');
        return;
      }
      settled = true;
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('error', onError);
      socket.off('close', onClose);
      resolve({ socket, rest: head.subarray(end + 4) });
    };
    const onError = (error: Error): void => fail('connect', error.message);
    const onClose = (): void => fail('handshake-closed', 'connection closed during the handshake');
    socket.on('data', onData);
    socket.on('error', onError);
    socket.on('close', onClose);
  });
}

/** Shared state of all connections of one workload. */
interface Shared {
  readonly failures: Failures;
  /** Echoes completed and verified (or failed but framed correctly) since the start. */
  completed: number;
  /** Messages sent since the start. */
  sent: number;
  /** New messages are sent only while this is true. */
  running: boolean;
  /** Sending stops for good once `sent` reaches this (the count bound). */
  readonly maxSent: number;
  /** Called after every completed echo (the window's count bound). */
  onEcho: () => void;
}

/** One WebSocket connection that sends a message, waits for its echo, checks it, repeats. */
class EchoClient {
  readonly socket: Socket;
  private readonly shared: Shared;
  private readonly frames: readonly [Buffer, Buffer];
  private readonly payloads: readonly [Buffer, Buffer];
  private readonly repeat: boolean;
  private variant = 0;
  inFlight = false;
  closed = false;
  /** Verified echoes of this connection. */
  echoes = 0;
  private partial: Buffer | null = null;
  private inFrame = false;
  private frameLeft = 0;
  private frameFin = false;
  private skipping = false;
  private messagePosition = 0;
  private inMessage = false;
  private mismatch = false;
  private onIdleEcho: (() => void) | null = null;

  constructor(socket: Socket, rest: Buffer, shared: Shared, payloadBytes: number, repeat: boolean) {
    this.socket = socket;
    this.shared = shared;
    this.repeat = repeat;
    const [p0, p1] = [randomBytes(payloadBytes), randomBytes(payloadBytes)];
    this.payloads = [p0, p1];
    const frame = (payload: Buffer): Buffer => clientFrame(OPCODE_BINARY, payload, randomBytes(4));
    this.frames = [frame(p0), frame(p1)];
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      if (!this.closed) {
        this.closed = true;
        this.lose('closed-by-peer');
        this.onIdleEcho?.();
      }
    });
    if (rest.length > 0) this.onData(rest);
  }

  /** Sends the next message (only when none is in flight). */
  send(): void {
    if (this.inFlight || this.closed) return;
    this.inFlight = true;
    this.shared.sent++;
    this.socket.write(this.frames[this.variant]!);
  }

  /** Sends one message and resolves when its echo has arrived (or the connection closed). */
  sendOnce(): Promise<void> {
    return new Promise((resolve) => {
      this.onIdleEcho = () => {
        this.onIdleEcho = null;
        resolve();
      };
      this.send();
    });
  }

  /** Sends a close frame and half-closes; the socket is destroyed later by the caller. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.end(clientFrame(OPCODE_CLOSE, Buffer.from([0x03, 0xe8]), randomBytes(4)));
  }

  /** Counts a failure of `kind`, and the echo in flight (if any) as lost. */
  private lose(kind: string): void {
    countFailure(this.shared.failures, kind);
    if (this.inFlight) countFailure(this.shared.failures, 'lost-echo');
    this.inFlight = false;
  }

  private protocolError(kind: string): void {
    this.lose(kind);
    this.closed = true;
    this.socket.destroy();
    this.onIdleEcho?.();
  }

  private onData(data: Buffer): void {
    if (this.closed) return;
    let chunk = data;
    if (this.partial !== null) {
      chunk = Buffer.concat([this.partial, data]);
      this.partial = null;
    }
    let expected = this.payloads[this.variant]!;
    let i = 0;
    while (i < chunk.length) {
      if (!this.inFrame) {
        const available = chunk.length - i;
        if (available < 2) {
          this.partial = Buffer.from(chunk.subarray(i));
          return;
        }
        const b0 = chunk[i]!;
        const b1 = chunk[i + 1]!;
        const len7 = b1 & 0x7f;
        const headerLength = len7 === 126 ? 4 : len7 === 127 ? 10 : 2;
        if (available < headerLength) {
          this.partial = Buffer.from(chunk.subarray(i));
          return;
        }
        if ((b1 & 0x80) !== 0) {
          this.protocolError('masked-server-frame');
          return;
        }
        let length = len7;
        if (len7 === 126) length = chunk.readUInt16BE(i + 2);
        else if (len7 === 127) length = Number(chunk.readBigUInt64BE(i + 2));
        const opcode = b0 & 0x0f;
        i += headerLength;
        this.inFrame = true;
        this.frameLeft = length;
        this.frameFin = (b0 & 0x80) !== 0;
        this.skipping = false;
        if (opcode >= 0x8) {
          // control frames: close is a failure here, ping/pong are skipped
          if (opcode === OPCODE_CLOSE) {
            this.protocolError('close-frame');
            return;
          }
          this.skipping = true;
        } else if (!this.inFlight) {
          this.protocolError('unexpected-message');
          return;
        } else if (opcode === OPCODE_BINARY && !this.inMessage) {
          this.inMessage = true;
        } else if (!(opcode === OPCODE_CONTINUATION && this.inMessage)) {
          this.protocolError('bad-opcode');
          return;
        }
        if (!this.skipping && this.messagePosition + length > expected.length) {
          this.protocolError('length');
          return;
        }
      }
      const take = Math.min(this.frameLeft, chunk.length - i);
      if (take > 0) {
        if (!this.skipping) {
          const got = chunk.subarray(i, i + take);
          if (!got.equals(expected.subarray(this.messagePosition, this.messagePosition + take)))
            this.mismatch = true;
          this.messagePosition += take;
        }
        i += take;
        this.frameLeft -= take;
      }
      if (this.frameLeft === 0) {
        this.inFrame = false;
        if (!this.skipping && this.frameFin) {
          if (this.messagePosition !== expected.length) {
            this.protocolError('length');
            return;
          }
          this.completeMessage();
          if (this.closed) return;
          expected = this.payloads[this.variant]!;
        }
      }
    }
  }

  private completeMessage(): void {
    if (this.mismatch) countFailure(this.shared.failures, 'mismatch');
    else this.echoes++;
    this.mismatch = false;
    this.messagePosition = 0;
    this.inMessage = false;
    this.inFlight = false;
    this.variant ^= 1;
    this.shared.completed++;
    this.shared.onEcho();
    if (this.onIdleEcho !== null) this.onIdleEcho();
    else if (this.repeat && this.shared.running && this.shared.sent < this.shared.maxSent) this.send();
  }
}

/** Opens `target.connections` connections, `concurrency` handshakes at a time, until `deadline`. */
async function openMany(
  target: Pick<RelayOptions<unknown>, 'host' | 'port' | 'connections'>,
  concurrency: number,
  deadline: number,
  failures: Failures,
  create: (socket: Socket, rest: Buffer) => Promise<void> | void,
): Promise<void> {
  const { host, port, connections: count } = target;
  let started = 0;
  const worker = async (): Promise<void> => {
    while (started < count && Date.now() < deadline) {
      started++;
      try {
        const remaining = Math.max(100, Math.min(10_000, deadline - Date.now()));
        const { socket, rest } = await handshake(host, port, remaining);
        await create(socket, rest);
      } catch (error) {
        countFailure(failures, error instanceof HandshakeError ? error.kind : 'connect');
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  if (started < count) countFailure(failures, 'not-opened-in-time', count - started);
}

/** Closes connections politely (close frame + FIN), then destroys what is left after `graceMs`. */
async function closeAll(clients: readonly EchoClient[], graceMs: number): Promise<void> {
  for (const client of clients) client.close();
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline && clients.some((client) => !client.socket.destroyed)) await sleep(20);
  for (const client of clients) client.socket.destroy();
}

export interface RelayOptions<S> {
  readonly host: string;
  readonly port: number;
  readonly connections: number;
  readonly payloadBytes: number;
  readonly warmupMs: number;
  readonly windowMs: number;
  /** The measured window also ends once this many echoes completed in it. */
  readonly maxWindowMessages: number;
  /** Taken at the exact start and end of the measured window (e.g. proxy CPU time). */
  readonly sample: () => S;
  /** Handshakes in flight while the connections open (all of them at once by default). */
  readonly openConcurrency?: number;
  /** Paced instead of closed-loop: messages per second across all connections (see `pace`). */
  readonly ratePerSecond?: number | undefined;
}

export interface RelayResult<S> {
  readonly connections: number;
  readonly messages: number;
  readonly seconds: number;
  readonly failures: Failures;
  readonly start: S | undefined;
  readonly end: S | undefined;
  /** Whether the window ended on its message-count bound rather than its time bound. */
  readonly countBound: boolean;
  /** Paced: sends due in the window, and those skipped as late (0 for the closed loop). */
  readonly dueSends: number;
  readonly lateSends: number;
}

/**
 * A paced load while `shared.running`: send k is due k / rate s after the start, on connection
 * k mod N (each connection every N / rate s, the sends spread evenly, checked every millisecond);
 * one due while that connection's echo is still out is skipped and counted late: nothing queues.
 */
function pace(clients: readonly EchoClient[], rate: number, shared: Shared): { due: number; late: number } {
  const counts = { due: 0, late: 0 };
  const t0 = performance.now();
  const tick = (): void => {
    const dueNow = Math.floor(((performance.now() - t0) * rate) / 1000) + 1;
    while (counts.due < dueNow && shared.running && shared.sent < shared.maxSent) {
      const client = clients[counts.due++ % clients.length] as EchoClient;
      if (client.inFlight) counts.late++;
      else client.send();
    }
    if (shared.running) setTimeout(tick, 1);
  };
  tick();
  return counts;
}

/**
 * N connections ping-pong one message each as fast as echoes return (or, with `ratePerSecond`,
 * paced): a warm-up, then a measured window that ends after `windowMs` or `maxWindowMessages`
 * echoes, whichever comes first.
 */
export async function relay<S>(options: RelayOptions<S>): Promise<RelayResult<S>> {
  const failures: Failures = {};
  let windowEnd: (() => void) | null = null;
  let stopAt = Number.POSITIVE_INFINITY;
  const shared: Shared = {
    failures,
    completed: 0,
    sent: 0,
    running: false,
    // a safety bound on the whole run, far above what the window can reach
    maxSent: options.maxWindowMessages * 4,
    onEcho: () => {
      if (shared.completed >= stopAt) windowEnd?.();
    },
  };
  const clients: EchoClient[] = [];
  const concurrency = options.openConcurrency ?? options.connections;
  await openMany(options, concurrency, Date.now() + 15_000, failures, (s, r) => {
    clients.push(new EchoClient(s, r, shared, options.payloadBytes, options.ratePerSecond === undefined));
  });
  const none = { messages: 0, seconds: 0, start: undefined, end: undefined, countBound: false };
  if (clients.length === 0) return { ...none, connections: 0, failures, dueSends: 0, lateSends: 0 };
  shared.running = true;
  const rate = options.ratePerSecond;
  const pacer = rate === undefined ? undefined : pace(clients, rate, shared);
  if (pacer === undefined) for (const client of clients) client.send();
  await sleep(options.warmupMs);

  const t0 = process.hrtime.bigint();
  const start = options.sample();
  const completed0 = shared.completed;
  const [due0, late0] = [pacer?.due ?? 0, pacer?.late ?? 0];
  stopAt = completed0 + options.maxWindowMessages;
  let countBound = false;
  type Measured = { t1: bigint; end: S; completed1: number; due1: number; late1: number };
  const measured = await new Promise<Measured>((resolve) => {
    const finish = (): void => {
      windowEnd = null;
      clearTimeout(timer);
      const t1 = process.hrtime.bigint();
      const end = options.sample();
      resolve({ t1, end, completed1: shared.completed, due1: pacer?.due ?? 0, late1: pacer?.late ?? 0 });
    };
    const timer = setTimeout(finish, options.windowMs);
    windowEnd = () => {
      countBound = true;
      finish();
    };
  });
  shared.running = false;

  // let in-flight echoes come back (bounded), then close
  const drainDeadline = Date.now() + 3000;
  while (Date.now() < drainDeadline && clients.some((client) => client.inFlight && !client.closed))
    await sleep(10);
  const lost = clients.filter((client) => client.inFlight && !client.closed).length;
  if (lost > 0) countFailure(failures, 'no-echo-after-window', lost);
  await closeAll(clients, 1000);
  return {
    connections: clients.length,
    messages: measured.completed1 - completed0,
    seconds: Number(measured.t1 - t0) / 1e9,
    failures,
    start,
    end: measured.end,
    countBound,
    dueSends: measured.due1 - due0,
    lateSends: measured.late1 - late0,
  };
}

export interface IdleOptions {
  readonly host: string;
  readonly port: number;
  readonly connections: number;
  /** Handshakes in flight at a time. */
  readonly concurrency: number;
  readonly payloadBytes: number;
  /** Bound on the time to open all connections. */
  readonly openTimeoutMs: number;
}

/** Open idle connections (each has echoed one message); close them with `close()`. */
export interface IdleSet {
  readonly opened: number;
  readonly failures: Failures;
  readonly seconds: number;
  close(): Promise<void>;
}

/** Opens N connections, each verified with one echo, and leaves them open. */
export async function openIdle(options: IdleOptions): Promise<IdleSet> {
  const failures: Failures = {};
  const shared: Shared = {
    failures,
    completed: 0,
    sent: 0,
    running: false,
    maxSent: options.connections,
    onEcho: () => undefined,
  };
  const clients: EchoClient[] = [];
  const t0 = Date.now();
  await openMany(options, options.concurrency, t0 + options.openTimeoutMs, failures, async (socket, rest) => {
    const client = new EchoClient(socket, rest, shared, options.payloadBytes, false);
    clients.push(client);
    const abort = new AbortController();
    const timeout = sleep(10_000, 'timeout', { signal: abort.signal }).catch(() => 'cancelled');
    const result = await Promise.race([client.sendOnce().then(() => 'done'), timeout]);
    abort.abort();
    if (result === 'timeout') countFailure(failures, 'idle-echo-timeout');
  });
  const seconds = (Date.now() - t0) / 1000;
  const live = clients.filter((client) => !client.closed && client.echoes === 1);
  return { opened: live.length, failures, seconds, close: () => closeAll(clients, 2000) };
}
