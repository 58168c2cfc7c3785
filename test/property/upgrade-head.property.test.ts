/**
 * The raw upgrade head parser against Node's own HTTP parser (fast-check): every head it takes as
 * an upgrade, Node's server (with the listener's settings) takes as an upgrade too, with the same
 * method, target, version, headers, raw headers and bytes after the head (heads it leaves to Node
 * are Node's to answer, and only counted, so that both sides are seen). The heads are built from request lines, names, values and line ends
 * near the grammar's edges (odd target characters, control bytes, obs-text, bare LF, repeated and
 * framing headers, Connection lists). Time-boxed.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { type AddressInfo, connect, type Socket } from 'node:net';
import { after, before, it } from 'node:test';
import fc from 'fast-check';
import { readUpgradeHead } from '../../src/listener/upgrade-head.ts';

const TIME_LIMIT_MS = 8_000;
const MAX_HEADER_SIZE = 2_048;

type NodeRead =
  | {
      readonly event: 'upgrade';
      readonly method: string | undefined;
      readonly url: string | undefined;
      readonly httpVersion: string;
      readonly headers: Record<string, unknown>;
      readonly rawHeaders: string[];
      readonly rest: string;
    }
  | { readonly event: 'request' | 'clientError' | 'none' };

let server: Server;
let port = 0;
const waiting: ((read: NodeRead) => void)[] = [];

function settle(read: NodeRead): void {
  waiting.shift()?.(read);
}

before(async () => {
  server = createServer({ maxHeaderSize: MAX_HEADER_SIZE });
  server.on('upgrade', (req: IncomingMessage, socket: Socket, rest: Buffer) => {
    settle({
      event: 'upgrade',
      method: req.method,
      url: req.url,
      httpVersion: req.httpVersion,
      headers: { ...req.headers },
      rawHeaders: req.rawHeaders,
      rest: rest.toString('latin1'),
    });
    socket.destroy();
  });
  server.on('request', (_req, res) => {
    settle({ event: 'request' });
    res.socket?.destroy();
  });
  server.on('clientError', (_error, socket: Socket) => {
    settle({ event: 'clientError' });
    socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});

after(() => server.close());

/** What Node's server makes of `bytes` sent on a fresh connection, one at a time. */
function nodeReads(bytes: Buffer): Promise<NodeRead> {
  return new Promise((resolve) => {
    let done = false;
    const finish = (read: NodeRead): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve(read);
    };
    waiting.push(finish);
    const client = connect(port, '127.0.0.1', () => client.end(bytes));
    client.on('error', () => {});
    client.resume();
    // A head Node is still waiting on (it is incomplete to it too): nothing came.
    const timer = setTimeout(() => {
      waiting.splice(waiting.indexOf(finish), 1);
      client.destroy();
      finish({ event: 'none' });
    }, 1_000);
  });
}

const tchar = fc.constantFrom(
  ..."!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ".split(''),
);
const oddByte = fc.constantFrom(
  '\x00',
  '\x01',
  '\x7f',
  '\x80',
  '\xff',
  '\r',
  '\n',
  '\t',
  ' ',
  '"',
  '<',
  '{',
  '|',
  '\\',
  '^',
  '#',
);
const name = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.constantFrom(
      'Host',
      'Upgrade',
      'Connection',
      'Sec-WebSocket-Key',
      'Sec-WebSocket-Version',
      'Origin',
      'Cookie',
      'Content-Length',
      'Transfer-Encoding',
      'constructor',
      '__proto__',
      'X-Custom',
    ),
  },
  { weight: 2, arbitrary: fc.string({ unit: tchar, minLength: 1, maxLength: 8 }) },
  {
    weight: 1,
    arbitrary: fc
      .tuple(fc.string({ unit: tchar, minLength: 1, maxLength: 4 }), oddByte)
      .map(([a, b]) => a + b),
  },
);
const value = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.constantFrom(
      'websocket',
      'upgrade',
      'Upgrade',
      'keep-alive, Upgrade',
      'upgrade;x',
      'keep-alive',
      '13',
      'localhost',
      'a=b; c=d',
      '',
    ),
  },
  { weight: 2, arbitrary: fc.string({ unit: fc.constantFrom(...'ab ,\t;=/'.split('')), maxLength: 10 }) },
  {
    weight: 1,
    arbitrary: fc
      .tuple(fc.string({ maxLength: 4 }), oddByte, fc.string({ maxLength: 4 }))
      .map((parts) => parts.join('')),
  },
);
const lineEnd = fc.oneof(
  { weight: 12, arbitrary: fc.constant('\r\n') },
  { weight: 1, arbitrary: fc.constantFrom('\n', '\r', ' \r\n') },
);
const requestLine = fc.oneof(
  {
    weight: 6,
    arbitrary: fc
      .string({ unit: fc.constantFrom(...'/abc?=&%20-._~:@!$*+,;'.split('')), maxLength: 12 })
      .map((path) => `GET /${path} HTTP/1.1`),
  },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      'GET / HTTP/1.0',
      'get / HTTP/1.1',
      'POST / HTTP/1.1',
      'GET http://h/ HTTP/1.1',
      'GET  / HTTP/1.1',
      'GET / HTTP/1.1 ',
      'GET * HTTP/1.1',
    ),
  },
  {
    weight: 1,
    arbitrary: fc
      .tuple(fc.string({ unit: fc.constantFrom(...'/ab'.split('')), maxLength: 4 }), oddByte)
      .map(([path, odd]) => `GET /${path}${odd} HTTP/1.1`),
  },
);
const upgradeFields = fc.constant([
  ['Host', 'localhost'],
  ['Upgrade', 'websocket'],
  ['Connection', 'Upgrade'],
]);
const head = fc
  .record({
    line: requestLine,
    base: fc.oneof(upgradeFields, fc.constant([])),
    extra: fc.array(fc.tuple(name, fc.constantFrom(':', ': ', ' :', ':\t'), value, lineEnd), {
      maxLength: 6,
    }),
    at: fc.nat(),
    rest: fc.constantFrom('', 'early bytes', '\x81\x05hello'),
  })
  .map(({ line, base, extra, at, rest }) => {
    const lines = base.map(([n, v]) => `${n}: ${v}\r\n`);
    const extras = extra.map(([n, colon, v, end]) => `${n}${colon}${v}${end}`);
    lines.splice(lines.length === 0 ? 0 : at % (lines.length + 1), 0, ...extras);
    return Buffer.from(`${line}\r\n${lines.join('')}\r\n${rest}`, 'latin1');
  });

it('every head read as an upgrade is an upgrade to Node, read the same way', async () => {
  let upgrades = 0;
  let others = 0;
  await fc.assert(
    fc.asyncProperty(head, async (bytes) => {
      const ours = readUpgradeHead(bytes, MAX_HEADER_SIZE);
      if (ours.kind === 'incomplete') {
        assert.ok(bytes.indexOf('\r\n\r\n') < 0, 'incomplete only without the end of a head');
        return;
      }
      if (ours.kind === 'other') {
        others++;
        return;
      }
      upgrades++;
      const node = await nodeReads(bytes);
      assert.equal(
        node.event,
        'upgrade',
        `Node did not take ${JSON.stringify(bytes.toString('latin1'))} as an upgrade`,
      );
      if (node.event !== 'upgrade') return;
      assert.equal(ours.head.method, node.method);
      assert.equal(ours.head.url, node.url);
      assert.equal(ours.head.httpVersion, node.httpVersion);
      assert.deepEqual({ ...ours.head.headers }, node.headers);
      assert.deepEqual(ours.head.rawHeaders, node.rawHeaders);
      assert.equal(bytes.subarray(ours.length).toString('latin1'), node.rest);
    }),
    { numRuns: 600, plugins: [fc.interruptAfterTimeLimit(TIME_LIMIT_MS)] },
  );
  // The generator must reach both sides, or the property says nothing.
  assert.ok(upgrades >= 20, `only ${upgrades} heads were read as upgrades`);
  assert.ok(others >= 20, `only ${others} heads were left to Node`);
});
