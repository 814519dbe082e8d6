/**
 * Plain-words formatting only the dashboard needs: clock times, short ids, failure reasons (core's failure
 * catalogue). Credits, sizes and durations are core's (formatDecimalCredits, formatBytes, formatDuration), the same
 * text as the CLI's.
 */
import { failureText as coreFailureText } from '../../src/core/index.js';

/** Epoch ms as local "HH:MM:SS" (today) or "YYYY-MM-DD HH:MM". */
export function when(at: number, now = Date.now()): string {
  const d = new Date(at);
  const pad = (x: number) => String(x).padStart(2, '0');
  const time = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  if (new Date(now).toDateString() === d.toDateString()) return `${time}:${pad(d.getSeconds())}`;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${time}`;
}

/** A failure in plain words (core's failure catalogue), with the coordinator's detail and what to change. */
export function failureText(f: { reason: string; message: string } | null): string {
  return f ? coreFailureText(f, 'plain') : '';
}

/** A short id or hash for tables (full value in a title attribute). */
export function short(id: string | null | undefined, n = 10): string {
  return id ? (id.length > n ? `${id.slice(0, n)}…` : id) : '—';
}
