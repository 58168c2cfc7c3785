/**
 * The checks of listeners' TLS settings that need the platform: each certificate and key pair
 * (the default one and every SNI entry) goes through the very code that serves it and reloads it
 * (src/keys/tls-material.ts), so a file the listener would refuse is refused at load, at its
 * line; a cipher list OpenSSL does not know, and an SNI name claimed by two entries, are refused
 * too.
 */
import { createSecureContext } from 'node:tls';
import { loadMaterial, opensslReason, type TlsSettings } from '../keys/tls-material.ts';
import { normalizeServerName } from '../protocol/sni.ts';
import type { Config } from './schema.ts';
import type { SemanticProblem } from './semantic-problem.ts';

type ListenerTls = NonNullable<Config['listeners'][string]['tls']>;
type Path = readonly (string | number)[];

function checkCiphers(tls: ListenerTls, at: Path, out: SemanticProblem[]): boolean {
  if (tls.ciphers === undefined) return true;
  try {
    createSecureContext({ ciphers: tls.ciphers });
    return true;
  } catch (error) {
    out.push({
      path: [...at, 'ciphers'],
      message: `not a cipher list OpenSSL accepts (${opensslReason(error)})`,
    });
    return false;
  }
}

function checkPairs(tls: ListenerTls, at: Path, out: SemanticProblem[]): void {
  const settings: TlsSettings = { minVersion: tls.minVersion, ciphers: tls.ciphers };
  const fallback = loadMaterial(tls.cert.pem, tls.key.pem, [], settings);
  if ('problem' in fallback) {
    out.push({ path: at, message: `cert and key do not form a usable pair (${fallback.problem})` });
  }
  /** Each SNI name, with the entry that claimed it first. */
  const owners = new Map<string, number>();
  tls.certificates.forEach((entry, index) => {
    const where = [...at, 'certificates', index];
    const material = loadMaterial(entry.cert.pem, entry.key.pem, entry.names ?? 'certificate', settings);
    if ('problem' in material) {
      const message =
        material.field === 'pair'
          ? `cert and key do not form a usable pair (${material.problem})`
          : material.problem;
      out.push({ path: where, message });
      return;
    }
    for (const name of material.names.map(normalizeServerName)) {
      const owner = owners.get(name);
      if (owner === undefined) {
        owners.set(name, index);
        continue;
      }
      out.push({
        path: entry.names ? [...where, 'names'] : where,
        message: `"${name}" is already served by certificates[${owner}]`,
      });
    }
  });
}

/** Problems of the `tls` blocks of every listener. */
export function checkListenerTls(config: Config, out: SemanticProblem[]): void {
  for (const [name, listener] of Object.entries(config.listeners)) {
    if (!listener.tls) continue;
    const at = ['listeners', name, 'tls'];
    if (checkCiphers(listener.tls, at, out)) checkPairs(listener.tls, at, out);
  }
}

/**
 * With `listenerSharing: reusePort` each worker binds its listeners itself: port 0 would give
 * each worker a different port, so the fleet would not share one.
 */
export function checkReusePort(config: Config, out: SemanticProblem[]): void {
  if (config.listenerSharing !== 'reusePort' || config.workers === 1) return;
  for (const [name, listener] of Object.entries(config.listeners)) {
    if (listener.port !== 0) continue;
    out.push({
      path: ['listeners', name, 'port'],
      message:
        'port 0 cannot be shared by workers with listenerSharing: reusePort (each would get its own); give a port',
    });
  }
}
