/**
 * Schema leaves for values written with a unit: durations ("30s") that come out as milliseconds
 * and sizes ("16MiB") that come out as bytes, each within the range the gateway can use, and their
 * variants that also accept `off`. Each carries its kind and range as metadata, which
 * scripts/config-json-schema.ts turns into a pattern and words in the JSON Schema.
 */
import { z } from 'zod';
import { MAX_DURATION, MAX_DURATION_MS, parseDuration, parseSize } from './units.ts';

/**
 * The key under which durations and sizes carry their accepted range ("1ms–596h") into the JSON
 * Schema, where scripts/config-json-schema.ts moves it into the description.
 */
export const RANGE_META = 'x-wsgate-range';
/** The key under which a leaf says what it holds: 'duration', 'size', or either with '|off'. */
export const KIND_META = 'x-wsgate-kind';

/** The word that turns an optional limit off. */
export const OFF = 'off';
export type Off = typeof OFF;

type Read<T> = (text: string) => T | { readonly problem: string };

/** A string with a unit; `read` gives its value, or the problem to report at it. */
function measured<T>(kind: string, range: string, read: Read<T>) {
  return z
    .string()
    .meta({ [RANGE_META]: range, [KIND_META]: kind })
    .transform((text, ctx) => {
      const value = read(text);
      if (typeof value === 'object' && value !== null && 'problem' in value) {
        ctx.addIssue({ code: 'custom', message: value.problem });
        return z.NEVER;
      }
      return value;
    });
}

/** `read`, also accepting `off` (which comes out as 'off'). */
function orOff<T>(read: Read<T>): Read<T | Off> {
  return (text) => (text.trim() === OFF ? OFF : read(text));
}

function readDuration(zeroAllowed: boolean): Read<number> {
  return (text) => {
    const ms = parseDuration(text);
    if (ms === undefined)
      return { problem: `"${text}" is not a duration (use e.g. "500ms", "30s", "5m", "1h")` };
    if (ms > MAX_DURATION_MS) return { problem: `must be at most ${MAX_DURATION} (about 24.8 days)` };
    if (ms > 0 || zeroAllowed) return ms;
    // "0.4ms" is not zero as written, but durations are whole milliseconds.
    return {
      problem: /[1-9]/.test(text)
        ? 'must be at least 1ms (durations are whole milliseconds)'
        : 'must be more than 0s',
    };
  };
}

/** Bytes for a size bound written in this file. */
function bound(text: string): number {
  const bytes = parseSize(text);
  if (bytes === undefined) throw new Error(`"${text}" is not a size`);
  return bytes;
}

function readSize(min: string, max: string): Read<number> {
  const [low, high] = [bound(min), bound(max)];
  return (text) => {
    const bytes = parseSize(text);
    if (bytes === undefined)
      return { problem: `"${text}" is not a size (use e.g. "512B", "64KiB", "16MiB")` };
    if (bytes < low) return { problem: `must be at least ${min}` };
    if (bytes > high) return { problem: `must be at most ${max}` };
    return bytes;
  };
}

const durationRange = (zeroAllowed: boolean) => `${zeroAllowed ? '0s' : '1ms'}–${MAX_DURATION}`;

/** A duration in milliseconds: more than 0s (at least 0s with `zeroAllowed`), at most MAX_DURATION. */
export function duration(defaultValue: string, { zeroAllowed = false }: { zeroAllowed?: boolean } = {}) {
  return durationLeaf({ zeroAllowed }).prefault(defaultValue);
}

/** A duration without a default (for blocks whose absent fields inherit). */
export function durationLeaf({ zeroAllowed = false }: { zeroAllowed?: boolean } = {}) {
  return measured('duration', durationRange(zeroAllowed), readDuration(zeroAllowed));
}

/** A duration, or `off`. */
export function durationOrOff() {
  return measured('duration|off', durationRange(false), orOff(readDuration(false)));
}

/** A size in bytes, from `min` to `max` (both included). */
export function size(defaultValue: string, min: string, max: string) {
  return sizeLeaf(min, max).prefault(defaultValue);
}

/** A size without a default. */
export function sizeLeaf(min: string, max: string) {
  return measured('size', `${min}–${max}`, readSize(min, max));
}

/** A size, or `off`. */
export function sizeOrOff(min: string, max: string) {
  return measured('size|off', `${min}–${max}`, orOff(readSize(min, max)));
}
