/**
 * Live output of running executions, in memory only: the last 256 KiB of each stream of each execution, for the
 * event stream and `GET /v1/jobs/:id/executions/:executionId/log`. The verified logs remain the stdout/stderr
 * blobs of the report; this is a preview, lost when the coordinator restarts and kept only on the coordinator
 * the agent sent it to.
 */
import type { LogStream } from '../protocol/index.js';

/** Bytes kept per stream of an execution. */
export const LIVE_LOG_MAX_BYTES = 256 * 1024;
/** Executions whose output is kept (the least recently written are dropped first). */
export const LIVE_LOG_MAX_EXECUTIONS = 256;

interface StreamBuffer {
  bytes: Buffer;
  next: number;
}
/** What is kept of one execution: each stream. */
type Entry = Record<LogStream, StreamBuffer>;

/** First index ≥ `i` that starts a UTF-8 character (not a continuation byte 10xxxxxx). */
function charStart(b: Buffer, i: number): number {
  while (i < b.length && (b[i]! & 0xc0) === 0x80) i++;
  return i;
}

export class LiveLogs {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly maxBytes = LIVE_LOG_MAX_BYTES,
    private readonly maxExecutions = LIVE_LOG_MAX_EXECUTIONS,
  ) {}

  /**
   * Adds a chunk that starts at byte `offset` of the stream. Bytes already received (a resent or overlapping
   * chunk) are skipped; a gap (a lost chunk) is simply joined over. Returns the new text, or null when nothing is new.
   */
  append(executionId: string, stream: LogStream, offset: number, data: string): string | null {
    let e = this.entries.get(executionId);
    if (e) this.entries.delete(executionId);
    e ??= { stdout: { bytes: Buffer.alloc(0), next: 0 }, stderr: { bytes: Buffer.alloc(0), next: 0 } };
    this.entries.set(executionId, e);
    if (this.entries.size > this.maxExecutions) this.entries.delete(this.entries.keys().next().value!);
    const s = e[stream];
    const chunk = Buffer.from(data, 'utf8');
    const end = offset + chunk.length;
    if (end <= s.next || chunk.length === 0) return null;
    const fresh = chunk.subarray(charStart(chunk, Math.max(0, s.next - offset)));
    let bytes = Buffer.concat([s.bytes, fresh]);
    if (bytes.length > this.maxBytes) bytes = bytes.subarray(charStart(bytes, bytes.length - this.maxBytes));
    s.bytes = bytes;
    s.next = end;
    return fresh.length > 0 ? fresh.toString('utf8') : null;
  }

  /** The kept text of a stream (empty when nothing was received). */
  text(executionId: string, stream: LogStream): string {
    return this.entries.get(executionId)?.[stream].bytes.toString('utf8') ?? '';
  }
}
