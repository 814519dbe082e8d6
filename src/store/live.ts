/**
 * Reads for live views: a job's state, task counts and executions as they are now (the coordinator's event
 * stream), the network's numbers now, and the time series of the dashboard's charts (per-minute activity,
 * recently decided tasks, a provider's earnings per hour). Indexed reads with integer-division buckets
 * (`t / width`, integer on both SQLite and PostgreSQL bigint columns).
 */
import { sql, type Kysely } from 'kysely';
import { accountLedger } from '../core/index.js';
import type { ExecutionState, JobState } from '../protocol/index.js';
import type { Database } from './schema.js';
import type { SnapshotStore } from './snapshot.js';

/** A job now, with who may see what of it: its buyer, and per execution the provider that runs it. */
export interface LiveJob {
  jobId: string;
  buyerId: string;
  state: JobState;
  tasks: { total: number; verified: number; failed: number };
  executions: Array<{
    executionId: string;
    taskId: string;
    state: ExecutionState;
    agentName: string;
    providerId: string;
  }>;
}

/** The network now: open tasks wanting executions, agents heard from recently, executions running. */
export interface LiveNetwork {
  queueDepth: number;
  agentsOnline: number;
  runningExecutions: number;
}

/** One minute of activity: `t` its start (epoch ms). */
export interface MinutePoint {
  t: number;
  jobsSubmitted: number;
  jobsFinished: number;
  executionsValid: number;
  executionsInvalid: number;
}

/** A decided task: its job's buyer (for the caller to decide whether to show the job id), and the valid/invalid votes. */
export interface DecidedTask {
  at: number;
  jobId: string;
  buyerId: string;
  taskIndex: number;
  outcome: 'verified' | 'failed';
  agreed: number;
  outvoted: number;
}

const MINUTE_MS = 60_000;
const HOUR_MS = 3_600_000;
/**
 * A minute that ended this long ago (ms) no longer changes: its counts are read once and kept. The margin covers
 * coordinators' clocks that lag (each stamps its own writes) and transactions that commit late.
 */
const SETTLED_AFTER_MS = 2 * MINUTE_MS;
/** Settled minutes kept in memory (a day's), oldest dropped first. */
const SETTLED_KEPT = 1_440;

export class LiveStore {
  /** Per-minute activity of settled minutes, by minute number (epoch ms / MINUTE_MS). */
  private readonly settled = new Map<number, MinutePoint>();

  constructor(
    private readonly db: Kysely<Database>,
    private readonly snapshot: SnapshotStore,
  ) {}

  /** The job `jobId` now; null when there is none. Reads every execution of the job (one indexed query); task counts come from the job row. */
  async job(jobId: string): Promise<LiveJob | null> {
    const job = await this.db
      .selectFrom('jobs')
      .select(['id', 'buyer_id', 'state', 'task_count', 'tasks_verified', 'tasks_failed'])
      .where('id', '=', jobId)
      .executeTakeFirst();
    if (!job) return null;
    const executions = await this.db
      .selectFrom('executions')
      .innerJoin('agents', 'agents.id', 'executions.agent_id')
      .select(['executions.id', 'executions.task_id', 'executions.state', 'executions.provider_id', 'agents.name'])
      .where('executions.job_id', '=', jobId)
      .orderBy('executions.created_at')
      .execute();
    return {
      jobId,
      buyerId: job.buyer_id,
      state: job.state,
      tasks: { total: job.task_count, verified: job.tasks_verified, failed: job.tasks_failed },
      executions: executions.map((e) => ({
        executionId: e.id,
        taskId: e.task_id,
        state: e.state,
        agentName: e.name,
        providerId: e.provider_id,
      })),
    };
  }

  /** The network now; agents last seen at or after `onlineSince` (epoch ms) count as online. */
  async network(onlineSince: number): Promise<LiveNetwork> {
    const agents = await this.db
      .selectFrom('agents')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('last_seen_at', '>=', onlineSince)
      .executeTakeFirst();
    const running = await this.db
      .selectFrom('executions')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('state', '=', 'running')
      .executeTakeFirst();
    return {
      queueDepth: await this.snapshot.wantingCount(),
      agentsOnline: Number(agents?.n ?? 0),
      runningExecutions: Number(running?.n ?? 0),
    };
  }

  /**
   * Activity per minute for the `minutes` minutes up to `now` (epoch ms), oldest first, every minute present:
   * jobs submitted (created) and finished, executions that ended valid or invalid (by their report time). Minutes
   * that ended over SETTLED_AFTER_MS ago are read once and kept, so a poll reads only the last few minutes' rows,
   * whatever the history and the window.
   */
  async minutes(now: number, minutes: number): Promise<MinutePoint[]> {
    const first = Math.floor(now / MINUTE_MS) - minutes + 1;
    const settledBelow = Math.floor((now - SETTLED_AFTER_MS) / MINUTE_MS);
    let from = first;
    while (from < settledBelow && this.settled.has(from)) from++;
    const read = await this.readMinutes(from, first + minutes - from);
    for (const p of read) {
      const m = p.t / MINUTE_MS;
      if (m < settledBelow) this.settled.set(m, p);
    }
    for (const m of this.settled.keys()) {
      if (this.settled.size <= SETTLED_KEPT) break;
      this.settled.delete(m); // insertion order: oldest read first
    }
    const kept = Array.from({ length: from - first }, (_, i) => ({ ...this.settled.get(first + i)! }));
    return [...kept, ...read];
  }

  /** Activity of `count` minutes from minute number `first` (epoch ms / MINUTE_MS), from the tables. */
  private async readMinutes(first: number, count: number): Promise<MinutePoint[]> {
    const since = first * MINUTE_MS;
    const bucket = (col: string) => sql<number>`${sql.ref(col)} / ${sql.lit(MINUTE_MS)}`;
    const submitted = await this.db
      .selectFrom('jobs')
      .select([bucket('created_at').as('b'), (eb) => eb.fn.countAll<number>().as('n')])
      .where('created_at', '>=', since)
      .groupBy(bucket('created_at'))
      .execute();
    const finished = await this.db
      .selectFrom('jobs')
      .select([bucket('finished_at').as('b'), (eb) => eb.fn.countAll<number>().as('n')])
      .where('finished_at', '>=', since)
      .groupBy(bucket('finished_at'))
      .execute();
    const graded = await this.db
      .selectFrom('executions')
      .select([bucket('finished_at').as('b'), 'state', (eb) => eb.fn.countAll<number>().as('n')])
      .where('finished_at', '>=', since)
      // Every ended state is counted and the others dropped below: a filter on state would lead the planner to the
      // state index, which reads the whole history (executions_finished_state covers this read).
      .groupBy([bucket('finished_at'), 'state'])
      .execute();
    const points: MinutePoint[] = Array.from({ length: count }, (_, i) => ({
      t: (first + i) * MINUTE_MS,
      jobsSubmitted: 0,
      jobsFinished: 0,
      executionsValid: 0,
      executionsInvalid: 0,
    }));
    const at = (b: unknown) => points[Number(b) - first];
    for (const r of submitted) {
      const p = at(r.b);
      if (p) p.jobsSubmitted += Number(r.n);
    }
    for (const r of finished) {
      const p = at(r.b);
      if (p) p.jobsFinished += Number(r.n);
    }
    for (const r of graded) {
      const p = at(r.b);
      if (p && r.state === 'valid') p.executionsValid += Number(r.n);
      else if (p && r.state === 'invalid') p.executionsInvalid += Number(r.n);
    }
    return points;
  }

  /**
   * The `limit` most recently decided tasks (verified or failed), newest first, with their valid and invalid
   * executions. One index range per state (tasks_state_updated, newest first), merged: the cost is `limit`, not the
   * history.
   */
  async recentlyDecided(limit: number): Promise<DecidedTask[]> {
    const newest = (state: 'verified' | 'failed') =>
      this.db
        .selectFrom('tasks')
        .innerJoin('jobs', 'jobs.id', 'tasks.job_id')
        .select([
          'tasks.id',
          'tasks.updated_at',
          'tasks.job_id',
          'jobs.buyer_id',
          'tasks.idx',
          'tasks.state',
          (eb) =>
            eb
              .selectFrom('executions')
              .select(eb.fn.countAll<number>().as('n'))
              .whereRef('executions.task_id', '=', 'tasks.id')
              .where('executions.state', '=', 'valid')
              .as('agreed'),
          (eb) =>
            eb
              .selectFrom('executions')
              .select(eb.fn.countAll<number>().as('n'))
              .whereRef('executions.task_id', '=', 'tasks.id')
              .where('executions.state', '=', 'invalid')
              .as('outvoted'),
        ])
        .where('tasks.state', '=', state)
        .orderBy('tasks.updated_at', 'desc')
        .orderBy('tasks.id', 'desc')
        .limit(limit)
        .execute();
    const rows = [...(await newest('verified')), ...(await newest('failed'))]
      .sort((a, b) => Number(b.updated_at) - Number(a.updated_at) || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0))
      .slice(0, limit);
    return rows.map((r) => ({
      at: Number(r.updated_at),
      jobId: r.job_id,
      buyerId: r.buyer_id,
      taskIndex: r.idx,
      outcome: r.state === 'verified' ? ('verified' as const) : ('failed' as const),
      agreed: Number(r.agreed ?? 0),
      outvoted: Number(r.outvoted ?? 0),
    }));
  }

  /**
   * Payments credited to `accountId` per hour for the `hours` hours up to `now`, oldest first, every hour present:
   * `t` the hour's start (epoch ms), `micro` µcr.
   */
  async earnings(accountId: string, now: number, hours: number): Promise<Array<{ t: number; micro: number }>> {
    const first = Math.floor(now / HOUR_MS) - hours + 1;
    const bucket = sql<number>`created_at / ${sql.lit(HOUR_MS)}`;
    const rows = await this.db
      .selectFrom('ledger_entries')
      .select([bucket.as('b'), (eb) => eb.fn.sum<number>('amount').as('micro')])
      .where('account', '=', accountLedger(accountId))
      .where('kind', '=', 'payment')
      .where('amount', '>', 0)
      .where('created_at', '>=', first * HOUR_MS)
      .groupBy(bucket)
      .execute();
    const points = Array.from({ length: hours }, (_, i) => ({ t: (first + i) * HOUR_MS, micro: 0 }));
    for (const r of rows) {
      const p = points[Number(r.b) - first];
      if (p) p.micro += Number(r.micro);
    }
    return points;
  }
}
