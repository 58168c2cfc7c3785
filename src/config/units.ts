/**
 * Parsers for the human units the config accepts: durations ("250ms", "30s", "5m", "1h") and
 * byte sizes ("512B", "64KiB", "16MiB", "1GiB", also decimal "64KB"). Both return undefined on
 * bad input so that the schema can report the problem at the offending YAML node. Also the
 * longest duration a timer can wait, and durations written back for messages.
 */

const DURATION = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)$/;
const DURATION_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };

/** Milliseconds for a duration string, or undefined when it is not one. */
export function parseDuration(text: string): number | undefined {
  const match = DURATION.exec(text.trim());
  if (!match?.[1] || !match[2]) return undefined;
  const unit = DURATION_MS[match[2]];
  if (unit === undefined) return undefined;
  return Math.round(Number(match[1]) * unit);
}

/**
 * The longest duration accepted, as written and in milliseconds. Node.js timers cannot wait more
 * than 2^31 - 1 ms (about 24.8 days; longer delays fire after 1 ms): 596h is the largest whole
 * number of hours below that.
 */
export const MAX_DURATION = '596h';
export const MAX_DURATION_MS = 596 * 3_600_000;

/** A duration in milliseconds written in the largest unit that divides it: "30s", "5m", "1500ms". */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0s';
  for (const unit of ['h', 'm', 's']) {
    const size = DURATION_MS[unit];
    if (size !== undefined && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

const SIZE = /^(\d+(?:\.\d+)?)\s*(B|KiB|MiB|GiB|KB|MB|GB)$/;
const SIZE_BYTES: Record<string, number> = {
  B: 1,
  KiB: 1024,
  MiB: 1024 ** 2,
  GiB: 1024 ** 3,
  KB: 1000,
  MB: 1000 ** 2,
  GB: 1000 ** 3,
};

/** Bytes for a size string, or undefined when it is not one. */
export function parseSize(text: string): number | undefined {
  const match = SIZE.exec(text.trim());
  if (!match?.[1] || !match[2]) return undefined;
  const unit = SIZE_BYTES[match[2]];
  if (unit === undefined) return undefined;
  return Math.floor(Number(match[1]) * unit);
}
