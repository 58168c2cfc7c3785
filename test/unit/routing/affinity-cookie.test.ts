/**
 * The gateway's affinity cookie: its value is a random key and a signature, names no backend,
 * verifies only with the signing key it was made with (the configured secret shared by replicas,
 * or the pool's own derived one), and carries the attributes the settings ask for.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AffinityCookie, type AffinityCookieSettings } from '../../../src/routing/affinity-cookie.ts';

const SETTINGS: AffinityCookieSettings = {
  name: 'wsgate_affinity',
  maxAgeSeconds: undefined,
  sameSite: 'Lax',
  path: '/',
  secret: undefined,
};

const cookieText = (setCookie: string): string => setCookie.split(';')[0]?.split('=')[1] ?? '';

test('an issued cookie verifies to its key on every replica with the same pool or secret, and nowhere else', () => {
  const one = new AffinityCookie(SETTINGS, 'chat');
  const { key, setCookie } = one.issue(false);
  assert.equal(one.verify(cookieText(setCookie)), key);
  assert.equal(new AffinityCookie(SETTINGS, 'chat').verify(cookieText(setCookie)), key, 'another replica');
  assert.equal(
    new AffinityCookie(SETTINGS, 'billing').verify(cookieText(setCookie)),
    undefined,
    'another pool',
  );
  const secret = Buffer.from('a-shared-secret-of-at-least-32-bytes!');
  const signed = new AffinityCookie({ ...SETTINGS, secret }, 'chat');
  const issued = signed.issue(false);
  assert.equal(
    new AffinityCookie({ ...SETTINGS, secret }, 'other').verify(cookieText(issued.setCookie)),
    issued.key,
  );
  assert.equal(one.verify(cookieText(issued.setCookie)), undefined, 'the derived key does not verify it');
});

test('a tampered, truncated or made-up value verifies to nothing', () => {
  const cookie = new AffinityCookie(SETTINGS, 'chat');
  const value = cookieText(cookie.issue(false).setCookie);
  const [nonce = '', mac = ''] = value.split('.');
  /** `text` with its last character changed (to another one, whatever it was). */
  const flipped = (text: string): string => `${text.slice(0, -1)}${text.endsWith('A') ? 'B' : 'A'}`;
  for (const bad of [
    `${flipped(nonce)}.${mac}`,
    `${nonce}.${flipped(mac)}`,
    nonce,
    `${nonce}.`,
    `.${mac}`,
    `${nonce}.${mac}.x`,
    'backend-1',
    '',
  ]) {
    assert.equal(cookie.verify(bad), undefined, bad);
  }
});

test('attributes: Path, HttpOnly, SameSite, Max-Age when set, Secure only over TLS', () => {
  assert.match(
    new AffinityCookie(SETTINGS, 'p').issue(false).setCookie,
    /^wsgate_affinity=[^;]+; Path=\/; HttpOnly; SameSite=Lax$/,
  );
  const strict = new AffinityCookie({ ...SETTINGS, sameSite: 'None', maxAgeSeconds: 600, path: '/app' }, 'p');
  assert.match(strict.issue(true).setCookie, /; Path=\/app; HttpOnly; SameSite=None; Secure; Max-Age=600$/);
  const keys = new Set(Array.from({ length: 100 }, () => new AffinityCookie(SETTINGS, 'p').issue(false).key));
  assert.equal(keys.size, 100, 'keys are random');
});
