/**
 * The certificates of one TLS listener: the default pair (`tls.cert`, `tls.key`) and the pairs
 * chosen by SNI (`tls.certificates`), each with its SecureContext built once, and the server
 * options that serve them (ALPN `http/1.1`, the protocol floor, the ciphers, the SNI callback).
 *
 * When their files change on disk (a Kubernetes secret's `..data` symlink swap, a file written in
 * place), both files of each pair are read again and checked as at start; a pair that passes is
 * served to new connections (the default through `server.setSecureContext`, an SNI pair by a new
 * table), while live connections keep the one they began with. A pair that fails (unreadable,
 * unparsable, a key that is not the certificate's) is refused with a warning naming its files and
 * the previous pair stays in use; the same refused bytes are not reported again at every poll.
 */
import { createHash } from 'node:crypto';
import type { SecureContext, TlsOptions, Server as TlsServer } from 'node:tls';
import type { ListenerConfig, PemFile } from '../config/schema.ts';
import { readKeyFile } from '../keys/key-files.ts';
import {
  type CertificateMaterial,
  contextOptions,
  loadMaterial,
  type TlsSettings,
} from '../keys/tls-material.ts';
import type { Logger } from '../observability/logger.ts';
import { SniTable } from '../protocol/sni.ts';
import { type FileWatch, watchFiles } from './file-watch.ts';

export type ListenerTlsConfig = NonNullable<ListenerConfig['tls']>;
export type ReloadResult = 'reloaded' | 'refused';

/** Where reloads and expiry times are reported (the metrics). */
export interface CertificateObserver {
  reload(certificate: string, result: ReloadResult): void;
  expiry(certificate: string, notAfter: Date): void;
}

/** The protocols offered in ALPN: the gateway speaks HTTP/1.1 (and WebSocket over it) only. */
export const ALPN_PROTOCOLS: readonly string[] = Object.freeze(['http/1.1']);
/** Wait after a change is seen, for the rest of a burst of writes. */
const DEBOUNCE_MS = 100;

interface Slot {
  /** `default`, or the first name of an SNI pair: its label in metrics and logs. */
  readonly label: string;
  readonly certPath: string;
  readonly keyPath: string;
  readonly names: readonly string[] | 'certificate';
  material: CertificateMaterial;
  /** What the last refusal was about (read error or bytes), not to report it twice. */
  refusal: string | undefined;
  /** A read of the files that has not finished (a hung mount): no second one is started. */
  reading: Promise<[Buffer, Buffer]> | undefined;
}

/** Longest wait for one pair's files; past it the check goes on and the read is left to finish. */
const READ_TIMEOUT_MS = 5_000;

export class ListenerCertificates {
  readonly #listener: string;
  readonly #settings: TlsSettings;
  readonly #reloadCheckInterval: number;
  readonly #log: Logger;
  readonly #observer: CertificateObserver;
  readonly #slots: Slot[];
  #sni: SniTable<SecureContext>;
  #server: TlsServer | undefined;
  #watch: FileWatch | undefined;
  #checking = false;
  #again = false;

  constructor(listener: string, tls: ListenerTlsConfig, log: Logger, observer: CertificateObserver) {
    this.#listener = listener;
    this.#settings = { minVersion: tls.minVersion, ciphers: tls.ciphers };
    this.#reloadCheckInterval = tls.reloadCheckInterval;
    this.#log = log;
    this.#observer = observer;
    type Pair = { readonly cert: PemFile; readonly key: PemFile; readonly names: Slot['names'] };
    const pairs: Pair[] = [
      { cert: tls.cert, key: tls.key, names: [] },
      ...tls.certificates.map((entry): Pair => ({ ...entry, names: entry.names ?? 'certificate' })),
    ];
    this.#slots = pairs.map((pair, index) => {
      const material = loadMaterial(pair.cert.pem, pair.key.pem, pair.names, this.#settings);
      // The loader ran these checks already: failing here is a bug, not a configuration problem.
      if ('problem' in material) throw new Error(`listener "${listener}": ${material.problem}`);
      const label = index === 0 ? 'default' : (material.names[0] ?? String(index));
      return {
        label,
        certPath: pair.cert.path,
        keyPath: pair.key.path,
        names: pair.names,
        material,
        refusal: undefined,
        reading: undefined,
      };
    });
    this.#sni = this.#table();
  }

  /** The TLS options of a new server for these certificates (its SNI callback is the listener's). */
  serverOptions(): TlsOptions {
    const fallback = this.#slots[0]?.material;
    return {
      ...contextOptions(this.#settings),
      cert: fallback?.cert,
      key: fallback?.key,
      ALPNProtocols: [...ALPN_PROTOCOLS],
    };
  }

  /** The context of an SNI pair for `serverName`; undefined: the server's default (the current one). */
  sniContext(serverName: string): SecureContext | undefined {
    return this.#sni.lookup(serverName);
  }

  /**
   * Serves these certificates on `server`, which listens already with others (a reloaded
   * configuration): new connections get them, live ones keep theirs. Then starts watching.
   */
  takeOver(server: TlsServer): void {
    const fallback = this.#slots[0]?.material;
    if (fallback) {
      server.setSecureContext({ cert: fallback.cert, key: fallback.key, ...contextOptions(this.#settings) });
    }
    this.start(server);
  }

  /** Starts watching the files for `server` (once it listens); reports the expiry times. */
  start(server: TlsServer): void {
    this.#server = server;
    for (const slot of this.#slots) this.#observer.expiry(slot.label, slot.material.notAfter);
    const paths = this.#slots.flatMap((slot) => [slot.certPath, slot.keyPath]);
    this.#watch = watchFiles(paths, {
      intervalMs: this.#reloadCheckInterval,
      debounceMs: DEBOUNCE_MS,
      onChange: () => {
        this.check().catch((error: unknown) =>
          this.#log.error({ listener: this.#listener, err: error }, 'TLS certificate check failed'),
        );
      },
      onWatchError: (directory, error) =>
        this.#log.info(
          { listener: this.#listener, directory, err: error.message },
          'cannot watch a certificate directory; polling it',
        ),
    });
  }

  /** Stops watching; safe to call twice. */
  close(): void {
    this.#watch?.close();
    this.#watch = undefined;
    this.#server = undefined;
  }

  /** Reads every pair again and serves those that changed and pass; one check at a time. */
  async check(): Promise<void> {
    if (this.#checking) {
      this.#again = true;
      return;
    }
    this.#checking = true;
    try {
      do {
        this.#again = false;
        for (const slot of this.#slots) await this.#checkSlot(slot);
      } while (this.#again && this.#server !== undefined);
    } finally {
      this.#checking = false;
    }
  }

  /**
   * Both files of `slot`, or an error with a code. A read that hangs (a hung network mount) is
   * given up on after READ_TIMEOUT_MS, so the other pairs are still checked, and is not started
   * again while it hangs, so hung reads cannot take every thread of the file system pool.
   */
  #read(slot: Slot): Promise<[Buffer, Buffer]> {
    if (slot.reading !== undefined)
      return Promise.reject(Object.assign(new Error('busy'), { code: 'EBUSY' }));
    const reading = Promise.all([readKeyFile(slot.certPath), readKeyFile(slot.keyPath)]);
    slot.reading = reading;
    const done = (): void => {
      if (slot.reading === reading) slot.reading = undefined;
    };
    reading.then(done, done);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(
        () => reject(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })),
        READ_TIMEOUT_MS,
      );
      timer.unref();
    });
    return Promise.race([reading, timeout]).finally(() => clearTimeout(timer));
  }

  async #checkSlot(slot: Slot): Promise<void> {
    let cert: Buffer;
    let key: Buffer;
    try {
      [cert, key] = await this.#read(slot);
    } catch (error) {
      const code = error instanceof Error && 'code' in error ? String(error.code) : 'unreadable';
      this.#refuse(slot, `read:${code}`, `cannot read the files (${code})`);
      return;
    }
    const server = this.#server;
    if (server === undefined) return; // closed meanwhile
    if (cert.equals(slot.material.cert) && key.equals(slot.material.key)) {
      slot.refusal = undefined;
      return;
    }
    const material = loadMaterial(cert, key, slot.names, this.#settings);
    if ('problem' in material) {
      const digest = createHash('sha256').update(cert).update('\0').update(key).digest('hex');
      this.#refuse(slot, digest, material.problem);
      return;
    }
    slot.material = material;
    slot.refusal = undefined;
    if (slot === this.#slots[0]) server.setSecureContext({ cert, key, ...contextOptions(this.#settings) });
    else this.#sni = this.#table();
    this.#observer.reload(slot.label, 'reloaded');
    this.#observer.expiry(slot.label, material.notAfter);
    this.#log.info(
      {
        listener: this.#listener,
        certificate: slot.label,
        cert: slot.certPath,
        key: slot.keyPath,
        names: material.names,
        notAfter: material.notAfter.toISOString(),
      },
      'TLS certificate reloaded',
    );
  }

  #refuse(slot: Slot, refusal: string, problem: string): void {
    if (this.#server === undefined || slot.refusal === refusal) return;
    slot.refusal = refusal;
    this.#observer.reload(slot.label, 'refused');
    this.#log.warn(
      { listener: this.#listener, certificate: slot.label, cert: slot.certPath, key: slot.keyPath, problem },
      'TLS certificate reload refused; the previous certificate stays in use',
    );
  }

  #table(): SniTable<SecureContext> {
    return new SniTable(
      this.#slots.slice(1).map((slot) => ({ names: slot.material.names, value: slot.material.context })),
    );
  }
}
