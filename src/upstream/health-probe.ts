/**
 * One active health check of a backend: an HTTP GET with undici whose status must fall in the
 * expected range (its body is read and dropped), or a TCP connect, each bounded by the check's
 * timeout. Resolves with whether it passed and why not; never rejects.
 */
import { connect as netConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { Agent, request } from 'undici';
import type { ActiveCheck } from '../config/health-schema.ts';
import type { Backend, BackendTls } from './backend.ts';

export type ProbeResult = { readonly ok: true } | { readonly ok: false; readonly reason: string };

/** An undici dispatcher for a pool's checks (TLS settings of its https:// backends, a server name). */
export function probeAgent(tls: BackendTls, servername: string | undefined): Agent {
  return new Agent({
    connect: {
      ...(tls.ca ? { ca: tls.ca } : {}),
      ...(servername ? { servername } : {}),
      rejectUnauthorized: tls.rejectUnauthorized,
    },
    keepAliveTimeout: 1_000,
    pipelining: 0,
  });
}

async function httpProbe(
  backend: Backend,
  check: ActiveCheck,
  agent: Agent,
  signal: AbortSignal,
): Promise<ProbeResult> {
  const bounded = AbortSignal.any([signal, AbortSignal.timeout(check.timeout)]);
  // Appended to the origin, never resolved against it: a path like //host/x stays on the backend.
  const response = await request(`${backend.url.origin}${check.path}`, {
    method: 'GET',
    dispatcher: agent,
    // A discovered backend is reached by address but asked for by the name it was found under.
    headers: { 'user-agent': 'wsgate-health-check', host: backend.authority },
    headersTimeout: check.timeout,
    bodyTimeout: check.timeout,
    signal: bounded,
  });
  response.body.on('error', () => {});
  // The timeout covers the body too: a body that stalls fails the check.
  await response.body.dump({ limit: 64 * 1024, signal: bounded });
  if (bounded.aborted) return { ok: false, reason: 'timeout' };
  const { min, max } = check.expectStatus;
  if (response.statusCode < min || response.statusCode > max) {
    return { ok: false, reason: `status ${response.statusCode}` };
  }
  return { ok: true };
}

function tcpProbe(
  backend: Backend,
  check: ActiveCheck,
  tls: BackendTls,
  signal: AbortSignal,
): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const servername = tls.servername ?? backend.serverName;
    const socket = backend.secure
      ? tlsConnect({
          host: backend.host,
          port: backend.port,
          ...(tls.ca ? { ca: tls.ca } : {}),
          ...(servername ? { servername } : {}),
          rejectUnauthorized: tls.rejectUnauthorized,
        })
      : netConnect({ host: backend.host, port: backend.port });
    const done = (result: ProbeResult): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      socket.destroy();
      resolve(result);
    };
    const onAbort = (): void => done({ ok: false, reason: 'stopped' });
    const timer = setTimeout(() => done({ ok: false, reason: 'timeout' }), check.timeout);
    timer.unref();
    signal.addEventListener('abort', onAbort);
    socket.unref();
    socket.once(backend.secure ? 'secureConnect' : 'connect', () => done({ ok: true }));
    socket.once('error', (error: Error & { code?: string }) =>
      done({ ok: false, reason: error.code ?? error.message }),
    );
  });
}

/** Runs one check of `backend`; `signal` stops it (the gateway is shutting down). */
export async function probe(
  backend: Backend,
  check: ActiveCheck,
  tls: BackendTls,
  agent: Agent,
  signal: AbortSignal,
): Promise<ProbeResult> {
  try {
    return check.type === 'tcp'
      ? await tcpProbe(backend, check, tls, signal)
      : await httpProbe(backend, check, agent, signal);
  } catch (error) {
    if (error instanceof Error && (error.name === 'TimeoutError' || error.name === 'AbortError')) {
      return { ok: false, reason: 'timeout' };
    }
    const code = error instanceof Error && 'code' in error ? String(error.code) : undefined;
    return { ok: false, reason: code ?? (error instanceof Error ? error.name : 'error') };
  }
}
