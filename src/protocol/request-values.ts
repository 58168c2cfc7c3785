/**
 * Reading values out of a request as servers read them, for every part of the gateway that
 * needs one (token sources, sticky keys, logged paths): the values of a cookie as sent (a
 * browser may send a name several times) and a query component percent-decoded with `+` as a
 * space.
 */

/** Every value of the cookie `name` in a Cookie header, in the order sent, as sent. */
export function cookieValues(header: string | undefined, name: string): string[] {
  const values: string[] = [];
  for (const pair of header?.split(';') ?? []) {
    const equals = pair.indexOf('=');
    if (equals === -1 || pair.slice(0, equals).trim() !== name) continue;
    values.push(pair.slice(equals + 1).trim());
  }
  return values;
}

/** A query name or value as a server decodes it; undefined when its escapes are broken. */
export function decodeQueryPart(text: string): string | undefined {
  try {
    return decodeURIComponent(text.replaceAll('+', ' '));
  } catch {
    return undefined;
  }
}
