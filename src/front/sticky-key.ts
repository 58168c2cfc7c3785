/**
 * A request's sticky key, the same way for plain HTTP requests and WebSocket upgrades, so that a
 * Socket.IO session that starts with long-polling upgrades on the backend that holds it, and a
 * SockJS session's streaming and sending requests meet on one backend. The pool's sources are
 * tried in order; the first that yields a non-empty value is the key, prefixed with its source so
 * that the same text from two sources is two keys. The gateway's affinity cookie always yields:
 * the key it carries, or a new one whose cookie the answer to the client sets.
 */
import type { StickySource } from '../config/balance-schema.ts';
import { cookieValues } from '../protocol/request-values.ts';
import type { AffinityCookie } from '../routing/affinity-cookie.ts';
import type { FrontContext } from './request-stage.ts';

/** The segment at `position` (1-based) of the request path, undecoded; undefined if absent. */
function pathSegment(target: string, position: number): string | undefined {
  const queryAt = target.indexOf('?');
  const path = queryAt === -1 ? target : target.slice(0, queryAt);
  const segment = path.split('/')[position];
  return segment === '' ? undefined : segment;
}

function queryValue(target: string, name: string): string | undefined {
  const queryAt = target.indexOf('?');
  if (queryAt === -1) return undefined;
  return new URLSearchParams(target.slice(queryAt + 1)).get(name) ?? undefined;
}

function cookieValue(header: string | undefined, name: string): string | undefined {
  return cookieValues(header, name)[0];
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function claimValue(claim: unknown): string | undefined {
  if (typeof claim === 'string') return claim;
  if (typeof claim === 'number' || typeof claim === 'boolean') return String(claim);
  return undefined;
}

/** What one source yields for the request, if anything; the affinity cookie always yields. */
function yieldOf(
  source: StickySource,
  ctx: FrontContext,
  cookie: AffinityCookie | undefined,
): string | undefined {
  const target = ctx.req.url ?? '/';
  if (source === 'clientAddress') return ctx.forwarded.clientAddress;
  if (source === 'affinityCookie') return affinityKey(ctx, cookie);
  if ('path' in source) return pathSegment(target, source.path);
  if ('header' in source) return headerValue(ctx.req.headers[source.header.toLowerCase()]);
  if ('query' in source) return queryValue(target, source.query);
  if ('cookie' in source) return cookieValue(ctx.req.headers.cookie, source.cookie);
  return claimValue(ctx.auth.token?.claims[source.claim]);
}

/** The key of the gateway's affinity cookie, or a new one, set on the answer to the client. */
function affinityKey(ctx: FrontContext, cookie: AffinityCookie | undefined): string | undefined {
  if (cookie === undefined) return undefined;
  // A stale or foreign copy (another path, a sibling domain) may come first: the first valid one counts.
  for (const sent of cookieValues(ctx.req.headers.cookie, cookie.name)) {
    const known = cookie.verify(sent);
    if (known !== undefined) return known;
  }
  const issued = cookie.issue(ctx.forwarded.xForwardedProto === 'https');
  ctx.downstream.headers.push(['Set-Cookie', issued.setCookie]);
  return issued.key;
}

/** Where a pool's sticky keys come from. */
export interface StickySources {
  readonly stickySources: readonly StickySource[];
  readonly affinityCookie: AffinityCookie | undefined;
}

/** The sticky key of a request for `pool`; undefined when no source yields one. */
export function stickyKey(pool: StickySources, ctx: FrontContext): string | undefined {
  const sources = pool.stickySources;
  for (let i = 0; i < sources.length; i++) {
    const source = sources[i] as StickySource;
    const value = yieldOf(source, ctx, pool.affinityCookie);
    if (value !== undefined && value !== '') return `${i}:${value}`;
  }
  return undefined;
}
