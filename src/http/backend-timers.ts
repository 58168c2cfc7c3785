/**
 * The two deadlines of one proxied HTTP request, up to the backend's status line and no further:
 * `connectTimeout` until the backend socket is connected (TCP, and TLS for https:// backends,
 * since http-proxy-3's own timer stops at the TCP connect and a silent TLS peer would hang the
 * request), then `responseTimeout` from the moment the request is sent until the response head
 * arrives. The body is never timed: an SSE stream or a long-poll that started its answer flows
 * for as long as it likes. Each timer destroys the backend side with an error whose code says
 * which deadline passed; the request's error path turns it into a 504.
 */
import type { ClientRequest } from 'node:http';
import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';

/** Error code of a connect that did not complete within `connectTimeout`. */
export const CONNECT_TIMEOUT = 'ECONNECT_TIMEOUT';
/** Error code of a backend that did not start its answer within `responseTimeout`. */
export const RESPONSE_TIMEOUT = 'ERESPONSE_TIMEOUT';

function timeoutError(code: string, message: string): NodeJS.ErrnoException {
  const error: NodeJS.ErrnoException = new Error(message);
  error.code = code;
  return error;
}

/**
 * Destroys a new backend socket that is not connected (TCP, and TLS for https://) within
 * `timeoutMs`; the request then fails with ECONNECT_TIMEOUT. A reused keep-alive socket is ready.
 */
export function armConnectTimeout(socket: Socket, timeoutMs: number): void {
  if (!socket.connecting) return;
  const ready = socket instanceof TLSSocket ? 'secureConnect' : 'connect';
  const clear = (): void => {
    clearTimeout(timer);
    socket.off(ready, clear);
    socket.off('close', clear);
  };
  const timer = setTimeout(() => {
    clear();
    socket.destroy(timeoutError(CONNECT_TIMEOUT, `not connected within ${timeoutMs} ms`));
  }, timeoutMs);
  socket.once(ready, clear);
  socket.once('close', clear);
}

/**
 * Destroys `proxyReq` when its response head has not arrived `timeoutMs` after the request was
 * sent in full (its 'finish'); the request then fails with ERESPONSE_TIMEOUT. A backend that
 * answers before the request body is complete is never timed.
 */
export function armResponseTimeout(proxyReq: ClientRequest, timeoutMs: number): void {
  let timer: NodeJS.Timeout | undefined;
  let settled = false;
  const start = (): void => {
    if (settled) return;
    timer = setTimeout(() => {
      settled = true;
      proxyReq.destroy(timeoutError(RESPONSE_TIMEOUT, `no response within ${timeoutMs} ms`));
    }, timeoutMs);
  };
  const settle = (): void => {
    settled = true;
    clearTimeout(timer);
    proxyReq.off('finish', start);
  };
  proxyReq.once('response', settle);
  proxyReq.once('close', settle);
  if (proxyReq.writableFinished) start();
  else proxyReq.once('finish', start);
}
