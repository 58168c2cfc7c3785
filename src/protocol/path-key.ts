/**
 * The key a request path is routed on, and a configured prefix compared on: the path as a
 * normalizing backend reads it (RFC 3986 §6.2.2): escapes of unreserved characters decoded
 * (`%73` is `s`), other escapes in upper case (`%2f` is `%2F`), path parameters dropped (`;x`
 * up to the next `/`, which servlet containers strip: `/api;x/y` is `/api/y` to them), runs of
 * `/` merged.
 */
const HEX = /^[0-9A-Fa-f]{2}$/;
const UNRESERVED = /^[A-Za-z0-9\-._~]$/;

/** Runs of `/` merged into one. */
export function mergeSlashes(path: string): string {
  return path.includes('//') ? path.replace(/\/{2,}/g, '/') : path;
}

/** The path as routes are matched (see the module comment). */
export function matchingPath(path: string): string {
  let out = path.includes(';') ? path.replace(/;[^/]*/g, '') : path;
  if (out.includes('%')) {
    out = out.replace(/%(..)/g, (sequence: string, hex: string) => {
      if (!HEX.test(hex)) return sequence;
      const char = String.fromCharCode(Number.parseInt(hex, 16));
      return UNRESERVED.test(char) ? char : `%${hex.toUpperCase()}`;
    });
  }
  return mergeSlashes(out);
}
