/**
 * The PROXY protocol header (HAProxy's, versions 1 and 2) that layer-4 load balancers send first
 * on a connection to say whom they accepted it from. A pure parser over the bytes received so far:
 * it answers "need more", a refusal with a reason from a fixed set, or the header's length and the
 * client it reports. It looks at no byte past the header, refuses as soon as the bytes cannot
 * become a valid header (a client speaking HTTP or TLS is refused at its first byte), bounds what
 * it waits for (107 bytes for v1, `V2_MAX_LENGTH` for v2), and never throws, whatever the input.
 *
 * Spec: https://www.haproxy.org/download/3.0/doc/proxy-protocol.txt
 */
import { isIP, SocketAddress } from 'node:net';

export type ProxyVersion = 'v1' | 'v2';
/** The versions a listener accepts. */
export type ProxyAccept = ProxyVersion | 'any';
/** Why bytes are not an acceptable header. */
export type ProxyRefusal = 'invalid' | 'too_large' | 'wrong_version';

/** The client a header reports: the source of the connection the load balancer accepted. */
export interface ProxiedPeer {
  readonly address: string;
  readonly port: number;
}

export type ProxyParse =
  | { readonly kind: 'incomplete' }
  | { readonly kind: 'refused'; readonly reason: ProxyRefusal; readonly detail: string }
  | {
      readonly kind: 'header';
      readonly version: ProxyVersion;
      /** Bytes the header takes; what follows belongs to the proxied connection. */
      readonly length: number;
      /** Absent for v2 LOCAL, v1 UNKNOWN and address families without an IP: use the socket's peer. */
      readonly source: ProxiedPeer | undefined;
    };

/** Longest v1 header, CRLF included (the spec's bound). */
export const V1_MAX_LENGTH = 107;
/**
 * Longest v2 header accepted: the 16 fixed bytes and up to 2 KiB of addresses and TLVs (the spec
 * allows 64 KiB; load balancers send a few dozen bytes of TLVs).
 */
export const V2_MAX_LENGTH = 16 + 2048;

const V1_SIGNATURE = Buffer.from('PROXY ', 'latin1');
const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const V2_FIXED = 16;
const PORT = /^(0|[1-9][0-9]{0,4})$/;

const INCOMPLETE: ProxyParse = { kind: 'incomplete' };

function refused(reason: ProxyRefusal, detail: string): ProxyParse {
  return { kind: 'refused', reason, detail };
}

/** Whether `received` and `signature` agree on their common length. */
function startsLike(received: Buffer, signature: Buffer): boolean {
  const length = Math.min(received.length, signature.length);
  return received.subarray(0, length).equals(signature.subarray(0, length));
}

/** Parses the header at the start of `received`, accepting the versions `accept` names. */
export function parseProxyHeader(received: Buffer, accept: ProxyAccept): ProxyParse {
  for (const [version, signature] of [
    ['v2', V2_SIGNATURE],
    ['v1', V1_SIGNATURE],
  ] as const) {
    if (!startsLike(received, signature)) continue;
    // A prefix of the signature: the rest decides.
    if (received.length < signature.length) return INCOMPLETE;
    if (accept !== 'any' && accept !== version) {
      return refused('wrong_version', `a ${version} header where only ${accept} is accepted`);
    }
    return version === 'v2' ? parseV2(received) : parseV1(received);
  }
  return refused('invalid', 'no PROXY protocol signature');
}

/** The canonical text of an address (`2001:db8::1`, `::ffff:192.0.2.1`), or undefined. */
function canonical(address: string, family: 4 | 6): string | undefined {
  // A zone (`fe80::1%eth0`) names an interface of the load balancer: meaningless here.
  if (address.includes('%') || isIP(address) !== family) return undefined;
  try {
    return new SocketAddress({ address, family: family === 4 ? 'ipv4' : 'ipv6' }).address;
  } catch {
    return undefined;
  }
}

function parsePort(text: string | undefined): number | undefined {
  if (text === undefined || !PORT.test(text)) return undefined;
  const port = Number(text);
  return port <= 65535 ? port : undefined;
}

/** `PROXY TCP4 <src> <dst> <sport> <dport>\r\n`, `PROXY TCP6 …` or `PROXY UNKNOWN …\r\n`. */
function parseV1(received: Buffer): ProxyParse {
  const limit = Math.min(received.length, V1_MAX_LENGTH);
  let end = -1;
  for (let i = V1_SIGNATURE.length; i < limit; i++) {
    const byte = received[i] ?? 0;
    if (byte === 0x0d) {
      if (i + 1 >= V1_MAX_LENGTH) break; // its LF would be past the bound
      if (i + 1 >= received.length) return INCOMPLETE;
      if (received[i + 1] !== 0x0a) return refused('invalid', 'a v1 header with CR not followed by LF');
      end = i;
      break;
    }
    if (byte < 0x20 || byte > 0x7e) return refused('invalid', 'a v1 header with a control or non-ASCII byte');
  }
  if (end === -1) {
    return received.length >= V1_MAX_LENGTH
      ? refused('too_large', `a v1 header without CRLF in ${V1_MAX_LENGTH} bytes`)
      : INCOMPLETE;
  }
  const length = end + 2;
  const fields = received.toString('latin1', V1_SIGNATURE.length, end).split(' ');
  const protocol = fields[0];
  if (protocol === 'UNKNOWN') return { kind: 'header', version: 'v1', length, source: undefined };
  if ((protocol !== 'TCP4' && protocol !== 'TCP6') || fields.length !== 5) {
    return refused('invalid', 'a v1 header that is not TCP4, TCP6 or UNKNOWN with two addresses and ports');
  }
  const family = protocol === 'TCP4' ? 4 : 6;
  const source = canonical(fields[1] ?? '', family);
  const destination = canonical(fields[2] ?? '', family);
  const sourcePort = parsePort(fields[3]);
  const destinationPort = parsePort(fields[4]);
  if (source === undefined || destination === undefined) {
    return refused('invalid', `a v1 header whose addresses are not ${protocol} addresses`);
  }
  if (sourcePort === undefined || destinationPort === undefined) {
    return refused('invalid', 'a v1 header whose ports are not 0-65535');
  }
  return { kind: 'header', version: 'v1', length, source: { address: source, port: sourcePort } };
}

const COMMAND_LOCAL = 0x0;
const COMMAND_PROXY = 0x1;
const FAMILY_UNSPEC = 0x0;
const FAMILY_INET = 0x1;
const FAMILY_INET6 = 0x2;
const FAMILY_UNIX = 0x3;
/** Address bytes each family needs (source, destination, then the two ports for IP). */
const ADDRESS_LENGTH: Readonly<Record<number, number>> = {
  [FAMILY_UNSPEC]: 0,
  [FAMILY_INET]: 12,
  [FAMILY_INET6]: 36,
  [FAMILY_UNIX]: 216,
};

function ipv6Text(bytes: Buffer): string | undefined {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i).toString(16));
  return canonical(groups.join(':'), 6);
}

/** The binary header: signature, version and command, family and transport, length, addresses, TLVs. */
function parseV2(received: Buffer): ProxyParse {
  const versionCommand = received[12];
  if (versionCommand !== undefined) {
    if (versionCommand >> 4 !== 2) return refused('invalid', 'a v2 header whose version is not 2');
    const command = versionCommand & 0x0f;
    if (command !== COMMAND_LOCAL && command !== COMMAND_PROXY) {
      return refused('invalid', 'a v2 header whose command is neither LOCAL nor PROXY');
    }
  }
  const familyTransport = received[13];
  if (familyTransport !== undefined && (familyTransport >> 4 > FAMILY_UNIX || (familyTransport & 0x0f) > 2)) {
    return refused('invalid', 'a v2 header with an unknown address family or transport');
  }
  if (received.length < V2_FIXED || versionCommand === undefined || familyTransport === undefined) {
    return INCOMPLETE;
  }
  const length = V2_FIXED + received.readUInt16BE(14);
  if (length > V2_MAX_LENGTH) {
    return refused('too_large', `a v2 header of ${length} bytes (at most ${V2_MAX_LENGTH})`);
  }
  const family = familyTransport >> 4;
  if ((versionCommand & 0x0f) === COMMAND_PROXY && length - V2_FIXED < (ADDRESS_LENGTH[family] ?? 0)) {
    return refused('invalid', 'a v2 header too short for its addresses');
  }
  if (received.length < length) return INCOMPLETE;
  // LOCAL (the load balancer's own health checks), UNSPEC and UNIX carry no client IP address.
  if ((versionCommand & 0x0f) === COMMAND_LOCAL || (family !== FAMILY_INET && family !== FAMILY_INET6)) {
    return { kind: 'header', version: 'v2', length, source: undefined };
  }
  const address =
    family === FAMILY_INET
      ? canonical([...received.subarray(16, 20)].join('.'), 4)
      : ipv6Text(received.subarray(16, 32));
  const port = received.readUInt16BE(family === FAMILY_INET ? 24 : 48);
  // TLVs (after the addresses, up to `length`) are skipped: nothing in them is needed.
  if (address === undefined) return refused('invalid', 'a v2 header with an unreadable address');
  return { kind: 'header', version: 'v2', length, source: { address, port } };
}
