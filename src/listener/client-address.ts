/**
 * Who the client is, and what the X-Forwarded-* headers sent on to a backend say. Headers from a
 * peer are believed only when that peer is a configured trusted proxy; otherwise they are
 * replaced, so a client cannot forge its address. Used for both upgrades and plain HTTP.
 */
import { BlockList, isIP } from 'node:net';

/** Trusted proxy addresses and ranges, compiled once per configuration. */
export class TrustedProxies {
  readonly #list = new BlockList();
  readonly #empty: boolean;

  constructor(entries: readonly string[]) {
    this.#empty = entries.length === 0;
    for (const entry of entries) {
      const [address = '', prefix] = entry.split('/');
      const family = isIP(address) === 6 ? 'ipv6' : 'ipv4';
      if (prefix === undefined) this.#list.addAddress(address, family);
      else this.#list.addSubnet(address, Number(prefix), family);
    }
  }

  /** Whether `address` (as a socket reports it, IPv4-mapped IPv6 included) is trusted. */
  has(address: string | undefined): boolean {
    if (this.#empty || !address) return false;
    const plain = address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
    const family = isIP(plain);
    if (family === 0) return false;
    return this.#list.check(plain, family === 6 ? 'ipv6' : 'ipv4');
  }
}

/** The X-Forwarded-* values for one request. */
export interface ForwardedFor {
  /** The client's address: the peer, or the nearest untrusted hop a trusted proxy reported. */
  readonly clientAddress: string;
  readonly xForwardedFor: string;
  readonly xForwardedProto: string;
  readonly xForwardedHost: string | undefined;
  /**
   * Whether the peer is a trusted proxy, whose other proxy-set headers (X-Real-IP,
   * X-Forwarded-Port, -Prefix, -Server) are passed on; from anyone else they are dropped.
   */
  readonly fromTrustedProxy: boolean;
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(', ') : value;
}

/**
 * Computes the forwarding headers for a request that arrived from `peer` on a plain or TLS
 * listener. From a trusted peer, X-Forwarded-For is appended to and the proto and host it sent
 * are kept; from anyone else they are replaced (and the other proxy-set headers dropped).
 */
export function forwardedFor(
  trusted: TrustedProxies,
  peer: string,
  encrypted: boolean,
  headers: Readonly<Record<string, string | string[] | undefined>>,
): ForwardedFor {
  const proto = encrypted ? 'https' : 'http';
  const host = headerValue(headers.host);
  if (!trusted.has(peer)) {
    return {
      clientAddress: peer,
      xForwardedFor: peer,
      xForwardedProto: proto,
      xForwardedHost: host,
      fromTrustedProxy: false,
    };
  }
  const previous = headerValue(headers['x-forwarded-for']);
  const hops = previous
    ? previous
        .split(',')
        .map((hop) => hop.trim())
        .filter(Boolean)
    : [];
  let clientAddress = peer;
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = hops[i] ?? '';
    clientAddress = hop;
    if (!trusted.has(hop)) break;
  }
  return {
    clientAddress,
    xForwardedFor: previous ? `${previous}, ${peer}` : peer,
    xForwardedProto: headerValue(headers['x-forwarded-proto']) ?? proto,
    xForwardedHost: headerValue(headers['x-forwarded-host']) ?? host,
    fromTrustedProxy: true,
  };
}
