/**
 * Live output: while a container runs, the agent tails its stdout and stderr files (written by the executor)
 * and sends what is new about once a second, in chunks of at most 64 KiB cut at UTF-8 character boundaries, each
 * with its byte offset (so the coordinator recognises a resent chunk). Best effort: a failed send is retried on the
 * next tick; a refused one (409 stale_lease: the lease is gone) stops the tail. The verified logs are the report's blobs.
 * One look at a time: while a send hangs (a coordinator that does not answer) no look queues up behind it, so
 * stopping waits for that one send at most, and skips its last look when the latest send failed.
 */
import { open } from 'node:fs/promises';
import { ApiError } from '../client/index.js';
import { LOG_CHUNK_MAX_BYTES, type LogStream } from '../protocol/index.js';

/** Interval between two looks at the output files, ms. */
export const LOG_TAIL_INTERVAL_MS = 1_000;
/** Most chunks sent per stream per tick (so a flood of output is sent at most 256 KiB/s per stream). */
const CHUNKS_PER_TICK = 4;

/** Sends one chunk; throws on failure (ApiError 409 stale_lease stops the tail). */
export type SendChunk = (stream: LogStream, offset: number, data: string) => Promise<void>;

/** Length of the longest prefix of `b` that ends on a whole UTF-8 character. */
export function wholeCharsLength(b: Buffer): number {
  for (let k = 1; k <= Math.min(4, b.length); k++) {
    const byte = b[b.length - k]!;
    if ((byte & 0xc0) === 0x80) continue; // a continuation byte: look further back for its lead byte
    const need = byte >= 0xf0 ? 4 : byte >= 0xe0 ? 3 : byte >= 0xc0 ? 2 : 1;
    return need > k ? b.length - k : b.length;
  }
  return b.length;
}

/** Reads up to `max` bytes of `path` from `offset`; empty when the file does not exist yet. */
async function readFrom(path: string, offset: number, max: number): Promise<Buffer> {
  const f = await open(path, 'r').catch(() => null);
  if (!f) return Buffer.alloc(0);
  try {
    const buf = Buffer.alloc(max);
    const { bytesRead } = await f.read(buf, 0, max, offset);
    return buf.subarray(0, bytesRead);
  } finally {
    await f.close();
  }
}

/** Tails an execution's stdout and stderr files to `send`. */
export class LogTail {
  private readonly offsets: Record<LogStream, number> = { stdout: 0, stderr: 0 };
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> = Promise.resolve();
  private busy = false;
  /** The latest send failed: the coordinator is not taking chunks now. */
  private failing = false;
  private stopped = false;

  constructor(
    private readonly paths: Record<LogStream, string>,
    private readonly send: SendChunk,
    private readonly intervalMs = LOG_TAIL_INTERVAL_MS,
  ) {}

  /** Starts looking every interval (an interval that finds the previous look still sending is skipped). */
  start(): void {
    this.timer = setInterval(() => {
      if (this.busy) return;
      this.busy = true;
      this.running = this.tick().finally(() => {
        this.busy = false;
      });
    }, this.intervalMs);
    this.timer.unref();
  }

  /**
   * Stops, after the look in progress and one last look (so output written just before the end is sent before the
   * report) — unless the latest send failed, when the coordinator would not take it either. Never throws.
   */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.running;
    if (!this.failing) await this.tick();
    this.stopped = true;
  }

  private async tick(): Promise<void> {
    for (const stream of ['stdout', 'stderr'] as const) {
      for (let i = 0; i < CHUNKS_PER_TICK && !this.stopped; i++) {
        const offset = this.offsets[stream];
        const bytes = await readFrom(this.paths[stream], offset, LOG_CHUNK_MAX_BYTES).catch(() => Buffer.alloc(0));
        const n = bytes.length < LOG_CHUNK_MAX_BYTES ? bytes.length : wholeCharsLength(bytes);
        if (n === 0) break;
        try {
          await this.send(stream, offset, bytes.subarray(0, n).toString('utf8'));
          this.failing = false;
        } catch (err) {
          this.failing = true;
          if (err instanceof ApiError && err.status === 409) this.stopped = true;
          return; // retried on the next tick
        }
        this.offsets[stream] = offset + n;
      }
    }
  }
}
