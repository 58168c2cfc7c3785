/**
 * The route's request stages: each runs only in the pass it applies to, in order, the first
 * refusal wins, a synchronous chain answers synchronously, and what stages edit reaches the
 * backend's head in both passes (the upgrade's raw header list and the plain request's headers).
 */
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { test } from 'node:test';
import {
  type FrontContext,
  noDownstreamEdits,
  noEdits,
  noFindings,
  type Pass,
  type RequestStage,
  runStages,
} from '../../../src/front/request-stage.ts';
import { prepareRequestHead } from '../../../src/http/request-head.ts';
import type { ForwardedFor } from '../../../src/listener/client-address.ts';
import type { Logger } from '../../../src/observability/logger.ts';
import { upstreamUpgradeHeaders } from '../../../src/upstream/headers.ts';

const FORWARDED: ForwardedFor = {
  clientAddress: '192.0.2.1',
  xForwardedFor: '192.0.2.1',
  xForwardedProto: 'http',
  xForwardedHost: undefined,
  fromTrustedProxy: false,
};

function context(
  pass: Pass,
  req = { headers: {}, rawHeaders: [] } as unknown as IncomingMessage,
): FrontContext {
  return {
    pass,
    req,
    listener: { name: 'public', encrypted: false, peerAddress: () => '192.0.2.1' },
    forwarded: FORWARDED,
    requestId: 'r-1',
    log: {} as Logger,
    upstream: noEdits(),
    downstream: noDownstreamEdits(),
    auth: noFindings(),
  };
}

function recording(
  name: string,
  appliesTo: RequestStage['appliesTo'],
  ran: string[],
  refuse = false,
): RequestStage {
  return {
    name,
    appliesTo,
    run: () => {
      ran.push(name);
      return refuse ? { code: 'ROUTE_NOT_FOUND', detail: name } : undefined;
    },
  };
}

test('a stage runs only in the pass it applies to, in order, and the first refusal wins', () => {
  for (const pass of ['upgrade', 'request'] as const) {
    const ran: string[] = [];
    const stages = [
      recording('both', 'both', ran),
      recording('upgrade only', 'upgrade', ran),
      recording('request only', 'request', ran),
      recording('refuses', 'both', ran, true),
      recording('never', 'both', ran),
    ];
    const result = runStages(stages, context(pass));
    assert.deepEqual(result, { code: 'ROUTE_NOT_FOUND', detail: 'refuses' });
    assert.deepEqual(ran, ['both', pass === 'upgrade' ? 'upgrade only' : 'request only', 'refuses']);
  }
});

test('a synchronous chain answers at once; an asynchronous stage makes the rest wait for it', async () => {
  const ran: string[] = [];
  assert.equal(runStages([recording('a', 'both', ran)], context('request')), undefined);
  const slow: RequestStage = {
    name: 'slow',
    appliesTo: 'both',
    run: async () => {
      await new Promise((resolve) => setTimeout(resolve, 5));
      ran.push('slow');
      return undefined;
    },
  };
  const pending = runStages([slow, recording('after', 'both', ran, true)], context('upgrade'));
  assert.ok(pending instanceof Promise);
  assert.deepEqual(ran, ['a'], 'nothing after the slow stage ran yet');
  assert.deepEqual(await pending, { code: 'ROUTE_NOT_FOUND', detail: 'after' });
  assert.deepEqual(ran, ['a', 'slow', 'after']);
});

test("the stages' edits reach the backend's head in both passes", () => {
  const edits = noEdits();
  edits.remove.add('x-user-id');
  edits.set.push(['X-User-Id', 'alice']);
  edits.target = '/socket.io/?EIO=4';
  const raw = ['Host', 'app.example', 'X-User-Id', 'mallory', 'Accept', '*/*'];
  const upgrade = upstreamUpgradeHeaders(raw, {
    edits,
    forwarded: FORWARDED,
    hostOverride: undefined,
    requestId: 'r-1',
  });
  const names = upgrade.filter((_, i) => i % 2 === 0);
  assert.equal(
    names.filter((name) => name.toLowerCase() === 'x-user-id').length,
    1,
    'the client copy is gone',
  );
  assert.equal(upgrade[upgrade.indexOf('X-User-Id') + 1], 'alice');

  const req = {
    url: '/socket.io/?EIO=4&token=secret',
    headers: { host: 'app.example', 'x-user-id': 'mallory', accept: '*/*' },
    rawHeaders: raw,
  } as unknown as IncomingMessage;
  prepareRequestHead(req, FORWARDED, 'r-1', edits);
  assert.equal(req.headers['x-user-id'], 'alice');
  assert.equal(req.url, '/socket.io/?EIO=4', 'the target a stage set');
  assert.equal(req.headers.accept, '*/*');
});
