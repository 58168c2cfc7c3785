/**
 * What an open tunnel keeps alive: the upgrade request (its headers, the pipeline's context, the
 * snapshot it was decided under) is dropped once the 101 is sent, so an idle connection costs
 * its sockets and its tunnel, not its handshake. Checked with the garbage collector on a real
 * tunnel that is still open, also while every listener the handshake added to a socket is held
 * (as a listener list that died in the old generation holds them until a full collection).
 */
import assert from 'node:assert/strict';
import { Socket } from 'node:net';
import { test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { IncomingHead } from '../../src/protocol/incoming-head.ts';
import { UpgradeHandler } from '../../src/upgrade/upgrade-handler.ts';
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

/**
 * Records every upgrade request the gateways in this process take, as their upgrade handler gets
 * it (read on the raw socket or by Node's parser).
 */
function recordUpgrades(): { requests: WeakRef<IncomingHead>[]; stop: () => void } {
  const requests: WeakRef<IncomingHead>[] = [];
  const handle = UpgradeHandler.prototype.handle;
  UpgradeHandler.prototype.handle = function (
    this: UpgradeHandler,
    ...args: Parameters<typeof handle>
  ): void {
    requests.push(new WeakRef(args[0]));
    Reflect.apply(handle, this, args);
  };
  return {
    requests,
    stop: () => {
      UpgradeHandler.prototype.handle = handle;
    },
  };
}

/** The gateway's upgrade request for `url`. */
function gatewayRequest(requests: readonly WeakRef<IncomingHead>[], url: string): WeakRef<IncomingHead> {
  const atGateway = requests.filter((ref) => ref.deref()?.url === url);
  assert.equal(atGateway.length, 1, 'the gateway received one upgrade');
  return atGateway[0] as WeakRef<IncomingHead>;
}

test('regression: an open tunnel kept its upgrade request alive through the error listener', async (t) => {
  const backend = await startEchoBackend(t);
  const upgrades = recordUpgrades();
  t.after(upgrades.stop);
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
  upgrades.stop();
  const request = gatewayRequest(upgrades.requests, '/chat?room=1');
  assert.equal(gw.gateway.registry.tunnelCount, 1, 'the tunnel is open');
  assert.ok(await collected(request), 'the upgrade request was collected');
  assert.equal(gw.gateway.registry.tunnelCount, 1, 'the tunnel is still open');
  const again = nextMessage(ws);
  ws.send('still there');
  assert.equal((await again).data.toString(), 'still there');
});

test('regression: the listeners of a settled upgrade kept the whole handshake reachable', async (t) => {
  const backend = await startEchoBackend(t);
  const upgrades = recordUpgrades();
  // Every listener the gateway adds to a socket during the handshake, held on to as a listener
  // list that died in the old generation is until a full collection: what they reach must not
  // include the handshake once it is settled.
  const held: unknown[] = [];
  const on = Socket.prototype.on;
  Socket.prototype.on = function (
    this: Socket,
    event: string | symbol,
    listener: (...args: never[]) => void,
  ) {
    // The gateway's own handshake listeners (the first-request reader's, the upgrade handler's
    // and the backend attempt's).
    const stack = new Error().stack ?? '';
    if (/\/src\/(upgrade|upstream|listener)\//.test(stack)) held.push(listener);
    return Reflect.apply(on, this, [event, listener]) as Socket;
  };
  const restore = (): void => {
    upgrades.stop();
    Socket.prototype.on = on;
  };
  t.after(restore);
  const gw = await startGateway(t, {
    routes: { echo: { pool: 'echo' } },
    pools: { echo: { backends: [backend.url] } },
  });
  const ws = await openClient(gw.wsUrl('/held?room=2'));
  t.after(() => ws.terminate());
  const reply = nextMessage(ws);
  ws.send('hello');
  assert.equal((await reply).data.toString(), 'hello');
  restore();
  const request = gatewayRequest(upgrades.requests, '/held?room=2');
  assert.ok(held.length > 0, 'listeners were recorded');
  assert.ok(
    await collected(request),
    'the upgrade request was collected while every listener of the handshake is still held',
  );
});
