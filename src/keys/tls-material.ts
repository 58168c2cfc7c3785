/**
 * One certificate and key pair as a TLS listener serves it, checked: the certificate parses, the
 * key parses and is the certificate's own (its public key), and OpenSSL accepts the pair with the
 * listener's protocol floor and ciphers; then its SecureContext is built once, with the names it
 * answers to for SNI and the time it expires. The configuration loader runs the same checks at
 * start and the listener runs them again when the files change on disk, so a pair refused at a
 * reload is exactly one that would have been refused at start.
 */
import { createPrivateKey, type KeyObject, X509Certificate } from 'node:crypto';
import { createSecureContext, type SecureContext, type SecureVersion } from 'node:tls';
import { SNI_NAME } from '../protocol/sni.ts';

/** What every context of a listener shares. */
export interface TlsSettings {
  readonly minVersion: SecureVersion;
  /** OpenSSL cipher list; undefined: Node.js's default (`tls.DEFAULT_CIPHERS`). */
  readonly ciphers: string | undefined;
}

/** A checked pair, ready to serve. */
export interface CertificateMaterial {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly context: SecureContext;
  /** Names it is chosen by for SNI: configured, or the certificate's DNS names (none: the default). */
  readonly names: readonly string[];
  readonly notAfter: Date;
}

/** Why a pair cannot be served: the pair itself, or the names it would be chosen by. */
export interface MaterialProblem {
  readonly problem: string;
  readonly field: 'pair' | 'names';
}

export type MaterialResult = CertificateMaterial | MaterialProblem;

/** The reason of an OpenSSL error without its `error:0A00...:SSL routines::` prefix. */
export function opensslReason(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.replace(/^error:[0-9A-Fa-f]+:[^:]*:[^:]*:/, '').trim() || message;
}

/** The options of `createSecureContext` and the server for `settings`. */
export function contextOptions(settings: TlsSettings): { minVersion: SecureVersion; ciphers?: string } {
  return settings.ciphers === undefined
    ? { minVersion: settings.minVersion }
    : { minVersion: settings.minVersion, ciphers: settings.ciphers };
}

/**
 * The DNS names a certificate is for: its subjectAltName DNS entries, or its subject's CN when it
 * has none (IP entries are left out: SNI never carries an address).
 */
export function certificateNames(certificate: X509Certificate): string[] {
  const fromSan = (certificate.subjectAltName ?? '')
    .split(', ')
    .filter((entry) => entry.startsWith('DNS:'))
    .map((entry) => entry.slice(4).toLowerCase());
  const names = fromSan.length > 0 ? fromSan : commonNames(certificate.subject);
  return [...new Set(names.filter((name) => SNI_NAME.test(name)))];
}

function commonNames(subject: string): string[] {
  return subject
    .split('\n')
    .filter((line) => line.startsWith('CN='))
    .map((line) => line.slice(3).toLowerCase());
}

function parsed<T>(make: () => T): T | undefined {
  try {
    return make();
  } catch {
    return undefined;
  }
}

/**
 * Checks a pair and builds what serving it needs. `names`: the SNI names configured for it, or
 * `certificate` for the certificate's own (which must then have one); `[]` for the default pair.
 */
export function loadMaterial(
  cert: Buffer,
  key: Buffer,
  names: readonly string[] | 'certificate',
  settings: TlsSettings,
): MaterialResult {
  const certificate = parsed(() => new X509Certificate(cert));
  if (certificate === undefined)
    return { field: 'pair', problem: 'no PEM certificate in the certificate file' };
  const privateKey: KeyObject | undefined = parsed(() => createPrivateKey(key));
  if (privateKey === undefined) return { field: 'pair', problem: 'no PEM private key in the key file' };
  let context: SecureContext;
  try {
    context = createSecureContext({ cert, key, ...contextOptions(settings) });
  } catch (error) {
    return { field: 'pair', problem: opensslReason(error) };
  }
  // OpenSSL checks this too; a pair is never served on its word alone.
  if (!certificate.checkPrivateKey(privateKey)) {
    return { field: 'pair', problem: "the key is not the certificate's (its public key differs)" };
  }
  const served = names === 'certificate' ? certificateNames(certificate) : names;
  if (names === 'certificate' && served.length === 0) {
    return {
      field: 'names',
      problem: 'the certificate names no DNS name (subjectAltName or CN): list its names',
    };
  }
  return { cert, key, context, names: served, notAfter: certificate.validToDate };
}
