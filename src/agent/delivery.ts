/**
 * Getting a finished execution's report to the coordinator. The report is built once (blobs uploaded) and
 * stored in the state database before it is sent, then sent until the coordinator acknowledges it (row
 * deleted) or refuses it. Each attempt goes to the agent's current coordinator and, when that one is out of
 * reach, to the others of the network (connection.ts `Coordinators`: they share one database, so any of them
 * may record it). Transient failures (unreachable, timed out, 5xx) are retried with capped exponential
 * backoff for as long as the agent holds the execution — the grace period ends that (connection.ts), not a
 * count of tries. A refusal as stale (`stale_lease`, 409) or unknown (404) means the lease is gone: the
 * coordinator rescheduled or cancelled the execution and the result is discarded, never counted twice.
 */
import type { Logger } from 'pino';
import { ApiError, type DeqoClient } from '../client/index.js';
import type { ReportRequest } from '../protocol/index.js';
import type { Coordinators } from './connection.js';
import { failureReport } from './report-body.js';
import type { AgentState } from './state.js';

/** A report request gets no answer for this long: it is retried, ms. */
const REPORT_TIMEOUT_MS = 30_000;
/** First retry delay, ms; doubles per attempt up to RETRY_MAX_MS. */
const RETRY_BASE_MS = 500;
const RETRY_MAX_MS = 15_000;

/** The coordinator could not be reached or did not answer properly: trying again later may work. */
export function isTransient(err: unknown): boolean {
  if (!(err instanceof ApiError)) return false;
  return err.retryable || err.status === 0 || err.status >= 500 || err.code === 'bad_response';
}

/** Delay before retry number `attempt` (0-based), ms: 500 ms doubling, capped at 15 s. */
export function retryDelayMs(attempt: number): number {
  return Math.min(RETRY_BASE_MS * 2 ** Math.min(attempt, 16), RETRY_MAX_MS);
}

/** Builds a report, uploading its blobs through `client` (the coordinator the attempt goes to). */
export type BuildReport = (client: DeqoClient) => Promise<ReportRequest>;

/** How a delivery ended: acknowledged, refused (lease lost or report invalid), or abandoned (signal aborted). */
export type Delivery = 'acknowledged' | 'refused' | 'abandoned';

/** The execution a report is for. */
export interface ReportTarget {
  executionId: string;
  fencingToken: number;
  /** Logger carrying executionId (and jobId, taskIndex when known). */
  log: Logger;
  /** Aborting abandons the delivery between attempts (the agent is stopping, or the grace period ran out). */
  signal: AbortSignal;
  /** Whether the coordinator was out of reach (or the agent down) since the lease was taken: explains a stale refusal. */
  leaseMayHaveLapsed: () => boolean;
}

/** Sends reports; one per agent. */
export class Deliverer {
  private readonly sleepers = new Set<() => void>();

  constructor(
    private readonly coordinators: Coordinators,
    private readonly state: AgentState,
    private readonly agentId: () => string,
  ) {}

  /** Ends every backoff wait now (the coordinator is reachable again). */
  wakeAll(): void {
    for (const wake of [...this.sleepers]) wake();
  }

  /**
   * Delivers the report of `t`: `stored` when it was built before, else `build(client)` (uploading its blobs
   * through `client`; then stored, with `persist`). A build that fails for a non-transient reason is replaced by an
   * `agent_error` report saying why. Never throws.
   */
  async deliver(
    t: ReportTarget,
    stored: ReportRequest | null,
    build: BuildReport,
    persist: boolean,
  ): Promise<Delivery> {
    let report = stored;
    let failedInTransit = false;
    for (let attempt = 0; ; attempt++) {
      if (t.signal.aborted) return 'abandoned';
      try {
        const { body, via } = await this.coordinators.call(async (client) => {
          let body = report;
          if (body === null) {
            body = await this.build(t, () => build(client));
            report = body;
            if (persist) this.persist(t, body);
          }
          try {
            await client.report(this.agentId(), t.executionId, body, AbortSignal.timeout(REPORT_TIMEOUT_MS));
          } catch (err) {
            // A coordinator may have recorded it without our hearing back: a later refusal may be our own report.
            if (isTransient(err)) failedInTransit = true;
            throw err;
          }
          return { body, via: client.baseUrl };
        });
        t.log.info(
          { outcome: body.outcome, reason: body.outcome === 'failed' ? body.reason : undefined, coordinator: via },
          'execution reported',
        );
        return 'acknowledged';
      } catch (err) {
        if (isTransient(err)) {
          const delay = retryDelayMs(attempt);
          t.log.warn(
            { err: (err as Error).message, attempt: attempt + 1, retryInMs: delay },
            report === null ? 'uploading the result failed; will retry' : 'report not delivered; will retry',
          );
          await this.sleep(delay, t.signal);
          continue;
        }
        this.refused(t, err, failedInTransit);
        return 'refused';
      }
    }
  }

  private async build(t: ReportTarget, build: () => Promise<ReportRequest>): Promise<ReportRequest> {
    try {
      return await build();
    } catch (err) {
      if (isTransient(err)) throw err;
      t.log.error({ err }, 'cannot package the result; reporting an agent error');
      return failureReport(
        t.fencingToken,
        'agent_error',
        `agent error while packaging the result: ${(err as Error).message}`,
      );
    }
  }

  private persist(t: ReportTarget, report: ReportRequest): void {
    try {
      this.state.reportReady(t.executionId, report, Date.now());
    } catch (err) {
      t.log.error(
        { err },
        'cannot store the report in the state database; sending it anyway (a restart now would lose it)',
      );
    }
  }

  private refused(t: ReportTarget, err: unknown, failedInTransit: boolean): void {
    const e = err instanceof ApiError ? err : undefined;
    if (e && (e.code === 'stale_lease' || e.status === 404)) {
      const why = t.leaseMayHaveLapsed()
        ? 'lease lost while disconnected: the coordinator rescheduled it; result discarded'
        : 'lease no longer held: the coordinator cancelled or rescheduled the execution; result discarded';
      t.log.warn(
        { code: e.code, status: e.status },
        failedInTransit ? `${why} (or an earlier attempt of this report was recorded before its answer was lost)` : why,
      );
      return;
    }
    t.log.error(
      { err: (err as Error).message, code: e?.code, status: e?.status },
      'report refused by the coordinator; result discarded',
    );
  }

  private sleep(ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        this.sleepers.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal.addEventListener('abort', done, { once: true });
      this.sleepers.add(done);
    });
  }
}
