/**
 * Parsers for the human units the config accepts: durations ("250ms", "30s", "5m", "1h") and
 * byte sizes ("512B", "64KiB", "16MiB", "1GiB", also decimal "64KB"). Both return undefined on
 * bad input so that the schema can report the problem at the offending YAML node.
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
