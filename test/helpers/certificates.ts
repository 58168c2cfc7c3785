/**
 * Certificates made at test time with the `openssl` command, signed by the fixture CA
 * (test/fixtures/tls), and a directory laid out like a Kubernetes secret volume, whose files are
 * replaced the way the kubelet does it: a new timestamped directory, then an atomic rename of the
 * `..data` symlink onto it. Tests that need them skip when openssl is not installed.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import {
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { TestContext } from 'node:test';

const TLS_DIR = resolve(import.meta.dirname, '../fixtures/tls');

/** Why certificates cannot be made here, or false when they can (for `test(name, { skip })`). */
export function opensslMissing(): string | false {
  const result = spawnSync('openssl', ['version'], { stdio: 'ignore' });
  return result.status === 0 ? false : 'the openssl command is not installed';
}

export interface Issued {
  readonly cert: Buffer;
  readonly key: Buffer;
  /** SHA-256 fingerprint, as `getPeerCertificate().fingerprint256` gives it. */
  readonly fingerprint: string;
  readonly notAfter: Date;
}

/** A P-256 certificate for `dns` (subjectAltName) with subject `CN=cn`, signed by the fixture CA. */
export function issueCertificate(cn: string, dns: readonly string[]): Issued {
  const dir = mkdtempSync(join(tmpdir(), 'wsgate-cert-'));
  try {
    const ext = [
      'basicConstraints = critical, CA:FALSE',
      'keyUsage = critical, digitalSignature',
      'extendedKeyUsage = serverAuth',
      ...(dns.length > 0 ? [`subjectAltName = ${dns.map((name) => `DNS:${name}`).join(', ')}`] : []),
    ];
    writeFileSync(join(dir, 'ext.cnf'), `${ext.join('\n')}\n`);
    const run = (args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
    run(
      ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'].concat([
        '-keyout',
        'key.pem',
        '-out',
        'csr.pem',
        '-subj',
        `/CN=${cn}`,
      ]),
    );
    const serial = `0x${Date.now().toString(16)}${Math.floor(Math.random() * 0xffff).toString(16)}`;
    run(
      ['x509', '-req', '-in', 'csr.pem', '-CA', resolve(TLS_DIR, 'ca.pem')]
        .concat(['-CAkey', resolve(TLS_DIR, 'ca-key.pem'), '-set_serial', serial, '-days', '2'])
        .concat(['-out', 'cert.pem', '-extfile', 'ext.cnf']),
    );
    const cert = readFileSync(join(dir, 'cert.pem'));
    const x509 = new X509Certificate(cert);
    return {
      cert,
      key: readFileSync(join(dir, 'key.pem')),
      fingerprint: x509.fingerprint256,
      notAfter: x509.validToDate,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A directory like a mounted Kubernetes secret: `tls.crt` and `tls.key` through `..data`. */
export class SecretVolume {
  readonly dir: string;
  #version = 0;

  constructor(t: TestContext) {
    this.dir = mkdtempSync(join(tmpdir(), 'wsgate-secret-'));
    t.after(() => rmSync(this.dir, { recursive: true, force: true }));
  }

  get certPath(): string {
    return join(this.dir, 'tls.crt');
  }

  get keyPath(): string {
    return join(this.dir, 'tls.key');
  }

  /** Publishes new contents the way the kubelet does: atomically, for both files at once. */
  publish(cert: Buffer, key: Buffer): void {
    const version = `..${Date.now()}_${++this.#version}`;
    mkdirSync(join(this.dir, version));
    writeFileSync(join(this.dir, version, 'tls.crt'), cert);
    writeFileSync(join(this.dir, version, 'tls.key'), key);
    symlinkSync(version, join(this.dir, '..data_tmp'));
    renameSync(join(this.dir, '..data_tmp'), join(this.dir, '..data'));
    if (this.#version === 1) {
      symlinkSync('..data/tls.crt', this.certPath);
      symlinkSync('..data/tls.key', this.keyPath);
    }
  }
}
