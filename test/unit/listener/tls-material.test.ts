/**
 * What a TLS listener serves: the SNI table (exact names before wildcards, one label per wildcard,
 * case and a final dot ignored, the first entry keeps a name claimed twice), the names a
 * certificate answers to, and the checks every pair passes before it is served, at start and at
 * each reload (the fixture CA's key does not belong to the server certificate).
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { test } from 'node:test';
import { certificateNames, loadMaterial, type TlsSettings } from '../../../src/keys/tls-material.ts';
import { SniTable } from '../../../src/protocol/sni.ts';

const TLS_DIR = resolve(import.meta.dirname, '../../fixtures/tls');
const read = (name: string): Buffer => readFileSync(resolve(TLS_DIR, name));
const SETTINGS: TlsSettings = { minVersion: 'TLSv1.2', ciphers: undefined };

test('the SNI table: exact names, then a wildcard over one label, else nothing', () => {
  const table = new SniTable([
    { names: ['*.example.com', 'Exact.Example.com'], value: 'first' },
    { names: ['exact.example.com', 'other.example.com', '*.deep.example.com'], value: 'second' },
  ]);
  assert.equal(table.lookup('exact.example.com'), 'first');
  assert.equal(table.lookup('EXACT.example.com.'), 'first');
  assert.equal(table.lookup('other.example.com'), 'second', 'an exact name before a wildcard');
  assert.equal(table.lookup('a.example.com'), 'first');
  assert.equal(table.lookup('a.deep.example.com'), 'second');
  assert.equal(table.lookup('a.b.example.com'), undefined, 'a wildcard covers one label');
  assert.equal(table.lookup('example.com'), undefined);
  assert.equal(table.lookup('.example.com'), undefined);
  assert.equal(table.lookup('localhost'), undefined);
  assert.equal(table.lookup(''), undefined);
});

test('a certificate answers to its DNS subjectAltNames, else its CN', () => {
  assert.deepEqual(certificateNames(new X509Certificate(read('server.pem'))), ['localhost']);
  // The CA has no subjectAltName, and its CN ("wsgate test CA") is no host name.
  assert.deepEqual(certificateNames(new X509Certificate(read('ca.pem'))), []);
});

test('a pair is served only when the key is the certificate’s', () => {
  const served = loadMaterial(read('server.pem'), read('server-key.pem'), 'certificate', SETTINGS);
  assert.ok(!('problem' in served));
  assert.deepEqual(served.names, ['localhost']);
  assert.equal(served.notAfter.getUTCFullYear(), 2126);
  const listed = loadMaterial(read('server.pem'), read('server-key.pem'), ['chat.example.com'], SETTINGS);
  assert.ok(!('problem' in listed) && listed.names[0] === 'chat.example.com');

  const problems = [
    loadMaterial(read('server.pem'), read('ca-key.pem'), [], SETTINGS),
    loadMaterial(read('server-key.pem'), read('server.pem'), [], SETTINGS),
    loadMaterial(read('server.pem'), Buffer.from('garbage'), [], SETTINGS),
    loadMaterial(Buffer.alloc(0), read('server-key.pem'), [], SETTINGS),
    loadMaterial(read('ca.pem'), read('ca-key.pem'), 'certificate', SETTINGS),
    loadMaterial(read('server.pem'), read('server-key.pem'), [], { minVersion: 'TLSv1.2', ciphers: 'NOPE' }),
  ];
  assert.deepEqual(problems, [
    { field: 'pair', problem: 'key values mismatch' },
    { field: 'pair', problem: 'no PEM certificate in the certificate file' },
    { field: 'pair', problem: 'no PEM private key in the key file' },
    { field: 'pair', problem: 'no PEM certificate in the certificate file' },
    { field: 'names', problem: 'the certificate names no DNS name (subjectAltName or CN): list its names' },
    { field: 'pair', problem: 'no cipher match' },
  ]);
  // The default pair needs no names: the CA's own pair would do as one.
  assert.ok(!('problem' in loadMaterial(read('ca.pem'), read('ca-key.pem'), [], SETTINGS)));
});
