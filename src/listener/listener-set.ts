/**
 * The gateway's listeners by name, kept across configurations. Applying a configuration opens the
 * listeners it adds, closes those it drops, changes in place those it changes in place (timeouts,
 * header size, certificates: `takesInPlace`), and replaces the others (a new address, TLS turned on
 * or off, PROXY protocol): a new address is bound before the old one is let go; on the same address
 * and port the old server stops accepting first, so new connections are refused for that instant.
 * A listener that is closed stops accepting; its open connections (WebSockets, requests in flight)
 * go on, and are cut only at shutdown. Listeners untouched by a change never notice it.
 */
import type { AddressInfo } from 'node:net';
import type { ListenerConfig } from '../config/schema.ts';
import type { Logger } from '../observability/logger.ts';
import type { GatewayMetrics } from '../observability/metrics.ts';
import { Listener, type ListenerHandlers, takesInPlace } from './listener.ts';

/** What applying a configuration did, by listener name. */
export interface ListenerChanges {
  readonly opened: readonly string[];
  readonly closed: readonly string[];
  readonly changed: readonly string[];
  readonly replaced: readonly string[];
}

const same = (a: ListenerConfig, b: ListenerConfig): boolean => JSON.stringify(a) === JSON.stringify(b);

export class ListenerSet {
  readonly #handlers: ListenerHandlers;
  readonly #log: Logger;
  readonly #metrics: GatewayMetrics;
  readonly #live = new Map<string, Listener>();
  readonly #bound = new Map<string, AddressInfo>();
  /** Listeners closed by a reload whose connections are still open: shutdown cuts them. */
  readonly #closing = new Set<Listener>();
  /** Each listener binds its own socket with SO_REUSEPORT (a worker of a `reusePort` fleet). */
  readonly #reusePort: boolean;

  constructor(handlers: ListenerHandlers, log: Logger, metrics: GatewayMetrics, reusePort = false) {
    this.#handlers = handlers;
    this.#log = log;
    this.#metrics = metrics;
    this.#reusePort = reusePort;
  }

  /** Bound addresses by listener name. */
  addresses(): Readonly<Record<string, AddressInfo>> {
    return Object.fromEntries(this.#bound);
  }

  /**
   * Brings the listeners to `configs`. Listeners on new addresses are bound first: when one cannot
   * bind, those just bound are closed again and the error is thrown with nothing else changed.
   */
  async apply(configs: Readonly<Record<string, ListenerConfig>>): Promise<ListenerChanges> {
    const fresh: Listener[] = [];
    const samePort: [Listener, Listener][] = [];
    const inPlace: [Listener, ListenerConfig][] = [];
    for (const [name, config] of Object.entries(configs)) {
      const current = this.#live.get(name);
      if (current && same(current.config, config)) continue;
      if (current && takesInPlace(current.config, config)) {
        inPlace.push([current, config]);
        continue;
      }
      const next = new Listener(name, config, this.#handlers, this.#log, this.#metrics);
      // The same port as configured, or as bound (a listener on port 0 given its bound port).
      const occupied =
        current !== undefined &&
        current.config.address === config.address &&
        (current.config.port === config.port || this.#bound.get(name)?.port === config.port);
      if (occupied) samePort.push([current, next]);
      else fresh.push(next);
    }
    const bound: [Listener, AddressInfo][] = [];
    try {
      for (const listener of fresh) bound.push([listener, await this.#listen(listener)]);
    } catch (error) {
      // Let go of those just bound, and of any connection they took meanwhile, without waiting.
      for (const [listener] of bound) {
        void listener.stopAccepting();
        listener.closeAllConnections();
      }
      throw error;
    }
    const dropped = [...this.#live.values()].filter((listener) => !Object.hasOwn(configs, listener.name));
    const replacedOld = fresh.flatMap((next) => this.#live.get(next.name) ?? []);
    for (const [listener, address] of bound) this.#take(listener, address);
    for (const [listener, config] of inPlace) listener.reconfigure(config);
    for (const listener of [...dropped, ...replacedOld]) this.#close(listener);
    for (const listener of dropped) {
      this.#live.delete(listener.name);
      this.#bound.delete(listener.name);
    }
    for (const [current, next] of samePort) {
      // The port is let go of at once (open connections go on), and taken again by the new server.
      this.#close(current);
      try {
        this.#take(next, await this.#listen(next));
      } catch (error) {
        // Something else took the port in between: serve it as before if we can; if not, the
        // listener is gone (a later configuration that lists it opens it again).
        this.#closing.delete(current);
        try {
          this.#take(current, await this.#listen(current));
        } catch {
          this.#closing.add(current);
          this.#live.delete(current.name);
          this.#bound.delete(current.name);
        }
        throw error;
      }
    }
    return {
      opened: fresh
        .filter((listener) => !replacedOld.some((old) => old.name === listener.name))
        .map((l) => l.name),
      closed: dropped.map((listener) => listener.name),
      changed: inPlace.map(([listener]) => listener.name),
      replaced: [...replacedOld, ...samePort.map(([current]) => current)].map((listener) => listener.name),
    };
  }

  async #listen(listener: Listener): Promise<AddressInfo> {
    const address = await listener.listen(this.#reusePort);
    this.#log.info(
      { listener: listener.name, address: address.address, port: address.port, tls: !!listener.config.tls },
      'listening',
    );
    return address;
  }

  #take(listener: Listener, address: AddressInfo): void {
    this.#live.set(listener.name, listener);
    this.#bound.set(listener.name, address);
  }

  /** Stops `listener` accepting; it is forgotten once its last connection has closed. */
  #close(listener: Listener): void {
    this.#closing.add(listener);
    this.#log.info({ listener: listener.name }, 'listener closed; its open connections go on');
    void listener.stopAccepting().then(() => this.#closing.delete(listener));
  }

  #all(): Listener[] {
    return [...this.#live.values(), ...this.#closing];
  }

  /** Every listener stops accepting (resolves when their servers have closed). */
  async stopAccepting(): Promise<void> {
    await Promise.all(this.#all().map((listener) => listener.stopAccepting()));
  }

  /** Cuts every connection of every listener, those closed by a reload included. */
  closeAllConnections(): void {
    for (const listener of this.#all()) listener.closeAllConnections();
  }
}
