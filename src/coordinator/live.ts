/**
 * The live hub behind `GET /v1/events`: turns the engine's events (engine/events.ts) and live output into
 * per-subscriber Server-Sent Events, keeping tenants apart.
 *
 * - A job the engine touched is re-read (debounced) and its `job` event is sent when its state or task counts
 *   changed since last sent, each of its executions' `execution` event when that execution's state changed.
 * - `log` events come from agents' live output (routes-agents.ts); `network` every 5 s; a `: ping` comment every 15 s.
 * - Who sees what: `job` and `log` events go to the job's buyer; `execution` events to the job's buyer and to the
 *   provider whose agent runs it. A subscriber with a buyer key is a buyer, with a provider key a provider, with an
 *   admin key both (for its own account only). Nobody gets another tenant's events.
 *
 * The engine's events fire on the coordinator that made the change, so with several coordinators on one
 * PostgreSQL database a subscriber hears only what its own coordinator did (and the agents' output sent to it):
 * work done elsewhere shows up on the next change this coordinator makes to that job, or not at all.
 */
import type { Logger } from 'pino';
import type { Engine, EngineEventMap } from '../engine/index.js';
import type { ExecutionState, LiveEvent, LogEvent } from '../protocol/index.js';
import type { LiveJob, Role, Store } from '../store/index.js';

/** One open event stream. `send`/`comment` write to it; `end` closes it (coordinator stopping). */
export interface LiveSubscriber {
  accountId: string;
  scope: Role;
  /** Only events about this job (network events and pings still come). */
  jobId?: string;
  send(e: LiveEvent): void;
  comment(text: string): void;
  end(): void;
}

/** Timings of the hub, ms. */
export interface LiveHubOptions {
  networkIntervalMs: number;
  pingIntervalMs: number;
  debounceMs: number;
}
/** 5 s network events, 15 s pings, 50 ms to gather a burst of changes to one job. */
export const DEFAULT_LIVE_OPTIONS: Readonly<LiveHubOptions> = Object.freeze({
  networkIntervalMs: 5_000,
  pingIntervalMs: 15_000,
  debounceMs: 50,
});

/** Most jobs and executions whose last sent state is remembered (the oldest are forgotten first). */
const REMEMBERED = 20_000;

/** A Map that forgets its oldest entries past `max`. */
class Recent<V> extends Map<string, V> {
  constructor(private readonly max: number) {
    super();
  }
  override set(key: string, value: V): this {
    this.delete(key);
    super.set(key, value);
    if (this.size > this.max) this.delete(this.keys().next().value!);
    return this;
  }
}

export class LiveHub {
  private readonly subs = new Set<LiveSubscriber>();
  private readonly pending = new Set<string>();
  private readonly lastJob = new Recent<string>(REMEMBERED);
  private readonly lastExecution = new Recent<ExecutionState>(REMEMBERED);
  private flushTimer: NodeJS.Timeout | null = null;
  private flushing: Promise<void> = Promise.resolve();
  private timers: NodeJS.Timeout[] = [];
  private readonly detach: Array<() => void> = [];

  constructor(
    private readonly store: Store,
    private readonly engine: Engine,
    private readonly log: Logger,
    private readonly opts: LiveHubOptions = DEFAULT_LIVE_OPTIONS,
  ) {
    const on = <K extends keyof EngineEventMap>(event: K, jobIdOf: (...a: EngineEventMap[K]) => string) => {
      const listener = (...a: EngineEventMap[K]) => this.touch(jobIdOf(...a));
      engine.events.on(event, listener as never);
      this.detach.push(() => engine.events.off(event, listener as never));
    };
    on('jobTouched', (e) => e.jobId);
    on('dispatched', (e) => e.jobId);
    on('taskDecided', (e) => e.jobId);
    on('executionSettled', (e) => e.jobId);
    on('jobEnded', (e) => e.jobId);
  }

  /** Adds a subscriber; returns the function that removes it. */
  subscribe(sub: LiveSubscriber): () => void {
    this.subs.add(sub);
    if (this.timers.length === 0) {
      this.timers = [
        setInterval(() => {
          void this.sendNetwork();
        }, this.opts.networkIntervalMs),
        setInterval(() => {
          for (const s of this.subs) s.comment('ping');
        }, this.opts.pingIntervalMs),
      ];
      for (const t of this.timers) t.unref();
    }
    return () => {
      this.subs.delete(sub);
      if (this.subs.size === 0) {
        for (const t of this.timers) clearInterval(t);
        this.timers = [];
      }
    };
  }

  /** Open streams now. */
  get subscriberCount(): number {
    return this.subs.size;
  }

  /** Notes that `jobId` may have changed; it is re-read after the debounce. */
  touch(jobId: string): void {
    if (this.subs.size === 0) return;
    this.pending.add(jobId);
    this.flushTimer ??= setTimeout(() => {
      this.flushTimer = null;
      this.flushing = this.flushing.then(() => this.flush());
    }, this.opts.debounceMs);
  }

  /** Sends live output of an execution of `buyerId`'s job to that buyer's subscribers. */
  publishLog(buyerId: string, data: LogEvent): void {
    for (const s of this.subs) if (this.sees(s, data.jobId, buyerId, null)) s.send({ event: 'log', data });
  }

  /** Ends every stream and stops listening to the engine. */
  close(): void {
    for (const d of this.detach.splice(0)) d();
    if (this.flushTimer) clearTimeout(this.flushTimer);
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    for (const s of [...this.subs]) s.end();
    this.subs.clear();
  }

  /** Whether `s` may see events of `jobId` bought by `buyerId` (and, for an execution, run by `providerId`). */
  private sees(s: LiveSubscriber, jobId: string, buyerId: string, providerId: string | null): boolean {
    if (s.jobId !== undefined && s.jobId !== jobId) return false;
    const buyer = s.scope !== 'provider' && s.accountId === buyerId;
    const provider = s.scope !== 'buyer' && providerId !== null && s.accountId === providerId;
    return buyer || provider;
  }

  private async flush(): Promise<void> {
    const jobs = [...this.pending];
    this.pending.clear();
    for (const jobId of jobs) {
      if (this.subs.size === 0) return;
      try {
        const job = await this.store.live.job(jobId);
        if (job) this.emitJob(job);
      } catch (err) {
        this.log.warn({ err, jobId }, 'cannot read a job for the event stream');
      }
    }
  }

  private emitJob(job: LiveJob): void {
    const data = { jobId: job.jobId, state: job.state, tasks: job.tasks };
    const key = JSON.stringify(data);
    if (this.lastJob.get(job.jobId) !== key) {
      this.lastJob.set(job.jobId, key);
      for (const s of this.subs) if (this.sees(s, job.jobId, job.buyerId, null)) s.send({ event: 'job', data });
    }
    for (const e of job.executions) {
      if (this.lastExecution.get(e.executionId) === e.state) continue;
      this.lastExecution.set(e.executionId, e.state);
      const ev: LiveEvent = {
        event: 'execution',
        data: {
          jobId: job.jobId,
          taskId: e.taskId,
          executionId: e.executionId,
          state: e.state,
          agentName: e.agentName,
        },
      };
      for (const s of this.subs) if (this.sees(s, job.jobId, job.buyerId, e.providerId)) s.send(ev);
    }
  }

  private async sendNetwork(): Promise<void> {
    try {
      const now = this.engine.now();
      const n = await this.store.live.network(now - this.engine.config.agentTtlMs);
      for (const s of this.subs) s.send({ event: 'network', data: { at: now, ...n } });
    } catch (err) {
      this.log.warn({ err }, 'cannot read the network numbers for the event stream');
    }
  }
}
