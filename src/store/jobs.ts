/**
 * Jobs: storing a submitted job with its tasks, the job's state (conditional on core's JOB_TRANSITIONS), its task
 * counts, cancellation, and the small reads the engine needs. Decides nothing: what to store comes from the engine.
 */
import type { Kysely } from 'kysely';
import {
  EXECUTION_TRANSITIONS,
  JOB_TRANSITIONS,
  OPEN_TASK_STATES,
  TERMINAL_JOB_STATES,
  type Demand,
  type ProbeState,
  type TaskCounts,
  type TaskPlan,
} from '../core/index.js';
import { JobSpecSchema, type Failure, type JobSpec, type JobState } from '../protocol/index.js';
import { newId, requireTransaction, type StoreCapabilities } from './db.js';
import type { Database, JobKind } from './schema.js';

/** A job to store: its spec and tasks, the verification policy of each task, and what escrow funds (µcr). */
export interface NewJob {
  buyerId: string;
  spec: JobSpec;
  demand: Demand;
  tasks: readonly TaskPlan[];
  policy: { replicas: number; quorum: number; maxExecutions: number; maxErrors: number; maxError: number | null };
  /** Executions escrow funds per task at submission. */
  fundedPerTask: number;
  /** The most one execution can cost, µcr. */
  executionMaxCost: number;
  /** Whose job (default a buyer's): the platform's spot-check or re-verification replays a task. */
  kind?: JobKind;
  /** For a replay: the task it replays, the task count its environment shows, and (spot-check) the known answer. */
  replay?: { of: string; taskCount: number; expectedVerdict: string | null };
  /** Hold the tasks until a determinism probe of task 0 agrees (core/probe.ts). */
  probe?: boolean;
}

/** A job's owner, state and settlement, as the engine reads it. Times epoch ms. */
export interface JobHeader {
  buyerId: string;
  state: JobState;
  createdAt: number;
  finishedAt: number | null;
  settled: boolean;
  queueTimeoutMs: number;
}

export class JobStore {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly caps: StoreCapabilities,
  ) {}

  /** Inserts a job (state queued) and its tasks (queued). Returns the new job id. In a transaction. */
  async insert(job: NewJob, now: number): Promise<string> {
    requireTransaction(this.db);
    const jobId = newId('job');
    await this.db
      .insertInto('jobs')
      .values({
        id: jobId,
        buyer_id: job.buyerId,
        name: job.spec.name ?? null,
        spec: JSON.stringify(job.spec),
        state: 'queued',
        cpus: job.spec.resources.cpus,
        memory_mb: job.spec.resources.memoryMb,
        network: job.spec.network ? 1 : 0,
        task_count: job.replay?.taskCount ?? job.tasks.length,
        created_at: now,
        finished_at: null,
        revision: 0,
        image: job.spec.image,
        demand: JSON.stringify(job.demand),
        mode: job.spec.verification.mode,
        execution_max_cost: job.executionMaxCost,
        queue_timeout_ms: job.spec.queueTimeoutSeconds * 1000,
        settled_at: null,
        tasks_queued: job.tasks.length,
        tasks_running: 0,
        tasks_verified: 0,
        tasks_failed: 0,
        tasks_cancelled: 0,
        kind: job.kind ?? 'buyer',
        probe: job.probe ? 'pending' : null,
      })
      .execute();
    const rows = job.tasks.map((t) => ({
      id: newId('task'),
      job_id: jobId,
      idx: t.index,
      params: JSON.stringify(t.params),
      state: 'queued' as const,
      target: job.policy.replicas,
      quorum: job.policy.quorum,
      max_executions: job.policy.maxExecutions,
      max_errors: job.policy.maxErrors,
      verdict: null,
      failure: null,
      created_at: now,
      updated_at: now,
      revision: 0,
      funded: job.fundedPerTask,
      alone: 0,
      max_error: job.policy.maxError,
      canary: 0,
      expected_verdict: job.replay?.expectedVerdict ?? null,
      replay_of: job.replay?.of ?? null,
      audit: null,
      result_execution_id: null,
    }));
    for (let i = 0; i < rows.length; i += 500)
      await this.db
        .insertInto('tasks')
        .values(rows.slice(i, i + 500))
        .execute();
    return jobId;
  }

  /**
   * Moves a job to `to` if core's JOB_TRANSITIONS allow it from its current state (finished_at set when `to` is
   * terminal). Returns false when it was in no state `to` may follow (e.g. already ended). In a transaction.
   */
  async setState(jobId: string, to: JobState, now: number): Promise<boolean> {
    requireTransaction(this.db);
    const r = await this.db
      .updateTable('jobs')
      .set((eb) => ({
        state: to,
        finished_at: TERMINAL_JOB_STATES.includes(to) ? now : null,
        revision: eb('revision', '+', 1),
      }))
      .where('id', '=', jobId)
      .where('state', 'in', JOB_TRANSITIONS[to])
      .executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }

  /**
   * Locks job rows for the rest of the transaction (PostgreSQL `FOR UPDATE`, in id order so two transactions
   * locking several jobs cannot deadlock; nothing on SQLite, whose transactions run one at a time).
   * Lock order (README): a job before its tasks, tasks before their executions.
   */
  async lock(jobIds: Iterable<string>): Promise<void> {
    if (!this.caps.skipLocked) return;
    const ids = [...new Set(jobIds)].sort();
    for (let i = 0; i < ids.length; i += 500) {
      await this.db
        .selectFrom('jobs')
        .select('id')
        .where('id', 'in', ids.slice(i, i + 500))
        .orderBy('id')
        .forUpdate()
        .execute();
    }
  }

  /** The job's state and task counts (for a roll-up), or null. */
  async taskCounts(jobId: string): Promise<{ state: JobState; counts: TaskCounts } | null> {
    const r = await this.db
      .selectFrom('jobs')
      .select(['state', 'tasks_queued', 'tasks_running', 'tasks_verified', 'tasks_failed', 'tasks_cancelled'])
      .where('id', '=', jobId)
      .executeTakeFirst();
    if (!r) return null;
    return {
      state: r.state,
      counts: {
        queued: r.tasks_queued,
        running: r.tasks_running,
        verified: r.tasks_verified,
        failed: r.tasks_failed,
        cancelled: r.tasks_cancelled,
      },
    };
  }

  /**
   * Ends what is open of a job: open tasks → `to` (cancelled, or failed with `failure`; counts moved), their assigned,
   * running and reported executions → cancelled with `failure` and desired stop. The caller moves the job itself (or
   * rolls it up). Returns the ids of the executions cancelled. In a transaction.
   */
  async cancelOpenWork(
    jobId: string,
    failure: Failure,
    now: number,
    to: 'cancelled' | 'failed' = 'cancelled',
  ): Promise<string[]> {
    requireTransaction(this.db);
    await this.db
      .updateTable('tasks')
      .set((eb) => ({
        state: to,
        updated_at: now,
        revision: eb('revision', '+', 1),
        ...(to === 'failed' ? { failure: JSON.stringify(failure) } : {}),
      }))
      .where('job_id', '=', jobId)
      .where('state', 'in', OPEN_TASK_STATES)
      .execute();
    const ended = to === 'failed' ? 'tasks_failed' : 'tasks_cancelled';
    await this.db
      .updateTable('jobs')
      .set((eb) => ({
        [ended]: eb(eb(ended, '+', eb.ref('tasks_queued')), '+', eb.ref('tasks_running')),
        tasks_queued: 0,
        tasks_running: 0,
      }))
      .where('id', '=', jobId)
      .execute();
    const rows = await this.db
      .updateTable('executions')
      .set((eb) => ({
        state: 'cancelled',
        desired: 'stop',
        finished_at: now,
        lease_expires_at: null,
        revision: eb('revision', '+', 1),
        failure: JSON.stringify(failure),
      }))
      .where('job_id', '=', jobId)
      .where('state', 'in', EXECUTION_TRANSITIONS.cancelled)
      .returning('id')
      .execute();
    return rows.map((r) => r.id);
  }

  /** Moves the job's determinism probe from `from` to `to` (conditional); false when it was not at `from`. */
  async setProbe(jobId: string, from: ProbeState, to: ProbeState): Promise<boolean> {
    requireTransaction(this.db);
    const u = await this.db
      .updateTable('jobs')
      .set({ probe: to })
      .where('id', '=', jobId)
      .where('probe', '=', from)
      .executeTakeFirst();
    return Number(u.numUpdatedRows) > 0;
  }

  /** The job's owner, state and timing, or null. */
  async header(jobId: string): Promise<JobHeader | null> {
    const r = await this.db
      .selectFrom('jobs')
      .select(['buyer_id', 'state', 'created_at', 'finished_at', 'settled_at', 'queue_timeout_ms'])
      .where('id', '=', jobId)
      .executeTakeFirst();
    return r
      ? {
          buyerId: r.buyer_id,
          state: r.state,
          createdAt: Number(r.created_at),
          finishedAt: r.finished_at === null ? null : Number(r.finished_at),
          settled: r.settled_at !== null,
          queueTimeoutMs: Number(r.queue_timeout_ms),
        }
      : null;
  }

  /** Appends an entry to the job's history (its buyer reads it in the job view). In a transaction. */
  async addHistory(jobId: string, at: number, kind: string, taskIndex: number | null, message: string): Promise<void> {
    requireTransaction(this.db);
    await this.db
      .insertInto('job_events')
      .values({ job_id: jobId, at, kind, task_index: taskIndex, message })
      .execute();
  }

  /** A buyer's open tasks (queued or running) across its unsettled jobs (index jobs_buyer_settled). */
  async openTasksOf(buyerId: string): Promise<number> {
    const r = await this.db
      .selectFrom('jobs')
      .select((eb) => eb.fn.sum<number | string | null>(eb('tasks_queued', '+', eb.ref('tasks_running'))).as('n'))
      .where('buyer_id', '=', buyerId)
      .where('settled_at', 'is', null)
      .executeTakeFirst();
    return Number(r?.n ?? 0);
  }

  /** The job's stored spec, or null. */
  async spec(jobId: string): Promise<JobSpec | null> {
    const r = await this.db.selectFrom('jobs').select('spec').where('id', '=', jobId).executeTakeFirst();
    return r ? JobSpecSchema.parse(JSON.parse(r.spec)) : null;
  }

  /** The job's stored demand (what each execution needs), or null. */
  async demand(jobId: string): Promise<Demand | null> {
    const r = await this.db.selectFrom('jobs').select('demand').where('id', '=', jobId).executeTakeFirst();
    return r ? (JSON.parse(r.demand) as Demand) : null;
  }

  /** Executions of a job per agent id (any state). */
  async executionsPerAgent(jobId: string): Promise<Map<string, number>> {
    const rows = await this.db
      .selectFrom('executions')
      .select(['agent_id', (eb) => eb.fn.countAll<number>().as('n')])
      .where('job_id', '=', jobId)
      .groupBy('agent_id')
      .execute();
    return new Map(rows.map((r) => [r.agent_id, Number(r.n)]));
  }

  /** The oldest `updated_at` among the job's open tasks (ms), or null: the queue timeout counts from it. */
  async oldestOpenTaskUpdate(jobId: string): Promise<number | null> {
    const row = await this.db
      .selectFrom('tasks')
      .select((eb) => eb.fn.min<number>('updated_at').as('t'))
      .where('job_id', '=', jobId)
      .where('state', 'in', OPEN_TASK_STATES)
      .executeTakeFirst();
    return row?.t === null || row?.t === undefined ? null : Number(row.t);
  }
}
