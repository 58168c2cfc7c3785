/**
 * The guards of protocol/header-rules.ts: a Connection header never makes a framing or routing
 * header hop-by-hop (and naming one is reported), and underscore spellings of the headers the
 * gateway controls are recognised whatever their case; HTTP versions other than 1.0 and 1.1 are
 * refused. Tokens in lists and header names compare in any ASCII case, nothing else folded.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { noEdits } from '../../../src/front/request-stage.ts';
import {
  connectionNamesFraming,
  connectionTokens,
  isHopByHop,
  isNamed,
  isUnderscoreAlias,
  listsToken,
} from '../../../src/protocol/header-rules.ts';
import { unsupportedHttpVersion } from '../../../src/routing/request-target.ts';
import { upstreamUpgradeHeaders } from '../../../src/upstream/headers.ts';

const FORWARDED = {
  clientAddress: '10.0.0.1',
  xForwardedFor: '10.0.0.1',
  xForwardedProto: 'http',
  xForwardedHost: 'a',
  fromTrustedProxy: false,
};

test('connectionTokens never lists a header that frames or routes the message', () => {
  const raw = ['Connection', 'close, Content-Length, HOST, x-custom', 'Connection', 'Sec-WebSocket-Key,te'];
  assert.deepEqual([...connectionTokens(raw)].sort(), ['close', 'x-custom']);
});

test('connectionTokens leaves out what is hop-by-hop anyway, and a plain `Connection: Upgrade` lists nothing', () => {
  assert.deepEqual([...connectionTokens(['Connection', 'Upgrade'])], []);
  assert.deepEqual([...connectionTokens(['Connection', 'keep-alive, Upgrade, X-Trace'])], ['x-trace']);
  // Hop-by-hop either way: what the list leaves out is still dropped.
  assert.equal(isHopByHop('TE', connectionTokens(['Connection', 'te'])), true);
  assert.equal(isHopByHop('X-Trace', connectionTokens(['Connection', 'x-trace'])), true);
  assert.equal(isHopByHop('X-Trace', connectionTokens(['Connection', 'Upgrade'])), false);
});

test('connectionNamesFraming reports the first framing or routing header named, in any case', () => {
  const cases: [string[], string | undefined][] = [
    [['Connection', 'keep-alive'], undefined],
    [['Connection', 'close, Host'], 'host'],
    [['connection', ' Content-Length '], 'content-length'],
    [['Connection', 'upgrade', 'CONNECTION', 'transfer-encoding'], 'transfer-encoding'],
    [['Connection', 'Upgrade, Sec-WebSocket-Extensions'], 'sec-websocket-extensions'],
    [['X-Connection', 'content-length'], undefined],
  ];
  for (const [raw, expected] of cases) assert.equal(connectionNamesFraming(raw), expected, raw.join(': '));
});

test('underscore spellings of controlled headers are recognised, others are not', () => {
  for (const name of [
    'x_forwarded_for',
    'x_real_ip',
    'content_length',
    'transfer_encoding',
    'x_request_id',
  ]) {
    assert.equal(isUnderscoreAlias(name), true, name);
  }
  for (const name of ['x_custom_header', 'x-forwarded-for', 'user_agent_hint']) {
    assert.equal(isUnderscoreAlias(name), false, name);
  }
});

test("an upgrade's head to the backend drops underscore spellings and keeps framing headers", () => {
  const out = upstreamUpgradeHeaders(
    [
      'Host',
      'a',
      'Connection',
      'Upgrade',
      'X_Forwarded_For',
      '6.6.6.6',
      'X_Real_IP',
      '6.6.6.6',
      'X_App_Token',
      'kept',
      'Sec-WebSocket-Key',
      'k',
    ],
    { edits: noEdits(), forwarded: FORWARDED, hostOverride: undefined, requestId: 'req-1' },
  );
  const names = out.filter((_value, index) => index % 2 === 0).map((name) => name.toLowerCase());
  assert.ok(!names.includes('x_forwarded_for'), 'X_Forwarded_For dropped');
  assert.ok(!names.includes('x_real_ip'), 'X_Real_IP dropped');
  assert.ok(names.includes('x_app_token'), 'an unrelated underscore header passes');
  assert.ok(names.includes('sec-websocket-key') && names.includes('host'), 'key and host kept');
});

test('only HTTP/1.0 and HTTP/1.1 are served on an HTTP/1 listener', () => {
  const versions: [number, number, string | undefined][] = [
    [1, 1, undefined],
    [1, 0, undefined],
    [2, 0, 'HTTP/2.0'],
    [0, 9, 'HTTP/0.9'],
  ];
  for (const [major, minor, expected] of versions) {
    assert.equal(
      unsupportedHttpVersion({ httpVersionMajor: major, httpVersionMinor: minor }),
      expected,
      `HTTP/${major}.${minor}`,
    );
  }
});

test('listsToken finds an element in any ASCII case, with spaces and tabs around it only', () => {
  for (const value of [
    'Upgrade',
    'upgrade',
    'UPGRADE',
    'keep-alive, Upgrade',
    'Upgrade,close',
    ' \tupgrade\t ',
    ',,upgrade,',
  ]) {
    assert.equal(listsToken(value, 'upgrade'), true, value);
  }
  for (const value of [
    '',
    'upgraded',
    'up grade',
    'keep-alive',
    'upgrade;q=1',
    'upgrade\u00a0',
    '\u00a0upgrade',
    'upgrad',
  ]) {
    assert.equal(listsToken(value, 'upgrade'), false, JSON.stringify(value));
  }
  assert.equal(listsToken(undefined, 'upgrade'), false);
  // Only A–Z fold: a Latin-1 letter is not the ASCII one it resembles.
  assert.equal(listsToken('webso\u00c7ket', 'websocket'), false);
  assert.equal(listsToken('WebSocket', 'websocket'), true);
});

test('isNamed compares a header name in any ASCII case, and only a name of the same length', () => {
  assert.equal(isNamed('Host', 'host'), true);
  assert.equal(isNamed('HOST', 'host'), true);
  assert.equal(isNamed('Hosts', 'host'), false);
  assert.equal(isNamed('Hos', 'host'), false);
  assert.equal(isNamed(undefined, 'host'), false);
  assert.equal(isNamed('Sec-WebSocket-Protocol', 'sec-websocket-protocol'), true);
  assert.equal(isNamed('Sec_WebSocket_Protocol', 'sec-websocket-protocol'), false);
});

test('a Connection header of `upgrade` alone lists nothing, however it is spelled, and names no framing header', () => {
  for (const value of ['Upgrade', ' upgrade ', 'UPGRADE']) {
    assert.deepEqual([...connectionTokens(['Connection', value])], [], value);
    assert.equal(connectionNamesFraming(['Connection', value]), undefined, value);
  }
  assert.deepEqual([...connectionTokens(['Connection', 'Upgrade', 'connection', 'X-Trace'])], ['x-trace']);
  assert.equal(
    connectionNamesFraming(['Connection', 'Upgrade', 'CONNECTION', 'Content-Length']),
    'content-length',
  );
});
