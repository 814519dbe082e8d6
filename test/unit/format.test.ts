/** Text for people (src/core/format.ts): the credits, sizes and durations the CLI and the dashboard both print. */
import { describe, expect, it } from 'vitest';
import { formatBytes, formatCredits, formatDecimalCredits, formatDuration } from '../../src/core/index.js';

describe('formatCredits', () => {
  it('formats micro-credits with up to 6 decimals, no trailing zeros and no grouping', () => {
    expect(formatCredits(12_500_000)).toBe('12.5 cr');
    expect(formatCredits(0)).toBe('0 cr');
    expect(formatCredits(1)).toBe('0.000001 cr');
    expect(formatCredits(1_234_567)).toBe('1.234567 cr');
    expect(formatCredits(-2_000_000)).toBe('-2 cr');
    expect(formatCredits(-1_050_000)).toBe('-1.05 cr');
    expect(formatCredits(1_234_000_000)).toBe('1234 cr');
  });

  it('formats decimal credits (as the API speaks them) rounded to the micro-credit', () => {
    expect(formatDecimalCredits(0.0123)).toBe('0.0123 cr');
    expect(formatDecimalCredits(0.1 + 0.2)).toBe('0.3 cr');
    expect(formatDecimalCredits(0.0000004)).toBe('0 cr');
    expect(formatDecimalCredits(-2)).toBe('-2 cr');
  });
});

describe('formatBytes', () => {
  it('uses binary units with one decimal above bytes', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(1023)).toBe('1023 B');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(3.2 * 1024 ** 2)).toBe('3.2 MiB');
    expect(formatBytes(1024 ** 3)).toBe('1.0 GiB');
    expect(formatBytes(2 * 1024 ** 4)).toBe('2.0 TiB');
    expect(formatBytes(2 * 1024 ** 5)).toBe('2048.0 TiB');
  });

  it('moves to the next unit rather than print 1024.0', () => {
    expect(formatBytes(1024 ** 2 - 1)).toBe('1.0 MiB');
  });
});

describe('formatDuration', () => {
  it('writes ms, s, min and h with a space before the unit', () => {
    expect(formatDuration(0)).toBe('0 ms');
    expect(formatDuration(850)).toBe('850 ms');
    expect(formatDuration(2_400)).toBe('2.4 s');
    expect(formatDuration(185_000)).toBe('3 min 05 s');
    expect(formatDuration(2 * 3_600_000 + 3 * 60_000)).toBe('2 h 03 min');
  });

  it('rounds into the next unit instead of printing 1000 ms, 60.0 s or 60 min', () => {
    expect(formatDuration(999.6)).toBe('1.0 s');
    expect(formatDuration(59_960)).toBe('1 min 00 s');
    expect(formatDuration(239_600)).toBe('4 min 00 s');
    expect(formatDuration(3_599_600)).toBe('1 h 00 min');
  });

  it('reads a negative duration (two clocks apart) as 0 ms', () => {
    expect(formatDuration(-40)).toBe('0 ms');
  });
});
