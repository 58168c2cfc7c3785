/**
 * PROXY protocol headers written by hand, as a load balancer sends them, and client sockets that
 * send one before anything else (then plain bytes, or a TLS handshake over the same connection),
 * for the `ws` client's `createConnection` or for raw HTTP.
 */
import { connect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { within } from './eventually.ts';

const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);

/** A v1 header reporting `address:port` as the client (TCP4 or TCP6 by the address). */
export function v1Header(address: string, port: number): Buffer {
  const family = isIP(address) === 6 ? 'TCP6' : 'TCP4';
  const destination = family === 'TCP6' ? '::1' : '127.0.0.1';
  return Buffer.from(`PROXY ${family} ${address} ${destination} ${port} 443\r\n`, 'latin1');
}

function ipv6Bytes(address: string): Buffer {
  const [head = '', tail = ''] = address.split('::');
  const groups = (text: string) => (text === '' ? [] : text.split(':'));
  const left = groups(head);
  const right = groups(tail);
  const all = address.includes('::')
    ? [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right]
    : left;
  const bytes = Buffer.alloc(16);
  for (const [index, group] of all.entries()) bytes.writeUInt16BE(Number.parseInt(group, 16), index * 2);
  return bytes;
}

export interface V2Options {
  /** `proxy` (default) or `local` (a health check: the addresses are not used). */
  readonly command?: 'proxy' | 'local';
  readonly address: string;
  readonly port: number;
  /** TLV bytes after the addresses. */
  readonly tlvs?: Buffer;
}

/** A v2 header over TCP reporting `address:port` as the client (IPv4 or IPv6 by the address). */
export function v2Header(options: V2Options): Buffer {
  const ipv6 = isIP(options.address) === 6;
  const addresses = ipv6
    ? Buffer.concat([ipv6Bytes(options.address), ipv6Bytes('::1')])
    : Buffer.concat([Buffer.from(options.address.split('.').map(Number)), Buffer.from([127, 0, 0, 1])]);
  const ports = Buffer.alloc(4);
  ports.writeUInt16BE(options.port, 0);
  ports.writeUInt16BE(443, 2);
  const body = Buffer.concat([addresses, ports, options.tlvs ?? Buffer.alloc(0)]);
  const fixed = Buffer.alloc(4);
  fixed[0] = options.command === 'local' ? 0x20 : 0x21;
  fixed[1] = ipv6 ? 0x21 : 0x11;
  fixed.writeUInt16BE(body.length, 2);
  return Buffer.concat([V2_SIGNATURE, fixed, body]);
}

/** A TCP connection to 127.0.0.1:`port` that sends `header` first. */
export function proxiedSocket(port: number, header: Buffer): Socket {
  const socket = connect(port, '127.0.0.1');
  socket.on('error', () => {});
  socket.write(header);
  return socket;
}

/** A TLS connection (trusting `ca`, for `localhost`) over a TCP one that sent `header` first. */
export function proxiedTlsSocket(port: number, header: Buffer, ca: Buffer): Socket {
  const tls = tlsConnect({ socket: proxiedSocket(port, header), ca, servername: 'localhost' });
  tls.on('error', () => {});
  return tls;
}

/** Writes `bytes` on `socket` and resolves with everything read until the connection closes. */
export function readUntilClosed(socket: Socket, bytes: string | Buffer = ''): Promise<string> {
  if (bytes.length > 0) socket.write(bytes);
  return within(
    new Promise((resolve) => {
      const chunks: Buffer[] = [];
      socket.on('data', (chunk: Buffer) => chunks.push(chunk));
      socket.once('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
    }),
    'the connection to close',
    10_000,
  );
}
