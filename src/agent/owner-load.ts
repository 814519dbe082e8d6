/**
 * Owner load: the share of the machine's CPU used by everything except this agent's jobs, in [0, 1] of all
 * cores. It feeds the idle policy (core/idle-policy.ts, HTCondor's desktop policy).
 *
 * How it is measured ({@link CpuLoadSampler}): between two samples, the host's busy fraction from the
 * aggregate `cpu` line of /proc/stat (busy = user+nice+system+irq+softirq+steal, over that plus idle+iowait;
 * Linux), or from `os.cpus()` times where /proc/stat is absent; minus the CPU time this agent's containers
 * used in the same interval (the executor's cumulative `docker stats` counter, `Executor.jobCpuMs`) over
 * interval × cores; clamped to [0, 1]. The agent process itself counts as owner load (it is small).
 * A container that ends between two samples loses at most its last `docker stats` second, which reads as
 * owner load for one sample.
 */
import { readFile } from 'node:fs/promises';
import { cpus } from 'node:os';

/** Port: one owner-load sample, a fraction in [0, 1] of the whole machine. Never throws. */
export interface LoadSampler {
  sample(): Promise<number>;
}

/** Cumulative CPU ticks of the whole machine (any unit, as long as both use the same). */
export interface CpuTimes {
  busy: number;
  total: number;
}

/**
 * Parses the aggregate `cpu` line of /proc/stat (proc(5): user nice system idle iowait irq softirq steal
 * guest guest_nice, in USER_HZ ticks; guest time is already inside user). Returns null if absent.
 */
export function parseProcStat(text: string): CpuTimes | null {
  const line = text.split('\n').find((l) => l.startsWith('cpu '));
  if (!line) return null;
  const f = line.trim().split(/\s+/).slice(1, 9).map(Number);
  if (f.length < 4 || f.some((n) => !Number.isFinite(n))) return null;
  const total = f.reduce((a, b) => a + b, 0);
  const idle = (f[3] ?? 0) + (f[4] ?? 0);
  return { busy: total - idle, total };
}

/** Machine CPU times from /proc/stat, else from os.cpus() (ms; macOS, Windows). */
async function readCpuTimes(procStat: string): Promise<CpuTimes> {
  try {
    const t = parseProcStat(await readFile(procStat, 'utf8'));
    if (t) return t;
  } catch {
    /* not Linux: fall through */
  }
  let busy = 0;
  let total = 0;
  for (const c of cpus()) {
    const { user, nice, sys, idle, irq } = c.times;
    busy += user + nice + sys + irq;
    total += user + nice + sys + irq + idle;
  }
  return { busy, total };
}

const clamp01 = (x: number) => (Number.isFinite(x) ? Math.min(1, Math.max(0, x)) : 0);

/** Options of {@link CpuLoadSampler}. */
export interface CpuLoadSamplerOptions {
  /** Cumulative CPU time of this agent's jobs, ms (Executor.jobCpuMs); default none. */
  jobCpuMs?: () => number;
  /** Default /proc/stat. */
  procStat?: string;
  /** Cores of the machine; default os.cpus().length. */
  cores?: number;
  /** Interval of the very first sample (there is no earlier one to compare with), ms; default 250. */
  firstIntervalMs?: number;
}

/**
 * The real sampler: host busy fraction minus this agent's jobs, over the time since the previous sample
 * (see the file comment). The first call measures over `firstIntervalMs`.
 */
export class CpuLoadSampler implements LoadSampler {
  private prev: { times: CpuTimes; jobMs: number; at: number } | null = null;
  private readonly procStat: string;
  private readonly cores: number;

  constructor(private readonly opts: CpuLoadSamplerOptions = {}) {
    this.procStat = opts.procStat ?? '/proc/stat';
    this.cores = Math.max(1, opts.cores ?? cpus().length);
  }

  private async read(): Promise<{ times: CpuTimes; jobMs: number; at: number }> {
    return { times: await readCpuTimes(this.procStat), jobMs: this.opts.jobCpuMs?.() ?? 0, at: performance.now() };
  }

  async sample(): Promise<number> {
    try {
      if (!this.prev) {
        this.prev = await this.read();
        await new Promise((r) => setTimeout(r, this.opts.firstIntervalMs ?? 250));
      }
      const cur = await this.read();
      const prev = this.prev;
      this.prev = cur;
      const dTotal = cur.times.total - prev.times.total;
      if (dTotal <= 0) return 0;
      const busy = (cur.times.busy - prev.times.busy) / dTotal;
      const elapsedMs = cur.at - prev.at;
      const jobs = elapsedMs > 0 ? Math.max(0, cur.jobMs - prev.jobMs) / (elapsedMs * this.cores) : 0;
      return clamp01(busy - jobs);
    } catch {
      return 0;
    }
  }
}

/**
 * TEST ONLY (`deqo agent --test-owner-load-file`): the owner load is the number written in a file, so a
 * test can play the owner. An unreadable or non-numeric file keeps the last value (initially 0).
 */
export class FileLoadSampler implements LoadSampler {
  private last = 0;
  constructor(private readonly path: string) {}

  async sample(): Promise<number> {
    try {
      const n = Number.parseFloat((await readFile(this.path, 'utf8')).trim());
      if (Number.isFinite(n)) this.last = clamp01(n);
    } catch {
      /* keep the last value */
    }
    return this.last;
  }
}
