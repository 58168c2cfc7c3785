/**
 * Gathers, read by read, the compressed payload a relay's inflater must count: one job per
 * message per read, with where that message's bytes begin in the read (the cut, a frame start)
 * or none when the read began in the middle of one of its frames. The relay feeds it from the
 * scanner's events and takes the jobs after each scan.
 */
import type { InflateCounter, InflateJob } from './inflate-counter.ts';

/** The jobs of one read, with the cut of each (undefined: the message was mid-frame). */
export interface ReadJobs {
  readonly list: readonly InflateJob[];
  readonly cuts: readonly (number | undefined)[];
}

export class InflateWatch {
  readonly counter: InflateCounter;
  readonly #jobs: InflateJob[] = [];
  readonly #cuts: (number | undefined)[] = [];
  /** The job of the compressed message in progress in this read. */
  #current: InflateJob | undefined;

  constructor(counter: InflateCounter) {
    this.counter = counter;
  }

  /** A read begins; a message in progress gets a new job for it. */
  startRead(): void {
    this.#jobs.length = 0;
    this.#cuts.length = 0;
    this.#current = undefined;
  }

  /** A frame of a compressed message begins at `cut` (held + chunk terms) in this read. */
  onFrame(cut: number): void {
    if (this.#current === undefined) this.#open(cut);
  }

  /** Unmasked compressed payload of the message in progress; `endsMessage` on its last bytes. */
  onPayload(segment: Buffer, endsMessage: boolean): void {
    const job = this.#current ?? this.#open(undefined);
    job.segments.push(segment);
    if (!endsMessage) return;
    job.endsMessage = true;
    this.#current = undefined;
  }

  /** The jobs of this read, or undefined when it had no compressed payload. */
  takeJobs(): ReadJobs | undefined {
    if (this.#jobs.length === 0) return undefined;
    return { list: [...this.#jobs], cuts: [...this.#cuts] };
  }

  #open(cut: number | undefined): InflateJob {
    const job: InflateJob = { segments: [], endsMessage: false };
    this.#jobs.push(job);
    this.#cuts.push(cut);
    this.#current = job;
    return job;
  }
}
