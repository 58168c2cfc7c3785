/**
 * Where a request's token travels, and taking it out of what the backend receives. The sources
 * are tried in the route's order: `Authorization: Bearer`, the `Sec-WebSocket-Protocol` list
 * (browsers cannot set headers on a WebSocket, so they offer `[marker, token, ...subprotocols]`),
 * a cookie, a query parameter. A token in the query or the subprotocol list is removed from the
 * request whether or not it is the one used, so no token placed there ever reaches a backend or
 * its logs: the target keeps every other byte as the client sent it, and the backend chooses among
 * the remaining subprotocols. Authorization and cookies go on unchanged (backends may read them).
 */
import type { TokenSourceName } from '../config/auth-schema.ts';
import type { IncomingHead } from '../protocol/incoming-head.ts';
import { cookieValues, decodeQueryPart } from '../protocol/request-values.ts';
import type { UpstreamEdits } from '../upstream/edits.ts';

export interface TokenSourceSettings {
  readonly tokenFrom: readonly TokenSourceName[];
  readonly subprotocolMarker: string;
  readonly cookie: string;
  readonly queryParameter: string;
}

export interface FoundToken {
  readonly token: string;
  readonly source: TokenSourceName;
}

/** What the token sources found in a request, and what must change toward the backend. */
export interface TokenSearch {
  readonly found: FoundToken | undefined;
  /** Why no token can be trusted although one was sent (the same cookie twice, different values). */
  readonly ambiguous?: string;
  /** The client offered the subprotocol marker: answer with it if the backend chooses none. */
  readonly markerOffered: boolean;
}

function bearer(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const match = /^bearer[ \t]+([^ \t]+)[ \t]*$/i.exec(header);
  return match?.[1];
}

/** Stands for a cookie sent twice with different values: which one a backend reads varies. */
const AMBIGUOUS = Symbol('ambiguous');

function cookieValue(header: string | undefined, name: string): string | typeof AMBIGUOUS | undefined {
  // A token may be sent as a quoted cookie value (RFC 6265 §4.1.1).
  const unquoted = cookieValues(header, name).map((raw) =>
    raw.length >= 2 && raw.startsWith('"') && raw.endsWith('"') ? raw.slice(1, -1) : raw,
  );
  const [first, ...others] = unquoted;
  return others.some((value) => value !== first) ? AMBIGUOUS : first;
}

/** The target without every `name=` parameter, and the first one's value. */
export function withoutQueryParameter(
  target: string,
  name: string,
): { target: string; value: string | undefined } | undefined {
  const queryAt = target.indexOf('?');
  if (queryAt === -1) return undefined;
  let value: string | undefined;
  let removed = false;
  const kept: string[] = [];
  for (const parameter of target.slice(queryAt + 1).split('&')) {
    const equals = parameter.indexOf('=');
    const key = decodeQueryPart(equals === -1 ? parameter : parameter.slice(0, equals));
    if (key !== name) {
      kept.push(parameter);
      continue;
    }
    removed = true;
    if (value === undefined && equals !== -1) value = decodeQueryPart(parameter.slice(equals + 1));
  }
  if (!removed) return undefined;
  const path = target.slice(0, queryAt);
  return { target: kept.length > 0 ? `${path}?${kept.join('&')}` : path, value };
}

/** The offered subprotocols with every `[marker, token]` taken out, and the first token. */
export function withoutMarker(
  header: string,
  marker: string,
): { rest: string[]; token: string | undefined } | undefined {
  const offered = header
    .split(',')
    .map((entry) => entry.trim())
    .filter(Boolean);
  if (!offered.includes(marker)) return undefined;
  // Every marker goes with the entry after it: a second `[marker, token]` must not reach the backend.
  const rest: string[] = [];
  let token: string | undefined;
  for (let i = 0; i < offered.length; i++) {
    const entry = offered[i] ?? '';
    if (entry !== marker) {
      rest.push(entry);
      continue;
    }
    token ??= offered[i + 1];
    i++;
  }
  return { rest, token };
}

/**
 * Looks for the token in `req` in the route's order, and records in `edits` what must not reach
 * the backend (a query token, the marker and token in the subprotocol list).
 */
export function searchToken(
  req: IncomingHead,
  upgrade: boolean,
  settings: TokenSourceSettings,
  edits: UpstreamEdits,
): TokenSearch {
  const candidates: Partial<Record<TokenSourceName, string | typeof AMBIGUOUS | undefined>> = {};
  let markerOffered = false;
  for (const source of settings.tokenFrom) {
    switch (source) {
      case 'authorization':
        candidates.authorization = bearer(req.headers.authorization);
        break;
      case 'cookie':
        candidates.cookie = cookieValue(req.headers.cookie, settings.cookie);
        break;
      case 'query': {
        const stripped = withoutQueryParameter(edits.target ?? req.url ?? '/', settings.queryParameter);
        if (stripped === undefined) break;
        edits.target = stripped.target;
        candidates.query = stripped.value;
        break;
      }
      case 'subprotocol': {
        const header = req.headers['sec-websocket-protocol'];
        if (header === undefined) break;
        const stripped = withoutMarker(header, settings.subprotocolMarker);
        if (stripped === undefined) break;
        edits.remove.add('sec-websocket-protocol');
        if (stripped.rest.length > 0) edits.set.push(['Sec-WebSocket-Protocol', stripped.rest.join(', ')]);
        // Removed from a plain request too, but only a WebSocket handshake carries a token there.
        if (!upgrade) break;
        markerOffered = true;
        candidates.subprotocol = stripped.token;
        break;
      }
    }
  }
  for (const source of settings.tokenFrom) {
    const token = candidates[source];
    if (token === AMBIGUOUS) {
      return { found: undefined, markerOffered, ambiguous: `several ${settings.cookie} cookies` };
    }
    if (token !== undefined && token !== '') return { found: { token, source }, markerOffered };
  }
  return { found: undefined, markerOffered };
}
