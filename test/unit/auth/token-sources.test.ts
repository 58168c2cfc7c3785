/**
 * Taking a token out of a request target and a subprotocol list: every other byte of the target
 * kept as sent, every copy of the parameter removed (encoded names too), the marker and the entry
 * after it removed from the offered subprotocols.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { withoutMarker, withoutQueryParameter } from '../../../src/auth/token-sources.ts';

test('the token parameter leaves the target; the rest stays byte for byte', () => {
  const cases: [string, { target: string; value: string | undefined } | undefined][] = [
    ['/ws?a=1&access_token=T&b=%20x', { target: '/ws?a=1&b=%20x', value: 'T' }],
    ['/ws?access_token=T', { target: '/ws', value: 'T' }],
    ['/ws?access_token=T1&access_token=T2&keep', { target: '/ws?keep', value: 'T1' }],
    ['/ws?access%5Ftoken=T&a=1', { target: '/ws?a=1', value: 'T' }],
    ['/ws?access_token&a=1', { target: '/ws?a=1', value: undefined }],
    ['/ws?access_token=a%2Bb', { target: '/ws', value: 'a+b' }],
    ['/ws?a=1;b=2&%ZZ=3', undefined],
    ['/ws', undefined],
    ['/ws?', undefined],
  ];
  for (const [target, expected] of cases) {
    assert.deepEqual(withoutQueryParameter(target, 'access_token'), expected, target);
  }
});

test('the marker and the token after it leave the offered subprotocols', () => {
  assert.deepEqual(withoutMarker('bearer, T, chat.v1, chat.v2', 'bearer'), {
    rest: ['chat.v1', 'chat.v2'],
    token: 'T',
  });
  assert.deepEqual(withoutMarker('chat.v1,bearer,T', 'bearer'), { rest: ['chat.v1'], token: 'T' });
  assert.deepEqual(withoutMarker('chat.v1, bearer', 'bearer'), { rest: ['chat.v1'], token: undefined });
  assert.equal(withoutMarker('chat.v1, Bearer, T', 'bearer'), undefined, 'subprotocols are case-sensitive');
  assert.equal(withoutMarker('chat.v1', 'bearer'), undefined);
  assert.deepEqual(
    withoutMarker('bearer, T1, chat.v1, bearer, T2', 'bearer'),
    { rest: ['chat.v1'], token: 'T1' },
    'regression: a second marker and its token reached the backend',
  );
});
