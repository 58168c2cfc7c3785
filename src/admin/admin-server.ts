/**
 * The admin listener, separate from the public ones and on 127.0.0.1 by default: `/metrics` for
 * Prometheus, `/healthz` (the process is alive and serving) and `/readyz` (listeners are bound
 * and the gateway is not draining: what a load balancer or Kubernetes should route on), and
 * `/status` (an HTML page) with `/status.json` (what it draws) for people.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { headersForStatus } from '../errors/codes.ts';
import type { ReloadOutcome } from '../lifecycle.ts';
import { bindError } from '../listener/listener.ts';
import type { Logger } from '../observability/logger.ts';
import { STATUS_PAGE } from './status-page.ts';

export interface AdminServerOptions {
  /** The text exposition (one gateway's, or the sum of every worker's) and its content type. */
  readonly metrics: { render(): Promise<string>; readonly contentType: string };
  readonly log: Logger;
  readonly isReady: () => boolean | Promise<boolean>;
  /** What `/status.json` shows and the `/status` page draws. */
  readonly status: () => unknown;
  /** Reloads the configuration from its file (`POST /reload`, from this machine only). */
  readonly reload?: () => Promise<ReloadOutcome>;
}

/** Whether a peer address is this machine's (IPv4 127/8, IPv6 ::1, or 127/8 mapped into IPv6). */
export function isLoopback(address: string | undefined): boolean {
  if (address === undefined) return false;
  const v4 = address.startsWith('::ffff:') ? address.slice(7) : address;
  return v4.startsWith('127.') || address === '::1';
}

/** `POST /reload`: refused unless from this machine; 200 when in force, 422 when refused. */
async function reloadRequest(
  options: AdminServerOptions,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  if (!isLoopback(req.socket.remoteAddress)) {
    reply(res, 403, 'Forbidden: reloads are accepted from this machine only\n');
    return;
  }
  if (options.reload === undefined) {
    reply(res, 404, 'Not Found\n');
    return;
  }
  const outcome = await options.reload();
  const status = outcome.result === 'ok' || outcome.result === 'unchanged' ? 200 : 422;
  reply(res, status, `${JSON.stringify(outcome, null, 2)}\n`, 'application/json');
}

function reply(
  res: ServerResponse,
  status: number,
  body: string,
  contentType = 'text/plain; charset=utf-8',
): void {
  res.writeHead(status, {
    'content-type': contentType,
    'x-content-type-options': 'nosniff',
    'content-length': Buffer.byteLength(body),
    ...headersForStatus(status),
  });
  res.end(body);
}

/** Creates (but does not bind) the admin HTTP server. */
export function createAdminServer(options: AdminServerOptions): Server {
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/reload') {
      if (req.method === 'POST') {
        await reloadRequest(options, req, res);
        return;
      }
      res.setHeader('allow', 'POST');
      reply(res, 405, 'Method Not Allowed\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      reply(res, 405, 'Method Not Allowed\n');
      return;
    }
    switch (path) {
      case '/metrics':
        reply(res, 200, await options.metrics.render(), options.metrics.contentType);
        return;
      case '/healthz':
        reply(res, 200, 'ok\n');
        return;
      case '/status.json':
        reply(res, 200, `${JSON.stringify(await options.status(), null, 2)}\n`, 'application/json');
        return;
      case '/status':
        res.setHeader(
          'content-security-policy',
          "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'",
        );
        reply(res, 200, STATUS_PAGE, 'text/html; charset=utf-8');
        return;
      case '/readyz':
        if (await options.isReady()) reply(res, 200, 'ready\n');
        else reply(res, 503, 'not ready\n');
        return;
      default:
        reply(res, 404, 'Not Found\n');
    }
  };
  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      options.log.error({ err: error }, 'admin request failed');
      if (!res.headersSent) reply(res, 500, 'Internal Server Error\n');
      else res.destroy();
    });
  });
  server.on('clientError', (_error, socket) => socket.destroy());
  return server;
}

/** The admin server, bound. */
export interface AdminListener {
  address(): AddressInfo;
  /** Closes it, cutting the connections still open (a scrape in flight). */
  close(): Promise<void>;
}

/** Creates and binds the admin server on `address:port`; rejects with an error naming them. */
export function listenAdmin(
  options: AdminServerOptions,
  address: string,
  port: number,
): Promise<AdminListener> {
  const server = createAdminServer(options);
  return new Promise((resolve, reject) => {
    const onError = (error: Error): void => reject(bindError('the admin server', address, port, error));
    server.once('error', onError);
    server.listen({ host: address, port }, () => {
      server.off('error', onError);
      const bound = server.address() as AddressInfo;
      options.log.info({ address: bound.address, port: bound.port }, 'admin listening');
      resolve({
        address: () => bound,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            server.closeAllConnections();
          }),
      });
    });
  });
}
