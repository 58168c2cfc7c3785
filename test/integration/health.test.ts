/**
 * Health checks on real sockets, with the gateway's clock faked so that intervals and ejections
 * pass without waiting (the checks themselves are real HTTP requests and TCP connects): a backend
 * failing its active check stops getting new requests once `unhealthyAfter` checks failed and
 * gets them again after `healthyAfter` passed; passive ejection after consecutive refused
 * connects, capped by `maxEjectedShare`, over after `ejectFor`; `/readyz` with
 * `readiness: healthyBackends` follows whether every route has a backend that is up.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type TestContext, test } from 'node:test';
import { refusingUrl, refusingUrls } from '../helpers/backends.ts';
import { plainGet } from '../helpers/clients.ts';
import { eventually } from '../helpers/eventually.ts';
import { FakeClock } from '../helpers/fake-clock.ts';
import { startGateway, type TestGateway } from '../helpers/gateway.ts';

interface CheckedBackend {
  readonly url: string;
  /** Status its health endpoint answers from now on. */
  health: number;
  /** Plain requests it served, health checks left out. */
  served: number;
}

async function checkedBackend(t: TestContext, name: string): Promise<CheckedBackend> {
  const state = { url: '', health: 200, served: 0 };
  const server: Server = createServer((req, res) => {
    if (req.url === '/healthz') {
      res.writeHead(state.health).end();
      return;
    }
    state.served++;
    res.end(name);
  });
  await new Promise<void>((listening) => server.listen(0, '127.0.0.1', listening));
  t.after(
    () =>
      new Promise<void>((closed) => {
        server.closeAllConnections();
        server.close(() => closed());
      }),
  );
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return state;
}

/** Moves time one interval on, and waits for that round of checks to be counted. */
async function checkRound(gw: TestGateway, clock: FakeClock, rounds: number): Promise<void> {
  clock.advance(1_100);
  await eventually(
    async () => (await gw.metric('wsgate_health_checks_total')) >= rounds * 2,
    `check round ${rounds}`,
  );
}

test('a backend failing its active check stops getting requests, and gets them again once it passes', async (t) => {
  const clock = new FakeClock();
  const a = await checkedBackend(t, 'a');
  const b = await checkedBackend(t, 'b');
  const gw = await startGateway(
    t,
    {
      admin: { readiness: 'healthyBackends' },
      routes: { app: { pool: 'app' } },
      pools: {
        app: {
          backends: [a.url, b.url],
          health: { active: { path: '/healthz', interval: '1s', unhealthyAfter: 2, healthyAfter: 2 } },
        },
      },
    },
    { clock },
  );
  const served = async (count: number) => {
    const bodies = [];
    for (let i = 0; i < count; i++) bodies.push((await plainGet(gw.port(), '/poll')).body);
    return bodies;
  };
  assert.deepEqual(new Set(await served(4)), new Set(['a', 'b']), 'both serve while healthy');
  a.health = 503;
  await checkRound(gw, clock, 1);
  assert.equal(await gw.metric('wsgate_backend_up', { backend: a.url }), 1, 'one failed check is not enough');
  await checkRound(gw, clock, 2);
  assert.equal(await gw.metric('wsgate_backend_up', { backend: a.url }), 0, 'down after two');
  assert.deepEqual(new Set(await served(6)), new Set(['b']), 'only the healthy backend gets requests');
  assert.equal(await gw.metric('wsgate_health_checks_total', { backend: a.url, result: 'failed' }), 2);
  a.health = 200;
  await checkRound(gw, clock, 3);
  await checkRound(gw, clock, 4);
  assert.equal(
    await gw.metric('wsgate_backend_up', { backend: a.url }),
    1,
    'back up after two passed checks',
  );
  assert.deepEqual(new Set(await served(4)), new Set(['a', 'b']));
  // Readiness with healthyBackends: every backend down makes the gateway unready.
  a.health = 500;
  b.health = 500;
  assert.equal((await plainGet(gw.adminPort(), '/readyz')).status, 200);
  await checkRound(gw, clock, 5);
  await checkRound(gw, clock, 6);
  assert.equal((await plainGet(gw.adminPort(), '/readyz')).status, 503, 'no backend up: not ready');
});

test('passive ejection after consecutive refused connects, at most maxEjectedShare of the pool, over after ejectFor', async (t) => {
  const clock = new FakeClock();
  const live = await checkedBackend(t, 'live');
  const [deadOne = '', deadTwo = ''] = await refusingUrls(2);
  const gw = await startGateway(
    t,
    {
      routes: { app: { pool: 'app' } },
      pools: {
        app: {
          backends: [deadOne, deadTwo, live.url],
          retries: 2,
          health: { passive: { failures: 2, ejectFor: '30s', maxEjectedShare: 0.4 } },
        },
      },
    },
    { clock },
  );
  for (let i = 0; i < 9; i++)
    assert.equal((await plainGet(gw.port(), '/poll')).body, 'live', 'retries reach the live one');
  assert.equal(
    await gw.metric('wsgate_backend_ejections_total'),
    1,
    'one ejection: 40 % of three backends is one',
  );
  const ejected = (await gw.metric('wsgate_backend_up', { backend: deadOne })) === 0 ? deadOne : deadTwo;
  assert.equal(await gw.metric('wsgate_backend_up', { backend: ejected }), 0);
  const failuresBefore = await gw.metric('wsgate_upstream_connect_failures_total', { backend: ejected });
  for (let i = 0; i < 6; i++) await plainGet(gw.port(), '/poll');
  assert.equal(
    await gw.metric('wsgate_upstream_connect_failures_total', { backend: ejected }),
    failuresBefore,
    'an ejected backend is not tried',
  );
  clock.advance(30_000);
  assert.equal(await gw.metric('wsgate_backend_up', { backend: ejected }), 1, 'the ejection is over');
});

test('a TCP check takes a backend that stops listening down, and the pool keeps serving from the others', async (t) => {
  const clock = new FakeClock();
  const a = await checkedBackend(t, 'a');
  const b = await checkedBackend(t, 'b');
  const gone = await refusingUrl();
  const gw = await startGateway(
    t,
    {
      routes: { app: { pool: 'app' } },
      pools: {
        app: {
          backends: [a.url, b.url, gone],
          retries: 0,
          health: { active: { type: 'tcp', interval: '1s', unhealthyAfter: 1, healthyAfter: 1 } },
        },
      },
    },
    { clock },
  );
  clock.advance(1_100);
  await eventually(async () => (await gw.metric('wsgate_health_checks_total')) >= 3, 'a round of TCP checks');
  assert.equal(await gw.metric('wsgate_backend_up', { backend: gone }), 0);
  assert.equal(await gw.metric('wsgate_backend_up', { backend: a.url }), 1);
  // With no retries, a request sent to the dead backend would fail: none is.
  for (let i = 0; i < 9; i++) assert.equal((await plainGet(gw.port(), '/poll')).status, 200);
});
