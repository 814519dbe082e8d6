/** Flag parsers with units. Each throws commander's InvalidArgumentError with what was expected. */
import { InvalidArgumentError } from 'commander';

/** `512m`, `2g`, `1024` (MiB) → MiB. */
export function parseMemoryMb(v: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?$/i.exec(v.trim());
  if (!m) throw new InvalidArgumentError('expected a size such as 512m, 2g or 1024 (MiB)');
  const factor = { '': 1, k: 1 / 1024, m: 1, g: 1024, t: 1024 * 1024 }[
    m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g' | 't'
  ];
  return Math.round(Number(m[1]) * factor);
}

/** `500k`, `10g`, `1.5t`, `4096` (bytes); binary units (k = 1024) → bytes. */
export function parseBytes(v: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?$/i.exec(v.trim());
  if (!m) throw new InvalidArgumentError('expected a size such as 500m, 10g or 4096 (bytes)');
  const power = ['', 'k', 'm', 'g', 't'].indexOf(m[2]!.toLowerCase());
  const bytes = Math.round(Number(m[1]) * 1024 ** power);
  if (bytes < 1) throw new InvalidArgumentError('expected a size of at least 1 byte');
  return bytes;
}

/** `90s`, `10m`, `2h`, `30` (seconds) → seconds. */
export function parseSeconds(v: string): number {
  const m = /^(\d+)\s*([smhd]?)$/i.exec(v.trim());
  if (!m) throw new InvalidArgumentError('expected a duration such as 90s, 10m, 2h or 30 (seconds)');
  return Number(m[1]) * { '': 1, s: 1, m: 60, h: 3600, d: 86400 }[m[2]!.toLowerCase() as '' | 's' | 'm' | 'h' | 'd'];
}

/** A positive whole number. */
export function parseIntFlag(v: string): number {
  if (!/^\d+$/.test(v) || Number(v) < 1) throw new InvalidArgumentError('expected a whole number ≥ 1');
  return Number(v);
}

/** CPU cores, e.g. 0.5 or 2. */
export function parseCpus(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('expected a number of cores > 0, e.g. 0.5 or 2');
  return n;
}

/** Repeatable `KEY=VALUE`, accumulated into a record. */
export function parseEnvPair(v: string, acc: Record<string, string>): Record<string, string> {
  const i = v.indexOf('=');
  if (i <= 0) throw new InvalidArgumentError('expected KEY=VALUE');
  return { ...acc, [v.slice(0, i)]: v.slice(i + 1) };
}

/** Repeatable `file[:path]` (local file, path under /inputs), accumulated. */
export function parseInputFlag(
  v: string,
  acc: Array<{ file: string; path: string }>,
): Array<{ file: string; path: string }> {
  const i = v.lastIndexOf(':');
  const [file, path] = i > 0 ? [v.slice(0, i), v.slice(i + 1)] : [v, ''];
  if (!file) throw new InvalidArgumentError('expected a local file, optionally with :path-under-/inputs');
  return [...acc, { file, path }];
}

/** A number of credits ≥ 0, e.g. 0.05 (schemas check upper bounds). */
export function parseCredits(v: string): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n < 0)
    throw new InvalidArgumentError('expected a number of credits ≥ 0, e.g. 0.05');
  return n;
}

/** A fraction from 0 to 1: `0.3` or `30%`. */
export function parseFraction(v: string): number {
  const pct = v.trim().endsWith('%');
  const n = Number(pct ? v.trim().slice(0, -1) : v);
  if (v.trim() === '' || !Number.isFinite(n) || n < 0 || (pct ? n > 100 : n > 1))
    throw new InvalidArgumentError('expected a fraction from 0 to 1, e.g. 0.3 or 30%');
  return pct ? n / 100 : n;
}

/** Repeatable string flag, accumulated in order. */
export const collect = (v: string, acc: string[] = []): string[] => [...acc, v];

/** `500ms`, `5s`, `10m`, `1h`, `250` (milliseconds) → milliseconds. */
export function parseDurationMs(v: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)?$/i.exec(v.trim());
  if (!m) throw new InvalidArgumentError('expected a duration such as 500ms, 5s, 10m, 1h or 250 (milliseconds)');
  const ms =
    Number(m[1]) * { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 }[(m[2] ?? 'ms').toLowerCase() as 'ms' | 's' | 'm' | 'h'];
  if (ms < 1) throw new InvalidArgumentError('expected a duration of at least 1 ms');
  return Math.round(ms);
}
