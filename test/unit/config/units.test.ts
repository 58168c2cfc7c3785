import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  formatDuration,
  MAX_DURATION,
  MAX_DURATION_MS,
  parseDuration,
  parseSize,
} from '../../../src/config/units.ts';

describe('parseDuration', () => {
  it('reads every unit as milliseconds', () => {
    assert.equal(parseDuration('250ms'), 250);
    assert.equal(parseDuration('30s'), 30_000);
    assert.equal(parseDuration('5m'), 300_000);
    assert.equal(parseDuration('1h'), 3_600_000);
  });

  it('accepts decimals, zero and spaces around or before the unit', () => {
    assert.equal(parseDuration('1.5s'), 1500);
    assert.equal(parseDuration('0s'), 0);
    assert.equal(parseDuration(' 10 s '), 10_000);
  });

  it('rejects missing or unknown units and other text', () => {
    for (const text of ['10', '', 's', '1d', '10S', '-1s', '1e3ms', '5 seconds', 'forever', '1.s']) {
      assert.equal(parseDuration(text), undefined, text);
    }
  });
});

describe('MAX_DURATION', () => {
  it('is what it says, and a delay Node.js timers can wait for', () => {
    assert.equal(parseDuration(MAX_DURATION), MAX_DURATION_MS);
    assert.ok(MAX_DURATION_MS <= 2 ** 31 - 1);
    assert.ok(MAX_DURATION_MS + 3_600_000 > 2 ** 31 - 1);
  });
});

describe('formatDuration', () => {
  it('writes milliseconds in the largest unit that divides them', () => {
    assert.equal(formatDuration(0), '0s');
    assert.equal(formatDuration(250), '250ms');
    assert.equal(formatDuration(1_500), '1500ms');
    assert.equal(formatDuration(30_000), '30s');
    assert.equal(formatDuration(90_000), '90s');
    assert.equal(formatDuration(300_000), '5m');
    assert.equal(formatDuration(7_200_000), '2h');
  });

  it('writes what parseDuration reads back', () => {
    for (const ms of [1, 999, 1_000, 61_000, 3_600_000, MAX_DURATION_MS]) {
      assert.equal(parseDuration(formatDuration(ms)), ms, `${ms} ms written as ${formatDuration(ms)}`);
    }
  });
});

describe('parseSize', () => {
  it('reads binary and decimal units as bytes', () => {
    assert.equal(parseSize('512B'), 512);
    assert.equal(parseSize('64KiB'), 65_536);
    assert.equal(parseSize('16MiB'), 16 * 1024 * 1024);
    assert.equal(parseSize('1GiB'), 1024 ** 3);
    assert.equal(parseSize('64KB'), 64_000);
    assert.equal(parseSize('16MB'), 16_000_000);
    assert.equal(parseSize('1GB'), 1_000_000_000);
  });

  it('rounds fractional bytes down', () => {
    assert.equal(parseSize('1.5KiB'), 1536);
    assert.equal(parseSize('0.3B'), 0);
  });

  it('rejects missing, lower-case or unknown units', () => {
    for (const text of ['16', '16k', '16kib', '16kb', '1TB', '-1B', 'KiB', '']) {
      assert.equal(parseSize(text), undefined, text);
    }
  });
});
