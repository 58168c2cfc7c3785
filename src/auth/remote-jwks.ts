/**
 * The keys of an identity provider's JWKS URL. Fetched at start and every `refreshInterval` in the
 * background (never on a request's path while keys are known), with a timeout and a size cap, no
 * redirects followed. A token naming a key id the gateway does not know makes it fetch again, at
 * most once per `refreshCooldown` (the provider rotated its keys), and the requests that asked
 * wait for that one fetch together. When a fetch fails, the last keys fetched stay in use, for as
 * long as the provider is down; before any fetch ever succeeded, there are no keys and every token
 * is refused (fail closed, 503). Fetches are counted by result and failures logged.
 */
import { request } from 'undici';
import type { Clock } from '../clock.ts';
import type { JwksKeySet } from '../config/auth-schema.ts';
import { candidatesFor, parseJwks, type VerifyKey } from '../keys/key-material.ts';
import type { Logger } from '../observability/logger.ts';
import type { KeyLookup, KeySet } from './key-lookup.ts';

/** Largest JWKS document read; a provider's is a few KiB. */
const MAX_JWKS_BYTES = 1024 * 1024;

export type FetchResult = 'ok' | 'error';

export interface RemoteJwksOptions {
  readonly name: string;
  readonly config: JwksKeySet;
  readonly clock: Clock;
  readonly log: Logger;
  /** Called after each fetch; `keys` is how many keys are in use afterwards. */
  readonly onFetch: (result: FetchResult, keys: number) => void;
}

/** Reads at most MAX_JWKS_BYTES of `url`'s body as JSON, within `timeoutMs`. */
async function fetchJwks(url: string, timeoutMs: number): Promise<unknown> {
  const signal = AbortSignal.timeout(timeoutMs);
  const response = await request(url, {
    method: 'GET',
    headers: { accept: 'application/jwk-set+json, application/json' },
    signal,
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
  });
  // Destroying a body makes it emit an error: nobody else is listening for it.
  response.body.on('error', () => {});
  if (response.statusCode !== 200) {
    response.body.destroy();
    throw new Error(`answered ${response.statusCode}`);
  }
  const declared = Number(response.headers['content-length'] ?? 0);
  if (declared > MAX_JWKS_BYTES) {
    response.body.destroy();
    throw new Error(`document of ${declared} bytes is over ${MAX_JWKS_BYTES}`);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of response.body) {
    const buffer = chunk as Buffer;
    size += buffer.length;
    if (size > MAX_JWKS_BYTES) {
      response.body.destroy();
      throw new Error(`document is over ${MAX_JWKS_BYTES} bytes`);
    }
    chunks.push(buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new Error('document is not JSON');
  }
}

export class RemoteJwks implements KeySet {
  readonly kind = 'public';
  readonly #options: RemoteJwksOptions;
  #keys: readonly VerifyKey[] | undefined;
  #lastAttemptAt = -Infinity;
  #inFlight: Promise<void> | undefined;
  #stopRefresh: (() => void) | undefined;

  constructor(options: RemoteJwksOptions) {
    this.#options = options;
  }

  /** Fetches the keys now and then every refresh interval. */
  start(): void {
    if (this.#stopRefresh) return;
    void this.#refresh();
    this.#stopRefresh = this.#options.clock.every(this.#options.config.refreshInterval, () => {
      void this.#refresh();
    });
  }

  stop(): void {
    this.#stopRefresh?.();
    this.#stopRefresh = undefined;
  }

  /** How many keys are in use (0 before the first successful fetch). */
  get size(): number {
    return this.#keys?.length ?? 0;
  }

  lookup(kid: string | undefined, alg: string): KeyLookup | Promise<KeyLookup> {
    const keys = this.#keys;
    if (keys !== undefined) {
      const found = candidatesFor(keys, kid, alg);
      const unknownKid = kid !== undefined && !keys.some((entry) => entry.kid === kid);
      if (found.length > 0 || !unknownKid || !this.#mayFetch()) return { keys: found.map((e) => e.key) };
    } else if (this.#inFlight === undefined && !this.#mayFetch()) {
      return 'unavailable';
    }
    return this.#refresh().then(() => {
      if (this.#keys === undefined) return 'unavailable';
      return { keys: candidatesFor(this.#keys, kid, alg).map((entry) => entry.key) };
    });
  }

  #mayFetch(): boolean {
    return this.#options.clock.now() - this.#lastAttemptAt >= this.#options.config.refreshCooldown;
  }

  /** One fetch at a time: whoever asks while one runs waits for it. */
  #refresh(): Promise<void> {
    this.#inFlight ??= this.#fetch().finally(() => {
      this.#inFlight = undefined;
    });
    return this.#inFlight;
  }

  async #fetch(): Promise<void> {
    const { name, config, log, onFetch } = this.#options;
    this.#lastAttemptAt = this.#options.clock.now();
    try {
      const parsed = parseJwks(await fetchJwks(config.url, config.fetchTimeout));
      if ('problem' in parsed) throw new Error(parsed.problem);
      const before = new Set(this.#keys?.map((entry) => entry.kid));
      this.#keys = parsed.keys;
      const kids = parsed.keys.map((entry) => entry.kid ?? '(none)');
      if (kids.some((kid) => !before.has(kid)) || before.size !== kids.length) {
        log.info({ keySet: name, url: config.url, kids, skipped: parsed.skipped }, 'JWKS keys loaded');
      }
      onFetch('ok', parsed.keys.length);
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      log.warn(
        { keySet: name, url: config.url, err: reason, keysInUse: this.size },
        this.#keys === undefined
          ? 'JWKS fetch failed; no keys yet, tokens are refused'
          : 'JWKS fetch failed; the last keys stay in use',
      );
      onFetch('error', this.size);
    }
  }
}
