/**
 * The runtime side of a configured pool: its backends with their connection details, the balancer
 * that orders them for each new connection, and the keep-alive agents used for plain HTTP. A pool
 * is built once per configuration and owns no sockets of its own beyond those agents.
 */
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import type { PoolConfig } from '../config/schema.ts';
import { type Balancer, RoundRobinBalancer } from '../routing/balancer.ts';

export interface Backend {
  /** The backend's origin (`http://host:port`), also its metric label. */
  readonly id: string;
  readonly poolName: string;
  readonly url: URL;
  readonly secure: boolean;
  readonly host: string;
  readonly port: number;
  readonly weight: number;
  /** Tunnels open to this backend now. */
  activeTunnels: number;
}

/** TLS settings used when connecting to https:// backends. */
export interface BackendTls {
  readonly ca: Buffer | undefined;
  readonly servername: string | undefined;
  readonly rejectUnauthorized: boolean;
}

export class Pool {
  readonly name: string;
  readonly config: PoolConfig;
  readonly backends: readonly Backend[];
  readonly tls: BackendTls;
  readonly #balancer: Balancer<Backend>;
  readonly httpAgent: HttpAgent;
  readonly httpsAgent: HttpsAgent;

  constructor(name: string, config: PoolConfig) {
    this.name = name;
    this.config = config;
    this.backends = config.backends.map((backend) => {
      const url = new URL(backend.url);
      const secure = url.protocol === 'https:';
      return {
        id: url.origin,
        poolName: name,
        url,
        secure,
        host: url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname,
        port: url.port ? Number(url.port) : secure ? 443 : 80,
        weight: backend.weight,
        activeTunnels: 0,
      };
    });
    this.tls = {
      ca: config.tls.ca?.pem,
      servername: config.tls.serverName,
      rejectUnauthorized: config.tls.verify,
    };
    this.#balancer = new RoundRobinBalancer(this.backends);
    this.httpAgent = new HttpAgent({ keepAlive: true, maxFreeSockets: 64 });
    this.httpsAgent = new HttpsAgent({
      keepAlive: true,
      maxFreeSockets: 64,
      ...(this.tls.ca ? { ca: this.tls.ca } : {}),
      ...(this.tls.servername ? { servername: this.tls.servername } : {}),
      rejectUnauthorized: this.tls.rejectUnauthorized,
    });
  }

  /** Backends to try for one new connection, best first, at most `1 + retries` of them. */
  candidates(): Backend[] {
    return this.#balancer.candidates().slice(0, 1 + this.config.retries);
  }

  /** Closes the idle keep-alive sockets held for plain HTTP. */
  close(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }
}
