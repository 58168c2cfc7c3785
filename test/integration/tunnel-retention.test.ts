/**
 * What an open tunnel keeps alive: the upgrade request (its headers, the pipeline's context, the
 * snapshot it was decided under) is dropped once the 101 is sent, so an idle connection costs
 * its sockets and its tunnel, not its handshake. Checked with the garbage collector on a real
 * tunnel that is still open.
 */
import assert from 'node:assert/strict';
import { type IncomingMessage, Server } from 'node:http';
import { test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { startEchoBackend } from '../helpers/backends.ts';
import { nextMessage, openClient } from '../helpers/clients.ts';
import { startGateway } from '../helpers/gateway.ts';

setFlagsFromString('--expose-gc');
const collectGarbage = runInNewContext('gc') as () => void;

/** Collects until `ref` is gone or a few rounds have passed; true when it was collected. */
async function collected(ref: WeakRef<object>): Promise<boolean> {
  for (let round = 0; round < 10 && ref.deref() !== undefined; round++) {
    await new Promise((resolve) => setImmediate(resolve));
    collectGarbage();
  }
  return ref.deref() === undefined;
}

test('regression: an open tunnel kept its upgrade request alive through the error listener', async (t) => {
  const backend = await startEchoBackend(t);
  const requests: WeakRef<IncomingMessage>[] = [];
  // Every 'upgrade' a server emits in this process: the gateway's listener among them.
  const emit = Server.prototype.emit;
  Server.prototype.emit = function (this: Server, event: string | symbol, ...args: unknown[]): boolean {
    if (event === 'upgrade') requests.push(new WeakRef(args[0] as IncomingMessage));
    return Reflect.apply(emit, this, [event, ...args]) as boolean;
  };
  t.after(() => {
    Server.prototype.emit = emit;
  });
  const gw = await startGateway(t, {
    routes: { echo: { pool: 'echo' } },
    pools: { echo: { backends: [backend.url] } },
  });
  const ws = await openClient(gw.wsUrl('/chat?room=1'), undefined, {
    headers: { 'X-Big': 'x'.repeat(4096) },
  });
  t.after(() => ws.terminate());
  const reply = nextMessage(ws);
  ws.send('hello');
  assert.equal((await reply).data.toString(), 'hello');
  Server.prototype.emit = emit;
  // The gateway's upgrade, not the backend's (the echo backend's server emits one too).
  const atGateway = requests.filter(
    (ref) => ref.deref()?.url === '/chat?room=1' && ref.deref()?.headers['x-forwarded-for'] === undefined,
  );
  assert.equal(atGateway.length, 1, 'the gateway received one upgrade');
  assert.equal(gw.gateway.registry.tunnelCount, 1, 'the tunnel is open');
  assert.ok(await collected(atGateway[0] as WeakRef<IncomingMessage>), 'the upgrade request was collected');
  assert.equal(gw.gateway.registry.tunnelCount, 1, 'the tunnel is still open');
  const again = nextMessage(ws);
  ws.send('still there');
  assert.equal((await again).data.toString(), 'still there');
});
