import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startEchoBackend } from '../helpers/backends.ts';
import { closeOf, nextMessage, openClient } from '../helpers/clients.ts';
import { startGateway } from '../helpers/gateway.ts';

test('a message goes through and comes back', async (t) => {
  const backend = await startEchoBackend(t);
  const gw = await startGateway(t, {
    routes: { echo: { pool: 'echo' } },
    pools: { echo: { backends: [backend.url] } },
  });
  const ws = await openClient(gw.wsUrl('/x'));
  ws.send('hello');
  const reply = await nextMessage(ws);
  assert.equal(reply.data.toString(), 'hello');
  const closed = closeOf(ws);
  ws.close(1000, 'done');
  assert.equal((await closed).code, 1000);
  assert.equal(await gw.metric('wsgate_messages_total', { direction: 'client_to_backend' }), 1);
});
