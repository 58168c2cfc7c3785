/**
 * A request's sticky key from each source, tried in order: the first that yields a value wins,
 * each key marked with its source so that the same text from two sources is two keys; a path
 * segment by position, a header, a query parameter, a cookie, a claim of the verified token and
 * the client address.
 */
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { test } from 'node:test';
import type { StickySource } from '../../../src/config/balance-schema.ts';
import {
  type FrontContext,
  noDownstreamEdits,
  noEdits,
  noFindings,
} from '../../../src/front/request-stage.ts';
import { stickyKey } from '../../../src/front/sticky-key.ts';
import type { Logger } from '../../../src/observability/logger.ts';

function context(
  url: string,
  headers: Record<string, string> = {},
  claims?: Record<string, unknown>,
): FrontContext {
  const auth = noFindings();
  if (claims) auth.token = { claims, subjectKey: undefined, expiresAtMs: undefined };
  return {
    pass: 'request',
    req: { url, headers } as unknown as IncomingMessage,
    listener: { name: 'public', encrypted: false, peerAddress: () => '192.0.2.1' },
    forwarded: {
      clientAddress: '198.51.100.7',
      xForwardedFor: '198.51.100.7',
      xForwardedProto: 'http',
      xForwardedHost: undefined,
      fromTrustedProxy: false,
    },
    requestId: 'r-1',
    log: {} as Logger,
    upstream: noEdits(),
    downstream: noDownstreamEdits(),
    auth,
  };
}

test('each source yields its value, marked with its place in the list', () => {
  const cases: [StickySource, FrontContext, string | undefined][] = [
    [{ path: 2 }, context('/chat/042/abc/xhr_streaming?t=1'), '0:042'],
    [{ path: 5 }, context('/chat/042/abc'), undefined],
    [{ path: 1 }, context('//x'), undefined],
    [{ header: 'X-Session' }, context('/', { 'x-session': 's-1' }), '0:s-1'],
    [{ query: 'sid' }, context('/socket.io/?EIO=4&sid=a%20b'), '0:a b'],
    [{ cookie: 'JSESSIONID' }, context('/', { cookie: 'a=1; JSESSIONID=node7.xyz' }), '0:node7.xyz'],
    [{ claim: 'sub' }, context('/', {}, { sub: 'user-1' }), '0:user-1'],
    [{ claim: 'tenant' }, context('/', {}, { tenant: 42 }), '0:42'],
    [{ claim: 'sub' }, context('/'), undefined],
    ['clientAddress', context('/'), '0:198.51.100.7'],
  ];
  for (const [source, ctx, expected] of cases) {
    assert.equal(
      stickyKey({ stickySources: [source], affinityCookie: undefined }, ctx),
      expected,
      JSON.stringify(source),
    );
  }
});

test('sources are tried in order; the same text from two sources is two keys', () => {
  const sources: StickySource[] = [{ header: 'X-Session' }, { query: 'session' }, 'clientAddress'];
  assert.equal(
    stickyKey(
      { stickySources: sources, affinityCookie: undefined },
      context('/?session=s-1', { 'x-session': 's-1' }),
    ),
    '0:s-1',
  );
  assert.equal(
    stickyKey({ stickySources: sources, affinityCookie: undefined }, context('/?session=s-1')),
    '1:s-1',
  );
  assert.equal(
    stickyKey(
      { stickySources: sources, affinityCookie: undefined },
      context('/?session=', { 'x-session': '' }),
    ),
    '2:198.51.100.7',
  );
  assert.equal(stickyKey({ stickySources: [], affinityCookie: undefined }, context('/')), undefined);
});
