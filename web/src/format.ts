/** Plain-words formatting for the dashboard: credits, times, sizes, failure reasons. */
import { failureText as coreFailureText } from '../../src/core/index.js';

/** Credits with up to 6 decimals, trailing zeros trimmed, e.g. "0.0123 cr". */
export function credits(n: number): string {
  return `${Number(n.toFixed(6)).toLocaleString('en-US', { maximumFractionDigits: 6 })} cr`;
}

/** A duration in ms as "850 ms", "12.3 s", "4 min 05 s", "2 h 03 min". */
export function duration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const s = Math.round(ms / 1000);
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')} min`;
}

/** Epoch ms as local "HH:MM:SS" (today) or "YYYY-MM-DD HH:MM". */
export function when(at: number, now = Date.now()): string {
  const d = new Date(at);
  const pad = (x: number) => String(x).padStart(2, '0');
  const time = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  if (new Date(now).toDateString() === d.toDateString()) return `${time}:${pad(d.getSeconds())}`;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${time}`;
}

/** Bytes as "512 B", "1.5 KiB", "3.2 MiB". */
export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(1)} GiB`;
}

/** A failure in plain words (core's failure catalogue), with the coordinator's detail and what to change. */
export function failureText(f: { reason: string; message: string } | null): string {
  return f ? coreFailureText(f, 'plain') : '';
}

/** A short id or hash for tables (full value in a title attribute). */
export function short(id: string | null | undefined, n = 10): string {
  return id ? (id.length > n ? `${id.slice(0, n)}…` : id) : '—';
}
