/** Small measuring helpers of the benchmarks: percentiles, bounded concurrency, and /proc readings of a process. */
import { readdirSync, readFileSync } from 'node:fs';

/** Percentiles of a sample (nearest rank), milliseconds in and out, rounded to 0.1 ms. */
export interface Distribution {
  n: number;
  p50: number;
  p99: number;
  max: number;
  mean: number;
}

/** Nearest-rank percentile `p` (0–100) of `sorted` (ascending); NaN for an empty sample. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}

/** p50, p99, max and mean of `values` (any unit; rounded to one decimal). */
export function distribution(values: readonly number[]): Distribution {
  const s = [...values].sort((a, b) => a - b);
  const r = (x: number) => Math.round(x * 10) / 10;
  const mean = s.length === 0 ? Number.NaN : s.reduce((a, b) => a + b, 0) / s.length;
  return {
    n: s.length,
    p50: r(percentile(s, 50)),
    p99: r(percentile(s, 99)),
    max: r(s[s.length - 1] ?? Number.NaN),
    mean: r(mean),
  };
}

/** Runs `fn` over `items` with at most `concurrency` calls in flight; results in input order. Rejects on the first failure. */
export async function mapPool<T, R>(
  items: readonly T[],
  concurrency: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, items.length)) }, worker));
  return out;
}

/** Clock ticks per second of /proc/<pid>/stat times (USER_HZ; 100 on Linux on every mainstream architecture). */
const USER_HZ = 100;

/** CPU time (user + system) a process has used so far, seconds; null when /proc cannot be read (not Linux, process gone). */
export function processCpuSeconds(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may contain spaces) start at field 3; utime and stime are fields 14 and 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / USER_HZ;
  } catch {
    return null;
  }
}

/**
 * CPU time (user + system) used so far by every process named `comm` (e.g. `postgres`: the server and its backends,
 * when the database runs on this machine), seconds; null when /proc cannot be read. Processes that ended between two
 * readings drop out, so a difference can undercount what short-lived backends used.
 */
export function processesCpuSeconds(comm: string): number | null {
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  } catch {
    return null;
  }
  let total = 0;
  for (const pid of pids) {
    try {
      if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() !== comm) continue;
    } catch {
      continue; // gone meanwhile
    }
    total += processCpuSeconds(Number(pid)) ?? 0;
  }
  return total;
}

/** Resident set size of a process (VmRSS), bytes; null when /proc cannot be read. */
export function processRssBytes(pid: number): number | null {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

/** Samples a process's RSS every `intervalMs` until stopped; `stop()` returns the peak and the samples' count, bytes. */
export function sampleRss(pid: number, intervalMs = 100): { stop(): { peakBytes: number; samples: number } } {
  let peak = processRssBytes(pid) ?? 0;
  let samples = 1;
  const timer = setInterval(() => {
    const rss = processRssBytes(pid);
    if (rss !== null) {
      peak = Math.max(peak, rss);
      samples++;
    }
  }, intervalMs);
  return {
    stop() {
      clearInterval(timer);
      return { peakBytes: peak, samples };
    },
  };
}

/** Milliseconds → seconds rounded to 3 decimals. */
export function seconds(ms: number): number {
  return Math.round(ms) / 1000;
}

/** Rounds to `digits` decimals (for the JSON results). */
export function round(x: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}
