/**
 * What the reload tests share: a pool of echo backends with a short drain, a reload of a test
 * gateway to a partial configuration, an echo round trip on a WebSocket, and a gateway whose one
 * route, /chat, goes to two echo backends.
 */
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import type { WebSocket } from 'ws';
import type { ReloadOutcome } from '../../src/lifecycle.ts';
import { type EchoBackend, startEchoBackend } from './backends.ts';
import { nextMessage } from './clients.ts';
import { startGateway, type TestGateway, testConfig } from './gateway.ts';

/** A pool of `backends` whose removed backends drain for 100 ms. */
export const pool = (backends: readonly EchoBackend[], extra: Record<string, unknown> = {}) => ({
  backends: backends.map((backend) => backend.url),
  drainTimeout: '100ms',
  ...extra,
});

export function reloadTo(
  gw: TestGateway,
  raw: Record<string, unknown>,
  baseDir?: string,
): Promise<ReloadOutcome> {
  return gw.gateway.reload(() => testConfig(raw, baseDir));
}

/** Sends `text` and checks that the same comes back. */
export async function echoes(ws: WebSocket, text: string): Promise<void> {
  const reply = nextMessage(ws);
  ws.send(text);
  assert.equal((await reply).data.toString(), text);
}

/** A gateway with /chat to backends `a` and `b` (closes not spread); `first` is its configuration. */
export async function twoBackendChat(t: TestContext) {
  const [a, b] = [await startEchoBackend(t), await startEchoBackend(t)];
  assert.ok(a && b);
  const first = {
    routes: { chat: { path: '/chat', pool: 'echo' } },
    pools: { echo: pool([a, b]) },
    shutdown: { closeSpread: '0s' },
  };
  return { a, b, first, gw: await startGateway(t, first) };
}
