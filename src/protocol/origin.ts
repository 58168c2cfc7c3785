/**
 * Origins as browsers send them (RFC 6454 §6.2: scheme, host and port, serialized), and the
 * allowlist entries they are compared with: an exact origin (`https://app.example.com`), a
 * subdomain wildcard (`https://*.example.com`, for every name under example.com, never example.com
 * itself nor a name that merely ends the same way), or the opaque origin `null`, which matches
 * only an explicit `null` entry. Both sides are normalized the same way by the URL parser: scheme
 * and host lower case, IDN in punycode, default ports dropped.
 */

/** One allowlist entry. */
export type OriginPattern =
  | { readonly kind: 'null' }
  | {
      readonly kind: 'origin';
      readonly scheme: string;
      /** The whole host, or for a wildcard the domain the names must be under. */
      readonly host: string;
      readonly wildcard: boolean;
      /** '' for the scheme's default port. */
      readonly port: string;
    };

const SCHEMES = new Set(['http:', 'https:']);

/** An allowlist entry, or the problem with it. */
export function parseOriginPattern(text: string): OriginPattern | { readonly problem: string } {
  if (text === 'null') return { kind: 'null' };
  const wildcard = /^(https?:\/\/)\*\.(.+)$/i.exec(text);
  const url = parseOrigin(wildcard ? `${wildcard[1]}${wildcard[2]}` : text);
  if (url === undefined) {
    return { problem: `"${text}" is not an origin (scheme://host[:port], e.g. "https://app.example.com")` };
  }
  if (wildcard && !url.hostname.includes('.')) {
    return { problem: `"${text}" would match every name under a top-level domain` };
  }
  return {
    kind: 'origin',
    scheme: url.protocol,
    host: url.hostname,
    wildcard: wildcard !== null,
    port: url.port,
  };
}

/** An Origin header's value as a URL, when it is a serialized http(s) origin (no path, no query). */
function parseOrigin(text: string): URL | undefined {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return undefined;
  }
  if (!SCHEMES.has(url.protocol) || url.username || url.password || url.search || url.hash) return undefined;
  if (url.pathname !== '/' || !/^[a-z]+:\/\/[^/]+\/?$/i.test(text)) return undefined;
  return url;
}

/** What the allowlist says of an Origin header: allowed, not allowed, or not an origin at all. */
export function checkOrigin(
  value: string,
  allow: readonly OriginPattern[],
): 'allowed' | 'not_allowed' | 'malformed' {
  if (value === 'null') return allow.some((pattern) => pattern.kind === 'null') ? 'allowed' : 'not_allowed';
  const url = parseOrigin(value);
  if (url === undefined) return 'malformed';
  const host = url.hostname;
  for (const pattern of allow) {
    if (pattern.kind === 'null' || pattern.scheme !== url.protocol || pattern.port !== url.port) continue;
    if (pattern.wildcard ? host.endsWith(`.${pattern.host}`) : host === pattern.host) return 'allowed';
  }
  return 'not_allowed';
}
