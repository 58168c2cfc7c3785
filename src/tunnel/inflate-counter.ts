/**
 * The inflated size of permessage-deflate messages in one direction (RFC 7692), for the message
 * size limit: a 1 MiB compressed message can inflate to 1 GiB, and that is what the receiver's
 * memory pays for. The compressed payloads go through a streaming raw inflater whose output is
 * counted and thrown away, so memory stays bounded (zlib's window, state and output buffer, about 55 KiB, made
 * on the first compressed message) however large a message inflates. Each message ends with the
 * 0x00 0x00 0xff 0xff tail the sender stripped (§7.2.2); the inflater keeps its window from one
 * message to the next unless the sender negotiated no context takeover (§7.2.3).
 *
 * The work is asynchronous (zlib runs on the thread pool) and comes in jobs, one per message per
 * chunk read, run one after the other; a job's verdict comes when the inflater has taken all its
 * bytes. The moment the count passes the limit the inflater is destroyed, so a bomb costs at most
 * one zlib output step past the limit.
 */
import { constants, createInflateRaw, type InflateRaw } from 'node:zlib';

/** The bytes of one message that arrived in one chunk. */
export interface InflateJob {
  readonly segments: Buffer[];
  /** The chunk holds the end of the message. */
  endsMessage: boolean;
}

/** How a batch of jobs went: all within the limit, over it at job `index`, or not inflatable. */
export type InflateVerdict =
  | { readonly kind: 'ok' }
  | { readonly kind: 'over'; readonly index: number; readonly bytes: number }
  | { readonly kind: 'corrupt'; readonly index: number; readonly detail: string };

const TAIL = Buffer.from([0x00, 0x00, 0xff, 0xff]);
const OK: InflateVerdict = Object.freeze({ kind: 'ok' });

export class InflateCounter {
  readonly #limit: number;
  readonly #resetEachMessage: boolean;
  #inflater: InflateRaw | undefined;
  /** Inflated bytes of the message in progress. */
  #inflated = 0;
  /** Set once a verdict other than ok was given: the counter does nothing more. */
  #done = false;
  /** Where the current batch reports a failure, while one runs. */
  #fail: ((verdict: InflateVerdict) => void) | undefined;

  /** @param limit largest inflated message; @param resetEachMessage the sender has no context takeover. */
  constructor(limit: number, resetEachMessage: boolean) {
    this.#limit = limit;
    this.#resetEachMessage = resetEachMessage;
  }

  /** Inflates the jobs in order and calls `done` once, with the first failure or ok. */
  run(jobs: readonly InflateJob[], done: (verdict: InflateVerdict) => void): void {
    if (this.#done) {
      done(OK);
      return;
    }
    let index = 0;
    let settled = false;
    const finish = (verdict: InflateVerdict): void => {
      if (settled) return;
      settled = true;
      this.#fail = undefined;
      if (verdict.kind !== 'ok') this.#stop();
      done(verdict);
    };
    this.#fail = (verdict) => finish(verdict.kind === 'ok' ? verdict : { ...verdict, index });
    const next = (): void => {
      if (settled) return;
      const job = jobs[index];
      if (job === undefined) {
        finish(OK);
        return;
      }
      // One write per job (a thread-pool round trip each): its bytes, and the tail at the end of a message.
      const parts = job.endsMessage ? [...job.segments, TAIL] : job.segments;
      const input = parts.length === 1 ? parts[0] : Buffer.concat(parts);
      if (input === undefined || input.length === 0) {
        index++;
        next();
        return;
      }
      const inflater = this.#ensureInflater();
      inflater.write(input, () => {
        if (settled || this.#done) return;
        if (job.endsMessage) this.#endMessage();
        index++;
        next();
      });
    };
    next();
  }

  /** Lets go of the inflater (the tunnel ended). */
  close(): void {
    this.#stop();
  }

  #endMessage(): void {
    this.#inflated = 0;
    if (this.#resetEachMessage) this.#inflater?.reset();
  }

  #ensureInflater(): InflateRaw {
    if (this.#inflater) return this.#inflater;
    // Every write is flushed (Z_SYNC_FLUSH), so its output is out when its callback runs.
    const inflater = createInflateRaw({ windowBits: 15, flush: constants.Z_SYNC_FLUSH });
    inflater.on('data', (output: Buffer) => {
      this.#inflated += output.length;
      if (this.#inflated > this.#limit) {
        this.#fail?.({ kind: 'over', index: 0, bytes: this.#inflated });
      }
    });
    inflater.on('error', (error: Error) => {
      this.#fail?.({ kind: 'corrupt', index: 0, detail: error.message });
    });
    // A sender may end a message with a final block (§7.2.3.4); the next one starts a new stream.
    inflater.on('end', () => {
      if (this.#inflater === inflater) this.#inflater = undefined;
    });
    this.#inflater = inflater;
    return inflater;
  }

  #stop(): void {
    this.#done = true;
    this.#inflater?.destroy();
    this.#inflater = undefined;
  }
}
