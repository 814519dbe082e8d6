/**
 * The dashboard's one door to the coordinator. Existing routes go through the typed DeqoClient; the routes the
 * dashboard backend adds (events, stats, earnings, live logs, script jobs) and browser blob transfers use fetch
 * here until the client gains them (events, networkStats, providerEarnings, executionLog): swapping is this file.
 * Errors are ApiError, as from the client (details of validation errors carry `path`).
 */
import { z } from 'zod';
import { ApiError, DeqoClient } from '../../src/client/client.js';
import { BlobInfoSchema, ErrorBodySchema, SubmitJobResponseSchema, type BlobInfo, type SubmitJobResponse } from '../../src/protocol/index.js';
import { createSseParser } from './sse.js';
import { EarningsSchema, NetworkStatsSchema, parseLiveEvent, type Earnings, type LiveEvent, type NetworkStats, type ScriptJobInput } from './live-types.js';

export { ApiError };

/** A route the coordinator does not serve yet (404 `route`): the caller degrades (polls, hides a chart). */
export class NotSupportedError extends Error {
  override readonly name = 'NotSupportedError';
}

async function errorOf(res: Response): Promise<ApiError> {
  const body = ErrorBodySchema.safeParse(await res.json().catch(() => null));
  if (body.success) return new ApiError(res.status, body.data.error.code, body.data.error.message, body.data.error.details, body.data.error.retryable ?? false);
  return new ApiError(res.status, 'http_error', `HTTP ${res.status}`);
}

/** The typed client plus the dashboard's extra calls, for one API key. */
export class DashboardApi {
  readonly client: DeqoClient;
  constructor(readonly baseUrl: string, private readonly key: string) { this.client = new DeqoClient(baseUrl, key); }

  private async fetch(path: string, init: RequestInit = {}): Promise<Response> {
    try {
      return await fetch(`${this.baseUrl}${path}`, { ...init, headers: { ...(init.headers as Record<string, string>), authorization: `Bearer ${this.key}` } });
    } catch (err) {
      if ((err as Error).name === 'AbortError') throw err;
      throw new ApiError(0, 'unreachable', `cannot reach the coordinator at ${this.baseUrl}`, undefined, true);
    }
  }

  private async json<S extends z.ZodType>(path: string, schema: S, init?: RequestInit): Promise<z.infer<S>> {
    const res = await this.fetch(path, init);
    if (res.status === 404 && !path.includes('/jobs/')) throw new NotSupportedError(`${path} is not served by this coordinator`);
    if (!res.ok) throw await errorOf(res);
    return schema.parse(await res.json());
  }

  /** Queue depth, throughput points and recent verifications over the last `minutes`. */
  networkStats(minutes = 60): Promise<NetworkStats> { return this.json(`/v1/network/stats?minutes=${minutes}`, NetworkStatsSchema); }

  /** The provider's earnings over the last `hours` (points of credits per bucket, and the total). */
  providerEarnings(hours = 48): Promise<Earnings> { return this.json(`/v1/provider/earnings?hours=${hours}`, EarningsSchema); }

  /** The buffered live log of a running execution; NotSupportedError when the coordinator has no live logs. */
  async executionLog(jobId: string, executionId: string, stream: 'stdout' | 'stderr'): Promise<string> {
    const res = await this.fetch(`/v1/jobs/${encodeURIComponent(jobId)}/executions/${encodeURIComponent(executionId)}/log?stream=${stream}`);
    if (res.status === 404) {
      const err = await errorOf(res);
      if (err.code === 'not_found' && /route/.test(err.message)) throw new NotSupportedError('live logs are not served by this coordinator');
      throw err;
    }
    if (!res.ok) throw await errorOf(res);
    return res.text();
  }

  /** Submits a script job (code runner). */
  async submitScript(job: ScriptJobInput): Promise<SubmitJobResponse> {
    const res = await this.fetch('/v1/jobs', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(job) });
    if (!res.ok) throw await errorOf(res);
    return SubmitJobResponseSchema.parse(await res.json());
  }

  /** Uploads a browser File as a blob. */
  async uploadBlob(file: Blob): Promise<BlobInfo> {
    const res = await this.fetch('/v1/blobs', { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: file });
    if (!res.ok) throw await errorOf(res);
    return BlobInfoSchema.parse(await res.json());
  }

  /** A blob's bytes as a browser Blob (for downloads and logs). */
  async blob(sha256: string): Promise<Blob> {
    const res = await this.fetch(`/v1/blobs/${sha256}`);
    if (!res.ok) throw await errorOf(res);
    return res.blob();
  }

  /**
   * Follows GET /v1/events (optionally one job's) until `signal` aborts, calling `onEvent` for each event;
   * reconnects after a dropped stream. Resolves `false` at once when the coordinator has no event stream (404):
   * the caller then polls.
   */
  async events(opts: { jobId?: string; signal: AbortSignal; onEvent: (e: LiveEvent) => void; onOpen?: () => void }): Promise<boolean> {
    const path = `/v1/events${opts.jobId ? `?jobId=${encodeURIComponent(opts.jobId)}` : ''}`;
    let delay = 500;
    while (!opts.signal.aborted) {
      let res: Response;
      try {
        res = await this.fetch(path, { signal: opts.signal, headers: { accept: 'text/event-stream' } });
      } catch {
        if (opts.signal.aborted) return true;
        await sleep(delay, opts.signal); delay = Math.min(delay * 2, 10_000);
        continue;
      }
      if (res.status === 404) return false;
      if (!res.ok || !res.body) throw await errorOf(res);
      opts.onOpen?.();
      delay = 500;
      const feed = createSseParser((m) => { const e = parseLiveEvent(m.event, m.data); if (e) opts.onEvent(e); });
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          feed(value);
        }
      } catch { /* dropped or aborted: reconnect below unless aborted */ }
      await sleep(delay, opts.signal);
    }
    return true;
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
  });
}
