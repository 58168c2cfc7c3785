/**
 * The echo backend of the benchmark: a raw `node:net` WebSocket server. It answers the HTTP
 * upgrade (Sec-WebSocket-Accept from SHA-1), then echoes every data frame unmasked with the same
 * FIN bit and opcode, streaming the payload as it arrives; ping gets pong, close gets close
 * (same status code) and then the TCP connection is ended.
 *
 *   node bench/echo-server.ts [--port 0] [--host 127.0.0.1]
 *
 * Prints "listening PORT" on stdout once bound and exits on SIGTERM or SIGINT.
 */
import { createServer, type Socket } from 'node:net';
import { parseArgs } from 'node:util';
import {
  acceptKey,
  OPCODE_CLOSE,
  OPCODE_PING,
  OPCODE_PONG,
  serverFrame,
  serverHeader,
  xorMask,
} from './ws-protocol.ts';

const MAX_HEAD = 16 * 1024;
const MAX_CONTROL = 125;

/** One accepted connection: the HTTP head first, then a streaming frame parser. */
class EchoConnection {
  private readonly socket: Socket;
  private upgraded = false;
  private head: Buffer = Buffer.alloc(0);
  /** Bytes of an incomplete frame header carried over to the next read. */
  private partial: Buffer | null = null;
  private inFrame = false;
  private payloadLeft = 0;
  private position = 0;
  private mask: Buffer = Buffer.alloc(4);
  private opcode = 0;
  /** Payload of the control frame being received (ping or close), if any. */
  private control: Buffer[] | null = null;
  private closing = false;

  constructor(socket: Socket) {
    this.socket = socket;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', () => socket.destroy());
  }

  private onData(chunk: Buffer): void {
    if (!this.upgraded) {
      this.onHead(chunk);
      return;
    }
    this.socket.cork();
    this.onFrames(chunk);
    this.socket.uncork();
  }

  private onHead(chunk: Buffer): void {
    this.head = this.head.length === 0 ? chunk : Buffer.concat([this.head, chunk]);
    const end = this.head.indexOf('\r\n\r\n');
    if (end < 0) {
      if (this.head.length > MAX_HEAD) this.reject('431 Request Header Fields Too Large');
      return;
    }
    const text = this.head.subarray(0, end).toString('latin1');
    const rest = this.head.subarray(end + 4);
    this.head = Buffer.alloc(0);
    const key = /^sec-websocket-key:[ \t]*(\S+)[ \t]*$/im.exec(text)?.[1];
    if (!/^GET /.test(text) || !/^upgrade:.*websocket/im.test(text) || key === undefined) {
      this.reject('400 Bad Request');
      return;
    }
    this.upgraded = true;
    this.socket.write(
      'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        `Sec-WebSocket-Accept: ${acceptKey(key)}\r\n\r\n`,
    );
    if (rest.length > 0) this.onData(rest);
  }

  private reject(status: string): void {
    this.socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
  }

  private onFrames(data: Buffer): void {
    let chunk = data;
    if (this.partial !== null) {
      chunk = Buffer.concat([this.partial, data]);
      this.partial = null;
    }
    let i = 0;
    while (i < chunk.length && !this.closing) {
      if (!this.inFrame) {
        const available = chunk.length - i;
        if (available < 2) {
          this.partial = Buffer.from(chunk.subarray(i));
          return;
        }
        const b0 = chunk[i]!;
        const b1 = chunk[i + 1]!;
        const len7 = b1 & 0x7f;
        const extended = len7 === 126 ? 2 : len7 === 127 ? 8 : 0;
        const needed = 2 + extended + 4;
        if ((b1 & 0x80) === 0) {
          // client frames must be masked (RFC 6455 5.1): protocol error
          this.closeWith(1002);
          return;
        }
        if (available < needed) {
          this.partial = Buffer.from(chunk.subarray(i));
          return;
        }
        let length = len7;
        if (len7 === 126) length = chunk.readUInt16BE(i + 2);
        else if (len7 === 127) length = Number(chunk.readBigUInt64BE(i + 2));
        this.mask = Buffer.from(chunk.subarray(i + 2 + extended, i + needed));
        this.opcode = b0 & 0x0f;
        this.payloadLeft = length;
        this.position = 0;
        this.inFrame = true;
        i += needed;
        if (this.opcode >= OPCODE_CLOSE) {
          if (length > MAX_CONTROL) {
            this.closeWith(1002);
            return;
          }
          this.control = [];
        } else {
          this.socket.write(serverHeader(b0, length));
        }
      }
      const take = Math.min(this.payloadLeft, chunk.length - i);
      if (take > 0) {
        const piece = Buffer.allocUnsafe(take);
        chunk.copy(piece, 0, i, i + take);
        xorMask(piece, this.mask, this.position);
        if (this.control === null) this.socket.write(piece);
        else this.control.push(piece);
        i += take;
        this.position += take;
        this.payloadLeft -= take;
      }
      if (this.payloadLeft === 0) {
        this.inFrame = false;
        if (this.control !== null) {
          const payload = Buffer.concat(this.control);
          this.control = null;
          this.onControl(payload);
        }
      }
    }
  }

  private onControl(payload: Buffer): void {
    if (this.opcode === OPCODE_PING) {
      this.socket.write(serverFrame(0x80 | OPCODE_PONG, payload));
    } else if (this.opcode === OPCODE_CLOSE) {
      this.closing = true;
      this.socket.end(serverFrame(0x80 | OPCODE_CLOSE, payload.subarray(0, 2)));
    }
  }

  private closeWith(code: number): void {
    this.closing = true;
    const payload = Buffer.alloc(2);
    payload.writeUInt16BE(code, 0);
    this.socket.end(serverFrame(0x80 | OPCODE_CLOSE, payload));
  }
}

function main(): void {
  const { values } = parseArgs({
    options: { port: { type: 'string', default: '0' }, host: { type: 'string', default: '127.0.0.1' } },
  });
  const server = createServer({ noDelay: true }, (socket) => new EchoConnection(socket));
  server.maxConnections = 50_000;
  server.listen({ port: Number(values.port), host: values.host, backlog: 4096 }, () => {
    const address = server.address();
    const port = typeof address === 'object' && address !== null ? address.port : 0;
    process.stdout.write(`listening ${port}\n`);
  });
  const stop = (): void => process.exit(0);
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main();
