/**
 * I/O helpers of the Docker executor: dockerode error decoding, capped log files, output-directory size,
 * and `docker stats` sampling. Shared by the run and reattach paths (docker-supervise.ts).
 */
import { lstat, open, readdir, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable, type Readable } from 'node:stream';
import type Docker from 'dockerode';
import { parseStatsLine } from './docker-hardening.js';
import { outputEntryProblem } from './results.js';

/** HTTP status of a dockerode error, if any. */
export function statusOf(e: unknown): number | undefined {
  const s = (e as { statusCode?: unknown } | null)?.statusCode;
  return typeof s === 'number' ? s : undefined;
}

/** Human message of a dockerode error: the engine's JSON message when present. */
export function messageOf(e: unknown): string {
  const j = (e as { json?: { message?: unknown } } | null)?.json;
  if (j && typeof j.message === 'string') return j.message;
  return e instanceof Error ? e.message : String(e);
}

/**
 * Writable that copies at most `cap` bytes into a file and drops the rest, remembering whether it
 * dropped anything. Write errors of the file are kept and rethrown by {@link CappedFileSink.close}.
 */
export class CappedFileSink extends Writable {
  written = 0;
  truncated = false;
  private error: Error | undefined;
  private closing: Promise<void> | undefined;

  private constructor(
    private readonly fh: FileHandle,
    private readonly cap: number,
  ) {
    super();
    this.on('error', (e) => {
      this.error ??= e;
    });
  }

  /** Creates (truncates) the file at `path`; throws if it cannot be opened. */
  static async open(path: string, cap: number): Promise<CappedFileSink> {
    return new CappedFileSink(await open(path, 'w', 0o644), cap);
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    const room = this.cap - this.written;
    if (chunk.length > room) this.truncated = true;
    if (room <= 0) {
      cb();
      return;
    }
    const part = chunk.length > room ? chunk.subarray(0, room) : chunk;
    this.written += part.length;
    this.fh.write(part).then(
      () => cb(),
      (e: Error) => {
        this.error ??= e;
        cb();
      },
    );
  }

  /** Flushes pending writes and closes the file (idempotent); throws the first write error. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      if (!this.writableFinished) {
        await new Promise<void>((resolve) => {
          this.once('finish', resolve);
          this.once('close', resolve);
          this.end();
        });
      }
      await this.fh.close().catch((e: Error) => {
        this.error ??= e;
      });
    })();
    return this.closing.then(() => {
      if (this.error) throw this.error;
    });
  }
}

/** The stdout and stderr files of one execution, opened together. */
export interface LogSinks {
  out: CappedFileSink;
  err: CappedFileSink;
}

/** Opens (truncating) the capped stdout and stderr files; closes the first if the second fails, then throws. */
export async function openLogSinks(req: {
  stdoutPath: string;
  stderrPath: string;
  limits: { stdoutBytes: number; stderrBytes: number };
}): Promise<LogSinks> {
  const out = await CappedFileSink.open(req.stdoutPath, req.limits.stdoutBytes);
  const err = await CappedFileSink.open(req.stderrPath, req.limits.stderrBytes).catch(async (e: unknown) => {
    await out.close().catch(() => {});
    throw e;
  });
  return { out, err };
}

/**
 * Apparent size in bytes of all regular files under `dir` (recursive, symlinks not followed), and the first entry
 * beyond what a report carries (results.ts outputEntryProblem), which ends the walk. Stops early once the total
 * exceeds `stopAbove`. Entries that vanish or cannot be read are skipped.
 */
export async function dirSize(
  dir: string,
  stopAbove = Number.POSITIVE_INFINITY,
): Promise<{ bytes: number; beyond: string | null }> {
  let total = 0;
  let files = 0;
  const stack: { path: string; rel: string }[] = [{ path: dir, rel: '' }];
  while (stack.length > 0 && total <= stopAbove) {
    const d = stack.pop()!;
    let entries;
    try {
      entries = await readdir(d.path, { withFileTypes: true });
    } catch {
      continue;
    }
    for (const ent of entries) {
      const p = join(d.path, ent.name);
      const rel = d.rel === '' ? ent.name : `${d.rel}/${ent.name}`;
      const folder = ent.isDirectory();
      if (ent.isFile()) files++;
      const beyond = outputEntryProblem(rel, files);
      if (beyond) return { bytes: total, beyond };
      if (folder) {
        stack.push({ path: p, rel });
        continue;
      }
      try {
        total += (await lstat(p)).size;
      } catch {
        /* vanished */
      }
      if (total > stopAbove) break;
    }
  }
  return { bytes: total, beyond: null };
}

/**
 * Samples `docker stats` (stream) of a running container: cumulative CPU time of the container since it
 * started, ns, and peak memory, bytes. `baselineNs` is the first CPU sample, so `cpuNs - baselineNs` is the
 * CPU used while this sampler watched (a container reattached after a restart had already used some).
 */
export class StatsSampler {
  cpuNs = 0;
  maxMemoryBytes = 0;
  /** First CPU sample, ns (0 when sampling from the container's start). */
  baselineNs: number | undefined;
  private stream: Readable | undefined;
  private stopped = false;

  /** `fromStart`: the container starts under this sampler, so all of its CPU counts (baseline 0). */
  constructor(fromStart: boolean) {
    if (fromStart) this.baselineNs = 0;
  }

  /** Starts streaming stats of `container` (best effort: a container already gone yields no samples). */
  start(container: Docker.Container): void {
    container.stats({ stream: true }).then(
      (s) => {
        const stream = s as unknown as Readable;
        stream.on('error', () => {
          /* best effort */
        });
        if (this.stopped) {
          stream.destroy();
          return;
        }
        this.stream = stream;
        let buf = '';
        stream.on('data', (chunk: Buffer) => {
          buf += chunk.toString('utf8');
          let i: number;
          while ((i = buf.indexOf('\n')) >= 0) {
            this.take(buf.slice(0, i));
            buf = buf.slice(i + 1);
          }
        });
      },
      () => {
        /* container already gone: no samples */
      },
    );
  }

  /** CPU used while watched, ns. */
  get watchedCpuNs(): number {
    return this.cpuNs - (this.baselineNs ?? this.cpuNs);
  }

  private take(line: string): void {
    const s = parseStatsLine(line);
    if (!s) return;
    if (s.cpuNs > 0) this.baselineNs ??= s.cpuNs;
    this.cpuNs = Math.max(this.cpuNs, s.cpuNs);
    this.maxMemoryBytes = Math.max(this.maxMemoryBytes, s.memoryBytes);
  }

  /** Ends the stats stream. */
  stop(): void {
    this.stopped = true;
    this.stream?.destroy();
  }
}

/** CPU time of the containers an executor supervised: ended ones plus the live samplers, for Executor.jobCpuMs. */
export class CpuAccount {
  private endedNs = 0;
  private readonly live = new Set<StatsSampler>();

  /** Starts counting a sampler's watched CPU. */
  add(s: StatsSampler): void {
    this.live.add(s);
  }

  /** Stops the sampler and keeps what it counted. */
  end(s: StatsSampler): void {
    s.stop();
    if (this.live.delete(s)) this.endedNs += s.watchedCpuNs;
  }

  /** Total, ms (monotonic). */
  ms(): number {
    let ns = this.endedNs;
    for (const s of this.live) ns += s.watchedCpuNs;
    return ns / 1e6;
  }
}
