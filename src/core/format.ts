/**
 * Text for people: credits, byte sizes and durations, the same in the CLI and the dashboard. Pure (no clock, no
 * locale): the same number gives the same text everywhere. Units are written after a space, SI style
 * (`12.5 cr`, `1.5 KiB`, `2.4 s`).
 */
import { MICRO_PER_CREDIT, toMicro } from './money.js';

/** An amount in micro-credits as text: `12.5 cr`, `-0.000001 cr`; up to 6 decimals, no trailing zeros, no grouping. */
export function formatCredits(micro: number): string {
  const sign = micro < 0 ? '-' : '';
  const abs = Math.abs(micro);
  const whole = Math.floor(abs / MICRO_PER_CREDIT);
  const frac = String(abs % MICRO_PER_CREDIT)
    .padStart(6, '0')
    .replace(/0+$/, '');
  return `${sign}${whole}${frac ? `.${frac}` : ''} cr`;
}

/** An amount in decimal credits (as the API speaks them) as text, rounded to the micro-credit: `0.0123 cr`. */
export function formatDecimalCredits(credits: number): string {
  return formatCredits(toMicro(credits));
}

/**
 * A size in bytes as `512 B`, `1.5 KiB`, `3.2 MiB`, `1.0 GiB`, `2.0 TiB` (binary units, one decimal above bytes;
 * never `1024.0 KiB`).
 */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (i < units.length - 1 && (i === 0 ? v : Number(v.toFixed(1))) >= 1024) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

/**
 * A duration in ms as `850 ms`, `2.4 s`, `3 min 05 s` or `2 h 03 min`, each rounded to its last unit (so never
 * `60.0 s` or `3 min 60 s`). A negative duration (clocks of two machines apart) reads as `0 ms`.
 */
export function formatDuration(ms: number): string {
  const v = Math.max(0, ms);
  const pad = (x: number): string => String(x).padStart(2, '0');
  if (Math.round(v) < 1000) return `${Math.round(v)} ms`;
  const tenths = Math.round(v / 100);
  if (tenths < 600) return `${(tenths / 10).toFixed(1)} s`;
  const s = Math.round(v / 1000);
  if (s < 3600) return `${Math.floor(s / 60)} min ${pad(s % 60)} s`;
  const min = Math.round(v / 60_000);
  return `${Math.floor(min / 60)} h ${pad(min % 60)} min`;
}
