/**
 * A connection's first head when it takes more than one read: its bytes collected in one buffer
 * that doubles as it fills (a head dribbled a byte at a time holds its bytes, not a buffer object
 * per read), and checked as they come by the rules of upgrade-head.ts, so that a head which can
 * no longer be a plain upgrade (a byte outside the grammar, a bare CR or LF, a request line or a
 * header line that does not fit, too many lines, too many bytes) goes to Node's parser at once
 * and gets its answer then, as it would have, rather than at the head timeout. Each byte is
 * looked at once, however the head is cut.
 */
import { FieldBounds, MAX_FIELDS, readField, requestLineEnd, startsLikeUpgrade } from './upgrade-head.ts';

/** What the bytes so far are: a whole head to read, something for Node, or not enough yet. */
export type HeadProgress =
  | { readonly kind: 'complete' | 'other'; readonly bytes: Buffer }
  | { readonly kind: 'incomplete' };

const INCOMPLETE: HeadProgress = { kind: 'incomplete' };
const CR = 0x0d;
const LF = 0x0a;
const TAB = 0x09;
const FIRST_CAPACITY = 1024;

export class PartialHead {
  readonly #maxHeaderSize: number;
  #buffer: Buffer = Buffer.alloc(0);
  #used = 0;
  /** Where the line being received begins. */
  #lineStart = 0;
  /** Complete lines so far, the request line among them. */
  #lines = 0;
  readonly #field = new FieldBounds();

  constructor(maxHeaderSize: number) {
    this.#maxHeaderSize = maxHeaderSize;
  }

  /** Adds the next read of the connection. */
  add(chunk: Buffer): HeadProgress {
    const from = this.#used;
    this.#append(chunk);
    const buffer = this.#buffer;
    for (let at = from; at < this.#used; at++) {
      const byte = buffer[at] as number;
      const previous = at > 0 ? buffer[at - 1] : undefined;
      if (previous === CR && byte !== LF) return this.#other();
      if (byte === LF) {
        if (previous !== CR) return this.#other();
        const lineEnd = at - 1;
        if (lineEnd === this.#lineStart && this.#lines > 0) return { kind: 'complete', bytes: this.#bytes() };
        // The line's bytes read by the grammar must stop exactly at its CR (read within the bytes
        // received: the buffer's spare capacity past them holds whatever it held).
        const received = this.#bytes();
        const stop =
          this.#lines === 0 ? requestLineEnd(received) : readField(received, this.#lineStart, this.#field);
        if (stop !== lineEnd || this.#lines > MAX_FIELDS) return this.#other();
        this.#lines++;
        this.#lineStart = at + 1;
      } else if ((byte < 0x20 && byte !== TAB && byte !== CR) || byte > 0x7e) {
        return this.#other();
      }
    }
    if (!startsLikeUpgrade(this.#bytes()) || this.#used >= this.#maxHeaderSize) return this.#other();
    return INCOMPLETE;
  }

  #append(chunk: Buffer): void {
    const needed = this.#used + chunk.length;
    if (needed > this.#buffer.length) {
      const grown = Buffer.allocUnsafe(Math.max(needed, FIRST_CAPACITY, this.#buffer.length * 2));
      this.#buffer.copy(grown, 0, 0, this.#used);
      this.#buffer = grown;
    }
    chunk.copy(this.#buffer, this.#used);
    this.#used = needed;
  }

  #bytes(): Buffer {
    return this.#buffer.subarray(0, this.#used);
  }

  #other(): HeadProgress {
    return { kind: 'other', bytes: this.#bytes() };
  }
}
