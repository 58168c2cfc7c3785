/**
 * Backends for tests, on 127.0.0.1 port 0, closed by `t.after`: a `ws` echo server that records
 * every upgrade request it saw (headers included), and a plain HTTP server with a handler of the
 * test's choosing. Each counts TCP connections, so a test can prove a backend was never contacted.
 */
import { createHash } from 'node:crypto';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { createServer } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { TestContext } from 'node:test';
import { type ServerOptions, type WebSocket, WebSocketServer } from 'ws';

export interface EchoBackend {
  readonly url: string;
  readonly port: number;
  readonly server: Server;
  readonly wss: WebSocketServer;
  /** TCP connections accepted, upgrade or not. */
  readonly connections: () => number;
  /** Upgrade requests seen, in order. */
  readonly upgrades: IncomingMessage[];
  /** Server-side sockets of accepted WebSockets, in order. */
  readonly sockets: WebSocket[];
}

export interface EchoOptions {
  /** Extra `ws` server options (handleProtocols, perMessageDeflate, maxPayload, …). */
  readonly ws?: ServerOptions;
  /** Called for each accepted WebSocket instead of the default echo. */
  readonly onConnection?: (socket: WebSocket, req: IncomingMessage) => void;
  /** Answers plain HTTP requests (default: 200 "echo backend"). */
  readonly onRequest?: (req: IncomingMessage, res: ServerResponse) => void;
}

export function listen(server: Server): Promise<number> {
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)),
  );
}

export function closeServer(server: Server, sockets: Set<Socket>): Promise<void> {
  for (const socket of sockets) socket.destroy();
  return new Promise((resolve) => server.close(() => resolve()));
}

export function trackConnections(server: Server): { sockets: Set<Socket>; count: () => number } {
  const sockets = new Set<Socket>();
  let count = 0;
  server.on('connection', (socket: Socket) => {
    count++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  return { sockets, count: () => count };
}

/** A WebSocket echo backend: text stays text, binary stays binary. */
export async function startEchoBackend(t: TestContext, options: EchoOptions = {}): Promise<EchoBackend> {
  const server = createServer(
    options.onRequest ??
      ((_req, res) => {
        res.end('echo backend');
      }),
  );
  const tracked = trackConnections(server);
  const wss = new WebSocketServer({ server, ...options.ws });
  const upgrades: IncomingMessage[] = [];
  const sockets: WebSocket[] = [];
  wss.on('headers', () => {});
  server.prependListener('upgrade', (req: IncomingMessage) => void upgrades.push(req));
  wss.on('connection', (socket, req) => {
    sockets.push(socket);
    socket.on('error', () => {});
    if (options.onConnection) {
      options.onConnection(socket, req);
      return;
    }
    socket.on('message', (data, isBinary) => socket.send(data, { binary: isBinary }));
  });
  const port = await listen(server);
  t.after(async () => {
    for (const socket of wss.clients) socket.terminate();
    wss.close();
    await closeServer(server, tracked.sockets);
  });
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    server,
    wss,
    connections: tracked.count,
    upgrades,
    sockets,
  };
}

export interface HttpBackend {
  readonly url: string;
  readonly port: number;
  readonly server: Server;
  readonly connections: () => number;
  readonly requests: IncomingMessage[];
}

/** A plain HTTP backend; upgrade requests reach `onUpgrade` when given, else `handler` answers them. */
export async function startHttpBackend(
  t: TestContext,
  handler: (req: IncomingMessage, res: ServerResponse) => void,
  onUpgrade?: (req: IncomingMessage, socket: Socket, head: Buffer) => void,
): Promise<HttpBackend> {
  const server = createServer();
  const tracked = trackConnections(server);
  const requests: IncomingMessage[] = [];
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    requests.push(req);
    handler(req, res);
  });
  if (onUpgrade) {
    server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
      requests.push(req);
      socket.on('error', () => {});
      onUpgrade(req, socket, head);
    });
  }
  const port = await listen(server);
  t.after(() => closeServer(server, tracked.sockets));
  return { url: `http://127.0.0.1:${port}`, port, server, connections: tracked.count, requests };
}

/** A port on 127.0.0.1 with nothing listening (bound, then released). */
export async function closedPort(): Promise<number> {
  const server = createServer();
  const port = await listen(server);
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * A backend URL that refuses connections, on a loopback address no test binds (127.0.0.77), so
 * that a parallel test reusing the released port on 127.0.0.1 cannot answer in its place.
 */
export async function refusingUrl(): Promise<string> {
  const [url] = await refusingUrls(1);
  if (url === undefined) throw new Error('no refusing URL');
  return url;
}

/**
 * `count` distinct refusing URLs (see refusingUrl): every port is held until all are chosen, so
 * that two backends of one pool cannot be given the same released port.
 */
export async function refusingUrls(count: number): Promise<string[]> {
  const servers = Array.from({ length: count }, () => createServer());
  const ports = await Promise.all(
    servers.map(
      (server) =>
        new Promise<number>((resolve) =>
          server.listen(0, '127.0.0.77', () => resolve((server.address() as AddressInfo).port)),
        ),
    ),
  );
  await Promise.all(servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
  return ports.map((port) => `http://127.0.0.77:${port}`);
}

/** The 101 response head a raw WebSocket backend writes for `req` (RFC 6455 §4.2.2). */
export function switchingProtocolsHead(req: IncomingMessage): string {
  const accept = createHash('sha1')
    .update(`${req.headers['sec-websocket-key'] ?? ''}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`)
    .digest('base64');
  return `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`;
}
