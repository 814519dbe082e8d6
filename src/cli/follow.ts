/**
 * Following a job live: one progress line per task whenever its summary changes, until the job ends.
 *
 * It listens to the coordinator's event stream (`GET /v1/events?jobId=…`, Server-Sent Events, protocol/live.ts)
 * and re-reads the job (`GET /v1/jobs/:id`) once at start, when the stream opens, whenever a `job` or `execution`
 * event of the job arrives, and every `safetyMs` in case one was missed (a coordinator streams only what it did
 * itself, coordinator/live.ts). Without a stream it polls every `pollMs`: for good when the coordinator refuses
 * one (404 from a coordinator without it, 401, 403), until it is open again when it drops or cannot be reached
 * (reopened every `reconnectMs`). The lines are the same either way: they come from the re-read job, not events.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { ApiError, type DeqoClient } from '../client/index.js';
import { TERMINAL_JOB_STATES } from '../core/index.js';
import type { JobView, LiveEvent } from '../protocol/index.js';
import { taskLine } from './format.js';

/** How often followJob re-reads the job, ms. */
export interface FollowOptions {
  /** Without an event stream (default 500). A read that fails transiently is retried after twice this. */
  pollMs?: number;
  /** With one, in case an event was missed (default 10 000). */
  safetyMs?: number;
  /** Wait before reopening a stream that dropped or could not be reached (default 2 000). */
  reconnectMs?: number;
}

/**
 * Follows job `jobId` and writes a line to `out` when the job's state or a task's summary (taskLine) changes,
 * until the job is terminal; returns its final view. Transient errors (coordinator briefly unreachable) are
 * retried; any other ApiError of reading the job is thrown.
 */
export async function followJob(
  client: DeqoClient,
  jobId: string,
  out: (line: string) => void,
  opts: FollowOptions = {},
): Promise<JobView> {
  const { pollMs = 500, safetyMs = 10_000, reconnectMs = 2_000 } = opts;
  const wakeup = new Wakeup();
  const stop = new AbortController();
  let live = false;

  const listen = async (): Promise<void> => {
    const onOpen = (): void => {
      live = true;
      wakeup.wake(); // catch up on what happened before it opened
    };
    const onEvent = (e: LiveEvent): void => {
      if ((e.event === 'job' || e.event === 'execution') && e.data.jobId === jobId) wakeup.wake();
    };
    while (!stop.signal.aborted) {
      try {
        await client.events({ jobId, onOpen }, onEvent, stop.signal);
      } catch (err) {
        if (refused(err)) {
          live = false;
          return; // no event stream here: poll to the end
        }
      }
      if (stop.signal.aborted) return;
      live = false; // dropped or unreachable: poll until it is open again
      wakeup.wake();
      await delay(reconnectMs, undefined, { signal: stop.signal }).catch(() => undefined);
    }
  };
  const listening = listen();

  try {
    const last = new Map<number, string>();
    let lastState = '';
    for (;;) {
      wakeup.clear();
      let view: JobView;
      try {
        view = await client.getJob(jobId);
      } catch (err) {
        const e = err as { retryable?: boolean; retryAfterSec?: number };
        if (!e.retryable) throw err;
        // A rate limit says how long to wait (Retry-After).
        await wakeup.nap(Math.max(pollMs * 2, (e.retryAfterSec ?? 0) * 1000));
        continue;
      }
      const ended = TERMINAL_JOB_STATES.includes(view.state);
      if (view.state !== lastState && !ended) {
        out(`job ${jobId}: ${view.state}`);
        lastState = view.state;
      }
      if (view.taskPage.total <= view.tasks.length) {
        for (const t of view.tasks) {
          const line = taskLine(t);
          if (last.get(t.index) !== line) {
            out(`  ${line}`);
            last.set(t.index, line);
          }
        }
      } else {
        // An array larger than a page: its counts per state, when they change.
        const c = view.taskCounts;
        const line = `tasks: ${c.verified} verified, ${c.failed} failed, ${c.running} running, ${c.queued} queued`;
        if (last.get(-1) !== line) {
          out(`  ${line}`);
          last.set(-1, line);
        }
      }
      if (ended) out(`job ${jobId}: ${view.state}`);
      if (ended) return view;
      await wakeup.nap(live ? safetyMs : pollMs);
    }
  } finally {
    stop.abort();
    await listening;
  }
}

/** Whether the coordinator refused the event stream for good (4xx), rather than being down or dropping it. */
function refused(err: unknown): boolean {
  return err instanceof ApiError && !err.retryable && err.status >= 400 && err.status < 500;
}

/** A nap that wake() ends early; a wake() between naps makes the next one return at once. */
class Wakeup {
  private pending = false;
  private end: (() => void) | null = null;

  /** Something changed: end the nap now (or skip the next one). */
  wake(): void {
    this.pending = true;
    this.end?.();
  }

  /** Forgets earlier wakes (call before reading what they were about). */
  clear(): void {
    this.pending = false;
  }

  /** Resolves after `ms` or at the first wake(), whichever comes first. */
  nap(ms: number): Promise<void> {
    return new Promise((resolve) => {
      if (this.pending) return resolve();
      const timer = setTimeout(() => this.end?.(), ms);
      this.end = () => {
        clearTimeout(timer);
        this.end = null;
        resolve();
      };
    });
  }
}
