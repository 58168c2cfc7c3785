/**
 * Normalizes the Host a request names (RFC 9110 §7.2) into the bare, lower-case host name the
 * router matches on: the port and a trailing dot are dropped, IPv6 literals keep no brackets.
 */

/** The host name of a Host header value, or undefined when the header is missing or empty. */
export function hostName(header: string | undefined): string | undefined {
  if (!header) return undefined;
  let host = header.trim().toLowerCase();
  if (host.startsWith('[')) {
    const end = host.indexOf(']');
    return end > 1 ? host.slice(1, end) : undefined;
  }
  const colon = host.indexOf(':');
  if (colon !== -1) host = host.slice(0, colon);
  if (host.endsWith('.')) host = host.slice(0, -1);
  return host || undefined;
}
