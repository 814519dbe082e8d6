/**
 * Leases: an agent claims its assigned executions (→ running, with a lease and a new fencing token), renews them
 * while it runs them, and loses them when they expire unrenewed. Every write is conditional on the state and, for
 * an agent's own writes, on the agent and its fencing token.
 */
import type { Kysely } from 'kysely';
import { EXECUTION_TRANSITIONS } from '../core/index.js';
import { JobSpecSchema, type Failure, type JobSpec } from '../protocol/index.js';
import { requireTransaction, type StoreCapabilities } from './db.js';
import type { Database } from './schema.js';

/** A claimed execution with what the agent needs to run it; `assignedAt` (epoch ms) is when it was placed. */
export interface ClaimedExecution {
  executionId: string;
  fencingToken: number;
  leaseExpiresAt: number;
  jobId: string;
  taskId: string;
  assignedAt: number;
  taskIndex: number;
  taskCount: number;
  params: Record<string, string | number | boolean>;
  spec: JobSpec;
}

/**
 * An execution whose lease ended unrenewed (`running`; `pastDeadline` when it ran past claim + timeout + grace) or
 * that was never claimed (`assigned`).
 */
export interface ExpiredLease {
  executionId: string;
  taskId: string;
  jobId: string;
  state: 'running' | 'assigned';
  pastDeadline: boolean;
}

export class LeaseStore {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly caps: StoreCapabilities,
  ) {}

  /**
   * Claims up to `max` of the agent's assigned executions: → running with a lease until `now + leaseTtlMs` and a new
   * fencing token. On PostgreSQL the rows are picked `FOR UPDATE SKIP LOCKED`, so a concurrent claim (the agent's
   * previous long-poll on another coordinator) takes other rows instead of waiting; the update stays conditional on
   * the state either way, so an execution is handed out once. In a transaction.
   */
  async claim(
    agentId: string,
    max: number,
    now: number,
    leaseTtlMs: number,
    deadlineGraceMs = Number.MAX_SAFE_INTEGER / 4,
  ): Promise<ClaimedExecution[]> {
    requireTransaction(this.db);
    const rows = await this.db
      .selectFrom('executions')
      .innerJoin('tasks', 'tasks.id', 'executions.task_id')
      .innerJoin('jobs', 'jobs.id', 'executions.job_id')
      .select([
        'executions.id',
        'executions.fencing_token',
        'executions.job_id',
        'executions.task_id',
        'executions.created_at',
        'tasks.idx',
        'tasks.params',
        'jobs.spec',
        'jobs.task_count',
      ])
      .where('executions.agent_id', '=', agentId)
      .where('executions.state', '=', 'assigned')
      .where('executions.desired', '=', 'run')
      .orderBy('executions.created_at')
      .limit(max)
      .$if(this.caps.skipLocked, (q) => q.forUpdate('executions').skipLocked())
      .execute();
    const claimed: ClaimedExecution[] = [];
    for (const r of rows) {
      const token = r.fencing_token + 1;
      const leaseExpiresAt = now + leaseTtlMs;
      const spec = JobSpecSchema.parse(JSON.parse(r.spec));
      const u = await this.db
        .updateTable('executions')
        .set((eb) => ({
          state: 'running',
          fencing_token: token,
          lease_expires_at: leaseExpiresAt,
          started_at: now,
          deadline_at: now + spec.resources.timeoutSeconds * 1000 + deadlineGraceMs,
          revision: eb('revision', '+', 1),
        }))
        .where('id', '=', r.id)
        .where('state', 'in', EXECUTION_TRANSITIONS.running)
        .executeTakeFirst();
      if (Number(u.numUpdatedRows) === 0) continue;
      claimed.push({
        executionId: r.id,
        fencingToken: token,
        leaseExpiresAt,
        jobId: r.job_id,
        taskId: r.task_id,
        assignedAt: Number(r.created_at),
        taskIndex: r.idx,
        taskCount: r.task_count,
        params: JSON.parse(r.params) as ClaimedExecution['params'],
        spec,
      });
    }
    return claimed;
  }

  /**
   * Extends the leases the agent still holds (matching fencing token, running, desired run, not past its deadline at
   * `now`) to `until`. Returns the executions it named that it must stop: lease lost, cancelled, past its deadline, or
   * unknown. In a transaction.
   */
  async renew(
    agentId: string,
    held: ReadonlyArray<{ executionId: string; fencingToken: number }>,
    now: number,
    until: number,
  ): Promise<string[]> {
    requireTransaction(this.db);
    const stop: string[] = [];
    for (const h of held) {
      const r = await this.db
        .updateTable('executions')
        .set({ lease_expires_at: until })
        .where('id', '=', h.executionId)
        .where('agent_id', '=', agentId)
        .where('state', '=', 'running')
        .where('fencing_token', '=', h.fencingToken)
        .where('desired', '=', 'run')
        .where((eb) => eb.or([eb('deadline_at', 'is', null), eb('deadline_at', '>', now)]))
        .executeTakeFirst();
      if (Number(r.numUpdatedRows) === 0) stop.push(h.executionId);
    }
    return stop;
  }

  /**
   * Extends every running lease that would end before `until` to `until` (a coordinator's restart grace, so agents
   * that could not reach it meanwhile may reconnect and report). Returns how many were extended. In a transaction.
   */
  async extendAll(until: number): Promise<number> {
    requireTransaction(this.db);
    const r = await this.db
      .updateTable('executions')
      .set({ lease_expires_at: until })
      .where('state', '=', 'running')
      .where('lease_expires_at', '<', until)
      .executeTakeFirst();
    return Number(r.numUpdatedRows);
  }

  /**
   * Leases that ran out: running executions whose lease expired before `now`, and assigned ones placed before
   * `unclaimedBefore` and never claimed. At most `limit`.
   */
  async expired(now: number, unclaimedBefore: number, limit: number): Promise<ExpiredLease[]> {
    const running = await this.db
      .selectFrom('executions')
      .select(['id', 'task_id', 'job_id', 'deadline_at'])
      .where('state', '=', 'running')
      .where('lease_expires_at', '<', now)
      .limit(limit)
      .execute();
    const assigned = await this.db
      .selectFrom('executions')
      .select(['id', 'task_id', 'job_id'])
      .where('state', '=', 'assigned')
      .where('created_at', '<', unclaimedBefore)
      .limit(limit)
      .execute();
    const view =
      (state: ExpiredLease['state']) =>
      (r: { id: string; task_id: string; job_id: string; deadline_at?: number | null }): ExpiredLease => ({
        executionId: r.id,
        taskId: r.task_id,
        jobId: r.job_id,
        state,
        pastDeadline: r.deadline_at !== null && r.deadline_at !== undefined && Number(r.deadline_at) < now,
      });
    return [...running.map(view('running')), ...assigned.map(view('assigned'))];
  }

  /**
   * Ends one lease as `lost` with `failure` if it is still what `expired` found: still running with its lease past
   * `now`, or still assigned and unclaimed. Returns false when the agent reported or renewed meanwhile. In a transaction.
   */
  async expire(e: ExpiredLease, now: number, failure: Failure): Promise<boolean> {
    requireTransaction(this.db);
    let q = this.db
      .updateTable('executions')
      .set((eb) => ({
        state: 'lost',
        desired: 'stop',
        finished_at: now,
        lease_expires_at: null,
        failure: JSON.stringify(failure),
        revision: eb('revision', '+', 1),
      }))
      .where('id', '=', e.executionId)
      .where('state', '=', e.state)
      .where('state', 'in', EXECUTION_TRANSITIONS.lost);
    if (e.state === 'running') q = q.where('lease_expires_at', '<', now);
    const r = await q.executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }
}
