/**
 * Finds the body of a backend's non-101 answer in the bytes that follow its head, by the framing
 * the head declared: a length, chunked transfer coding (decoded strictly: hex sizes, CRLF after
 * every line and chunk, trailers skipped), or the end of the connection. It hands back body bytes
 * and says when the body is complete; a malformed chunked body is an error.
 */
import type { BodyFraming } from './response-head.ts';

/** Longest chunk-size or trailer line accepted (extensions included). */
const MAX_LINE = 4096;
const CHUNK_SIZE = /^([0-9A-Fa-f]{1,12})[\t ]*(?:;.*)?$/;

type ChunkState =
  | { readonly at: 'size' }
  | { readonly at: 'data'; readonly left: number }
  | { readonly at: 'data-end' }
  | { readonly at: 'trailer' };

export class BodyDecoder {
  readonly #framing: BodyFraming;
  #left: number;
  #chunk: ChunkState = { at: 'size' };
  #line = '';
  #done: boolean;

  constructor(framing: BodyFraming) {
    this.#framing = framing;
    this.#left = framing.kind === 'length' ? framing.bytes : 0;
    this.#done = framing.kind === 'none' || (framing.kind === 'length' && framing.bytes === 0);
  }

  /** True once the whole body was seen (a close-delimited body is complete only at `end()`). */
  get done(): boolean {
    return this.#done;
  }

  /** Feeds bytes from the connection; returns the body bytes among them. Throws on bad chunking. */
  push(chunk: Buffer): Buffer[] {
    if (this.#done || chunk.length === 0) return [];
    switch (this.#framing.kind) {
      case 'none':
        return [];
      case 'close':
        return [chunk];
      case 'length': {
        const take = chunk.subarray(0, this.#left);
        this.#left -= take.length;
        if (this.#left === 0) this.#done = true;
        return [take];
      }
      case 'chunked':
        return this.#chunked(chunk);
    }
  }

  /** The connection ended: true when that completes the body, false when it cut it short. */
  end(): boolean {
    if (this.#framing.kind === 'close') this.#done = true;
    return this.#done;
  }

  #chunked(chunk: Buffer): Buffer[] {
    const out: Buffer[] = [];
    let at = 0;
    while (at < chunk.length && !this.#done) {
      const state = this.#chunk;
      if (state.at === 'data') {
        const take = chunk.subarray(at, at + state.left);
        out.push(take);
        at += take.length;
        const left = state.left - take.length;
        this.#chunk = left === 0 ? { at: 'data-end' } : { at: 'data', left };
        continue;
      }
      const newline = chunk.indexOf(0x0a, at);
      const stop = newline === -1 ? chunk.length : newline + 1;
      this.#line += chunk.toString('latin1', at, stop);
      at = stop;
      if (this.#line.length > MAX_LINE) throw new Error('chunked body: line too long');
      if (newline === -1) break;
      if (!this.#line.endsWith('\r\n') || this.#line.indexOf('\r') !== this.#line.length - 2) {
        throw new Error('chunked body: a line not ended by CRLF');
      }
      const line = this.#line.slice(0, -2);
      this.#line = '';
      this.#lineDone(state, line);
    }
    return out;
  }

  #lineDone(state: ChunkState, line: string): void {
    if (state.at === 'data-end') {
      if (line !== '') throw new Error('chunked body: chunk data longer than its size');
      this.#chunk = { at: 'size' };
    } else if (state.at === 'size') {
      const size = CHUNK_SIZE.exec(line);
      if (!size) throw new Error('chunked body: malformed chunk size');
      const bytes = Number.parseInt(size[1] ?? '', 16);
      this.#chunk = bytes === 0 ? { at: 'trailer' } : { at: 'data', left: bytes };
    } else if (line === '') {
      this.#done = true; // the blank line after the trailers
    }
  }
}
