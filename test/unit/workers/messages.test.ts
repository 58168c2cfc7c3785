/**
 * Sending to a worker: a message to one that has just died is reported as undelivered, never
 * raised as an unhandled error event (which ended the supervisor with EPIPE).
 */
import assert from 'node:assert/strict';
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { sendMessage } from '../../../src/workers/messages.ts';

/** Blocks until process `pid` has exited (a zombie or gone), without turning the event loop. */
function waitDeadSync(pid: number, limitMs: number): void {
  const until = Date.now() + limitMs;
  const pause = new Int32Array(new SharedArrayBuffer(4));
  while (Date.now() < until) {
    let state = 'gone';
    try {
      state = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0] ?? 'gone';
    } catch {
      // no /proc entry: gone
    }
    if (state === 'Z' || state === 'gone') return;
    Atomics.wait(pause, 0, 0, 5);
  }
  throw new Error(`process ${pid} did not exit within ${limitMs} ms`);
}

test('regression: a message to a worker that has just exited is reported undelivered, not raised as EPIPE', {
  skip: process.platform !== 'linux' ? 'reads /proc' : false,
}, async () => {
  const child = fork('-e', ['setInterval(() => {}, 1000); process.send("ready")'], { stdio: 'ignore' });
  await once(child, 'message');
  assert.ok(child.pid !== undefined);
  const exited = once(child, 'exit');
  child.kill('SIGKILL');
  // The parent has not yet seen the channel close: the child still looks connected.
  waitDeadSync(child.pid, 5_000);
  assert.equal(child.connected, true);
  const errors: Error[] = [];
  child.on('error', (error) => errors.push(error));
  // The first write to a dead peer's pipe may still be taken by the kernel: send until one fails.
  let undelivered: Error | undefined;
  for (let attempt = 0; attempt < 50 && undelivered === undefined; attempt++) {
    sendMessage(child, { kind: 'shutdown', immediate: true }, (error) => {
      undelivered ??= error;
    });
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  assert.ok(undelivered instanceof Error, 'the failed send is reported to the caller');
  assert.deepEqual(errors, [], 'and never as an error event');
  await exited;
});
