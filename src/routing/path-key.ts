/**
 * The key a request path is routed on, and a configured prefix compared on: the path as a
 * normalizing backend reads it (RFC 3986 §6.2.2): escapes of unreserved characters decoded
 * (`%73` is `s`), other escapes in upper case (`%2f` is `%2F`), runs of `/` merged.
 */
const HEX = /^[0-9A-Fa-f]{2}$/;
const UNRESERVED = /^[A-Za-z0-9\-._~]$/;

/** The path as routes are matched: unreserved escapes decoded, others upper-cased, `/` runs merged. */
export function matchingPath(path: string): string {
  let out = path;
  if (out.includes('%')) {
    out = out.replace(/%(..)/g, (escape: string, hex: string) => {
      if (!HEX.test(hex)) return escape;
      const char = String.fromCharCode(Number.parseInt(hex, 16));
      return UNRESERVED.test(char) ? char : `%${hex.toUpperCase()}`;
    });
  }
  return out.includes('//') ? out.replace(/\/{2,}/g, '/') : out;
}
