/**
 * The dashboard's one door to the coordinator: every call goes through the typed DeqoClient (src/client), with
 * what a page needs on top: reconnecting the event stream, and degrading when a coordinator lacks a route.
 * Errors are ApiError, as from the client (details of validation errors carry `path`).
 */
import { ApiError, DeqoClient } from '../../src/client/browser.js';
import type { BlobInfo, SubmitJobResponse } from '../../src/protocol/index.js';
import type { Earnings, LiveEvent, NetworkStats, ScriptJobInput } from './live-types.js';

export { ApiError };

/** A route the coordinator does not serve yet (404 `route`): the caller degrades (polls, hides a chart). */
export class NotSupportedError extends Error {
  override readonly name = 'NotSupportedError';
}

/** The typed client plus what the dashboard adds to it (degrading, reconnecting), for one API key. */
export class DashboardApi {
  readonly client: DeqoClient;
  constructor(
    readonly baseUrl: string,
    key: string,
  ) {
    this.client = new DeqoClient(baseUrl, key);
  }

  /** Queue depth, throughput points and recent verifications over the last `minutes`. */
  networkStats(minutes = 60): Promise<NetworkStats> {
    return degrade(this.client.networkStats(minutes));
  }

  /** The provider's earnings over the last `hours` (points of credits per bucket, and the total). */
  providerEarnings(hours = 48): Promise<Earnings> {
    return degrade(this.client.providerEarnings(hours));
  }

  /** The buffered live log of a running execution; NotSupportedError when the coordinator has no live logs. */
  executionLog(jobId: string, executionId: string, stream: 'stdout' | 'stderr'): Promise<string> {
    return degrade(this.client.executionLog(jobId, executionId, stream));
  }

  /** Submits a script job (code runner). */
  submitScript(job: ScriptJobInput): Promise<SubmitJobResponse> {
    return this.client.submitJob(job);
  }

  /** Uploads a browser File as a blob. */
  uploadBlob(file: Blob): Promise<BlobInfo> {
    return this.client.uploadBytes(file);
  }

  /** A blob's bytes as a browser Blob (for downloads and logs). */
  async blob(sha256: string): Promise<Blob> {
    return (await this.client.openBlob(sha256)).blob();
  }

  /**
   * Follows GET /v1/events (optionally one job's) through the client until `signal` aborts, calling `onEvent`
   * for each event; reconnects after a dropped stream (waiting at least a 429's Retry-After). `onOpen` runs each time
   * a stream is accepted. Throws ApiError for a refusal retrying cannot mend (e.g. 429 quota_exceeded: the account
   * holds its most streams; the caller polls). Resolves `false` at once when the coordinator has no event stream (404 route): the caller then polls.
   */
  async events(opts: {
    jobId?: string;
    signal: AbortSignal;
    onEvent: (e: LiveEvent) => void;
    onOpen?: () => void;
  }): Promise<boolean> {
    let delay = 500;
    while (!opts.signal.aborted) {
      let retryAfterMs = 0;
      try {
        await this.client.events(
          {
            jobId: opts.jobId,
            onOpen: () => {
              delay = 500;
              opts.onOpen?.();
            },
          },
          (e) => opts.onEvent({ type: e.event, data: e.data } as LiveEvent),
          opts.signal,
        );
      } catch (err) {
        if (isMissingRoute(err)) return false;
        // A stream quota (429 quota_exceeded: too many tabs) throws too: the caller polls instead.
        if (err instanceof ApiError && !err.retryable && err.status !== 0) throw err;
        if (err instanceof ApiError) retryAfterMs = (err.retryAfterSec ?? 0) * 1000;
      }
      if (opts.signal.aborted) break;
      await sleep(Math.max(delay, retryAfterMs), opts.signal);
      delay = Math.min(delay * 2, 10_000);
    }
    return true;
  }
}

function isMissingRoute(err: unknown): boolean {
  return err instanceof ApiError && err.status === 404 && err.code === 'not_found' && /route/.test(err.message);
}

/** Maps "this coordinator has no such route" to NotSupportedError, so the views degrade instead of failing. */
async function degrade<T>(p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (err) {
    if (isMissingRoute(err)) throw new NotSupportedError((err as Error).message);
    throw err;
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener(
      'abort',
      () => {
        clearTimeout(t);
        resolve();
      },
      { once: true },
    );
  });
}
