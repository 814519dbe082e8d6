/**
 * Executions: the scheduler's snapshot, applying a plan, leases (claim, renew, expire), reports and
 * verification decisions. Every state change is a conditional update (`WHERE state IN (...)` and, for tasks,
 * `AND revision = ?`), so a stale writer changes nothing.
 */
import type { Kysely } from 'kysely';
import {
  ACTIVE_EXECUTION_STATES,
  escrowHoldTxn,
  EXECUTION_TRANSITIONS,
  gradeLateResult,
  type Decision,
  type ExecutionVote,
  type Placement,
  type VerificationPolicy,
} from '../core/index.js';
import {
  FailureSchema,
  JobSpecSchema,
  type ExecutionState,
  type Failure,
  type JobSpec,
  type Manifest,
  type Price,
  type TaskState,
  type Usage,
} from '../protocol/index.js';
import { newId, transact, type StoreCapabilities } from './db.js';
import { postTxn } from './ledger.js';
import { lockJobs, lockJobsOfTasks, rollUpJob } from './jobs.js';
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

/** A task as the verifier sees it. */
export interface TaskForVerification {
  id: string;
  jobId: string;
  state: TaskState;
  target: number;
  verdict: string | null;
  revision: number;
  /** Executions escrow holds credits for; the target may not exceed it without a top-up. */
  funded: number;
  /** What escrow holds for one execution of this job, µcr (a top-up holds this per extra execution). */
  executionMaxCost: number;
  policy: VerificationPolicy;
  votes: ExecutionVote[];
}

/** The end of an execution as recorded: `reported` results vote, `failed` are provider-side errors. */
export type ExecutionEnd =
  | {
      state: 'reported';
      verdict: string;
      exitCode: number | null;
      resultHash: string | null;
      manifest: Manifest | null;
      failure: Failure | null;
      usage: Usage | null;
      stdoutBlob: string | null;
      stderrBlob: string | null;
      outputsBlob: string | null;
    }
  | { state: 'failed'; failure: Failure; usage: Usage | null; stdoutBlob: string | null; stderrBlob: string | null };

/** An execution whose lease ended unrenewed (lease_expired) or that was never claimed (not_claimed). */
export interface LostExecution {
  executionId: string;
  taskId: string;
  jobId: string;
  reason: 'lease_expired' | 'not_claimed';
}

const OPEN_TASK: TaskState[] = ['queued', 'running'];

/** Thrown inside a transaction to roll it back when its conditional write found nothing to change. */
class NothingChanged extends Error {}

export class ExecutionStore {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly caps: StoreCapabilities,
  ) {}

  /**
   * Applies a plan: for each task, bumps its revision if unchanged since the snapshot, then inserts its new
   * executions as `assigned`, each with its agent's offer prices (what it will be paid at). A placement that
   * runs alone (adaptive replication) sets the task's target and quorum to 1. A task changed meanwhile is
   * skipped (the next round replans it). Returns the agents that received executions.
   * The plan's jobs are locked first (lock order: jobs, then tasks). Agents' capacity is not re-checked here:
   * callers run snapshot → plan → apply as one `exclusive('schedule')` step, so no other plan lands between.
   */
  async applyPlan(
    plan: readonly Placement[],
    revisions: ReadonlyMap<string, number>,
    prices: ReadonlyMap<string, Price>,
    now: number,
  ): Promise<Set<string>> {
    const byTask = new Map<string, Placement[]>();
    for (const p of plan) byTask.set(p.taskId, [...(byTask.get(p.taskId) ?? []), p]);
    return transact(this.db, async (tx) => {
      const touched = new Set<string>();
      await lockJobsOfTasks(tx, [...byTask.keys()], this.caps);
      for (const [taskId, ps] of byTask) {
        const rev = revisions.get(taskId);
        if (rev === undefined) continue;
        const alone = ps.length === 1 && ps[0]!.alone;
        const row = await tx
          .updateTable('tasks')
          .set({
            state: 'running',
            revision: rev + 1,
            updated_at: now,
            ...(alone ? { target: 1, quorum: 1, alone: 1 } : {}),
          })
          .where('id', '=', taskId)
          .where('revision', '=', rev)
          .where('state', 'in', OPEN_TASK)
          .returning('job_id')
          .executeTakeFirst();
        if (!row) continue;
        await tx
          .insertInto('executions')
          .values(
            ps.map((p) => ({
              id: newId('exec'),
              task_id: taskId,
              job_id: row.job_id,
              agent_id: p.agentId,
              provider_id: p.providerId,
              state: 'assigned' as const,
              desired: 'run' as const,
              fencing_token: 0,
              lease_expires_at: null,
              created_at: now,
              started_at: null,
              finished_at: null,
              exit_code: null,
              result_hash: null,
              verdict: null,
              failure: null,
              usage: null,
              manifest: null,
              stdout_blob: null,
              stderr_blob: null,
              outputs_blob: null,
              revision: 0,
              price: JSON.stringify(prices.get(p.agentId) ?? {}),
              paid: null,
              settled_at: null,
            })),
          )
          .execute();
        await tx
          .updateTable('jobs')
          .set((eb) => ({ state: 'running', revision: eb('revision', '+', 1) }))
          .where('id', '=', row.job_id)
          .where('state', '=', 'queued')
          .execute();
        for (const p of ps) touched.add(p.agentId);
      }
      return touched;
    });
  }

  /**
   * Claims up to `max` of the agent's assigned executions: → running with a lease and a new fencing token.
   * On PostgreSQL the rows are picked `FOR UPDATE SKIP LOCKED`, so a concurrent claim (the agent's previous
   * long-poll on another coordinator) takes other rows instead of waiting; the update stays conditional on
   * the state either way, so an execution is handed out once.
   */
  async claim(agentId: string, max: number, now: number, leaseTtlMs: number): Promise<ClaimedExecution[]> {
    return transact(this.db, async (tx) => {
      const rows = await tx
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
        const u = await tx
          .updateTable('executions')
          .set((eb) => ({
            state: 'running',
            fencing_token: token,
            lease_expires_at: leaseExpiresAt,
            started_at: now,
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
          params: JSON.parse(r.params),
          spec: JobSpecSchema.parse(JSON.parse(r.spec)),
        });
      }
      return claimed;
    });
  }

  /**
   * Extends the leases the agent still holds (matching fencing token, running, desired run).
   * Returns the executions it reported that it must stop: lease lost, cancelled, or unknown.
   */
  async renewLeases(
    agentId: string,
    held: ReadonlyArray<{ executionId: string; fencingToken: number }>,
    now: number,
    leaseTtlMs: number,
  ): Promise<string[]> {
    const stop: string[] = [];
    for (const h of held) {
      const r = await this.db
        .updateTable('executions')
        .set({ lease_expires_at: now + leaseTtlMs })
        .where('id', '=', h.executionId)
        .where('agent_id', '=', agentId)
        .where('state', '=', 'running')
        .where('fencing_token', '=', h.fencingToken)
        .where('desired', '=', 'run')
        .executeTakeFirst();
      if (Number(r.numUpdatedRows) === 0) stop.push(h.executionId);
    }
    return stop;
  }

  /**
   * Extends every running lease that would end before `until` to `until` (a coordinator restart's grace, so
   * agents that could not reach it meanwhile may reconnect and report). Returns how many were extended.
   */
  async extendLeases(until: number): Promise<number> {
    const r = await this.db
      .updateTable('executions')
      .set({ lease_expires_at: until })
      .where('state', '=', 'running')
      .where('lease_expires_at', '<', until)
      .executeTakeFirst();
    return Number(r.numUpdatedRows);
  }

  /**
   * Records an execution's end if the agent still holds its lease. Returns the task id, or null if stale.
   * The task's revision is bumped in the same transaction (task row first: lock order), so a verification
   * decision computed from votes read before this report can no longer apply (`WHERE revision = ?`).
   */
  async recordEnd(
    executionId: string,
    agentId: string,
    fencingToken: number,
    end: ExecutionEnd,
    now: number,
  ): Promise<string | null> {
    const common = {
      state: end.state,
      finished_at: now,
      lease_expires_at: null,
      failure: end.failure ? JSON.stringify(end.failure) : null,
      usage: end.usage ? JSON.stringify(end.usage) : null,
      stdout_blob: end.stdoutBlob,
      stderr_blob: end.stderrBlob,
    };
    const extra =
      end.state === 'reported'
        ? {
            verdict: end.verdict,
            exit_code: end.exitCode,
            result_hash: end.resultHash,
            outputs_blob: end.outputsBlob,
            manifest: end.manifest ? JSON.stringify(end.manifest) : null,
          }
        : {};
    try {
      return await transact(this.db, async (tx) => {
        await tx
          .updateTable('tasks')
          .set((eb) => ({ updated_at: now, revision: eb('revision', '+', 1) }))
          .where('id', '=', tx.selectFrom('executions').select('task_id').where('id', '=', executionId))
          .execute();
        const row = await tx
          .updateTable('executions')
          .set((eb) => ({ ...common, ...extra, revision: eb('revision', '+', 1) }))
          .where('id', '=', executionId)
          .where('agent_id', '=', agentId)
          .where('fencing_token', '=', fencingToken)
          .where('state', '=', 'running')
          .returning('task_id')
          .executeTakeFirst();
        if (!row) throw new NothingChanged();
        return row.task_id;
      });
    } catch (err) {
      if (err instanceof NothingChanged) return null;
      throw err;
    }
  }

  /** Who holds an execution and in which state, with its current fencing token, job and task; null if it does not exist. */
  async leaseOf(executionId: string): Promise<{
    agentId: string;
    providerId: string;
    state: ExecutionState;
    fencingToken: number;
    jobId: string;
    taskId: string;
  } | null> {
    const row = await this.db
      .selectFrom('executions')
      .select(['agent_id', 'provider_id', 'state', 'fencing_token', 'job_id', 'task_id'])
      .where('id', '=', executionId)
      .executeTakeFirst();
    return row
      ? {
          agentId: row.agent_id,
          providerId: row.provider_id,
          state: row.state,
          fencingToken: row.fencing_token,
          jobId: row.job_id,
          taskId: row.task_id,
        }
      : null;
  }

  /** The buyer of the job an execution belongs to, or null. */
  async buyerOf(executionId: string): Promise<string | null> {
    const row = await this.db
      .selectFrom('executions')
      .innerJoin('jobs', 'jobs.id', 'executions.job_id')
      .select('jobs.buyer_id')
      .where('executions.id', '=', executionId)
      .executeTakeFirst();
    return row?.buyer_id ?? null;
  }

  /** A task and its executions' votes, for the verifier; null if missing. */
  async taskForVerification(taskId: string): Promise<TaskForVerification | null> {
    const t = await this.db
      .selectFrom('tasks')
      .innerJoin('jobs', 'jobs.id', 'tasks.job_id')
      .selectAll('tasks')
      .select('jobs.execution_max_cost')
      .where('tasks.id', '=', taskId)
      .executeTakeFirst();
    if (!t) return null;
    const ex = await this.db
      .selectFrom('executions')
      .select(['id', 'state', 'verdict', 'exit_code', 'failure', 'finished_at', 'created_at'])
      .where('task_id', '=', taskId)
      .execute();
    return {
      id: t.id,
      jobId: t.job_id,
      state: t.state,
      target: t.target,
      verdict: t.verdict,
      revision: t.revision,
      funded: t.funded,
      executionMaxCost: Number(t.execution_max_cost),
      policy: { quorum: t.quorum, maxExecutions: t.max_executions, maxErrors: t.max_errors },
      votes: ex.map((e) => ({
        id: e.id,
        state: e.state,
        verdict: e.verdict,
        exitCode: e.exit_code,
        failure: e.failure ? FailureSchema.parse(JSON.parse(e.failure)) : null,
        at: Number(e.finished_at ?? e.created_at),
      })),
    };
  }

  /**
   * Applies a verification decision if the task is still at `revision`: task state and verdict, executions
   * valid / invalid / cancelled, job roll-up; a pending decision raising the target past what escrow funds
   * holds the top-up (topUpCost) from the buyer in the same transaction. Returns false when the task changed
   * meanwhile (caller re-decides). Throws DeqoError insufficient_funds, applying nothing, when the buyer cannot
   * fund the top-up. The job row is locked first (lock order: job, task, executions; the roll-up needs it anyway).
   */
  async applyDecision(task: TaskForVerification, d: Decision, now: number): Promise<boolean> {
    return transact(this.db, async (tx) => {
      await lockJobs(tx, [task.jobId], this.caps);
      if (d.kind === 'pending' && d.target > task.funded && !(await this.fund(tx, task, d.target, now))) return false;
      return this.applyDecisionIn(tx, task, d, now);
    });
  }

  /** Holds escrow for the task's executions beyond those funded (up to `target`); false when the task changed. */
  private async fund(tx: Kysely<Database>, task: TaskForVerification, target: number, now: number): Promise<boolean> {
    const job = await tx.selectFrom('jobs').select('buyer_id').where('id', '=', task.jobId).executeTakeFirstOrThrow();
    const u = await tx
      .updateTable('tasks')
      .set({ funded: target })
      .where('id', '=', task.id)
      .where('revision', '=', task.revision)
      .executeTakeFirst();
    if (Number(u.numUpdatedRows) === 0) return false;
    const amount = topUpCost(task, target);
    if (amount > 0)
      await postTxn(
        tx,
        escrowHoldTxn(job.buyer_id, task.jobId, amount, `escrow top-up: task needs ${target} executions`),
        now,
      );
    return true;
  }

  private async applyDecisionIn(
    tx: Kysely<Database>,
    task: TaskForVerification,
    d: Decision,
    now: number,
  ): Promise<boolean> {
    {
      const taskSet =
        d.kind === 'pending'
          ? { target: d.target }
          : {
              state: (d.kind === 'verified' ? 'verified' : 'failed') as TaskState,
              verdict: d.verdict,
              failure: d.kind === 'failed' ? JSON.stringify(d.failure) : null,
            };
      const u = await tx
        .updateTable('tasks')
        .set({ ...taskSet, revision: task.revision + 1, updated_at: now })
        .where('id', '=', task.id)
        .where('revision', '=', task.revision)
        .where('state', 'in', OPEN_TASK)
        .executeTakeFirst();
      if (Number(u.numUpdatedRows) === 0) return false;
      if (d.kind === 'pending') return true;
      await setExecutions(tx, d.valid, 'valid', now);
      await setExecutions(tx, d.invalid, 'invalid', now);
      if (d.cancel.length > 0) {
        await tx
          .updateTable('executions')
          .set((eb) => ({
            state: 'cancelled',
            desired: 'stop',
            finished_at: now,
            lease_expires_at: null,
            failure: JSON.stringify({
              reason: 'cancelled',
              blame: 'none',
              message: 'no longer needed: the task was decided',
            }),
            revision: eb('revision', '+', 1),
          }))
          .where('id', 'in', d.cancel)
          .where('state', 'in', EXECUTION_TRANSITIONS.cancelled)
          .execute();
      }
      await rollUpJob(tx, task.jobId, now, this.caps);
      return true;
    }
  }

  /** Grades results reported after their task was decided against its canonical verdict. */
  async gradeLateResults(taskId: string, canonicalVerdict: string | null, now: number): Promise<number> {
    const late = await this.db
      .selectFrom('executions')
      .select(['id', 'verdict'])
      .where('task_id', '=', taskId)
      .where('state', '=', 'reported')
      .execute();
    const graded = (g: 'valid' | 'invalid') =>
      late.filter((e) => gradeLateResult(canonicalVerdict, e.verdict ?? '') === g).map((e) => e.id);
    await setExecutions(this.db, graded('valid'), 'valid', now);
    await setExecutions(this.db, graded('invalid'), 'invalid', now);
    return late.length;
  }

  /**
   * Open tasks with results or errors but no execution in flight (assigned or running), least recently
   * updated first. Nothing else will trigger their verification, so if a coordinator stopped between recording
   * a report and applying the decision, only re-verifying these un-sticks the task. Returns task and job ids.
   */
  async tasksAwaitingDecision(limit: number): Promise<Array<{ taskId: string; jobId: string }>> {
    const rows = await this.db
      .selectFrom('tasks')
      .select(['tasks.id', 'tasks.job_id'])
      .where('tasks.state', 'in', OPEN_TASK)
      .where((eb) =>
        eb.exists(
          eb
            .selectFrom('executions')
            .select('executions.id')
            .whereRef('executions.task_id', '=', 'tasks.id')
            .where('executions.state', 'in', ['reported', 'failed', 'lost']),
        ),
      )
      .where((eb) =>
        eb.not(
          eb.exists(
            eb
              .selectFrom('executions')
              .select('executions.id')
              .whereRef('executions.task_id', '=', 'tasks.id')
              .where('executions.state', 'in', ACTIVE_EXECUTION_STATES),
          ),
        ),
      )
      .orderBy('tasks.updated_at')
      .limit(limit)
      .execute();
    return rows.map((r) => ({ taskId: r.id, jobId: r.job_id }));
  }

  /**
   * Ends leases that ran out: running executions whose lease expired → lost (lease_expired); assigned ones
   * not claimed within `claimTimeoutMs` → lost (not_claimed). Returns the executions lost.
   */
  async expireLeases(now: number, claimTimeoutMs: number): Promise<LostExecution[]> {
    const lost = (reason: string, message: string) => JSON.stringify({ reason, blame: 'provider', message });
    const returned = ['id', 'task_id', 'job_id'] as const;
    const a = await this.db
      .updateTable('executions')
      .set((eb) => ({
        state: 'lost',
        desired: 'stop',
        finished_at: now,
        lease_expires_at: null,
        failure: lost('lease_expired', 'the agent stopped renewing its lease (missed heartbeats)'),
        revision: eb('revision', '+', 1),
      }))
      .where('state', '=', 'running')
      .where('lease_expires_at', '<', now)
      .returning(returned)
      .execute();
    const b = await this.db
      .updateTable('executions')
      .set((eb) => ({
        state: 'lost',
        desired: 'stop',
        finished_at: now,
        failure: lost('not_claimed', 'the agent did not claim the execution in time'),
        revision: eb('revision', '+', 1),
      }))
      .where('state', '=', 'assigned')
      .where('created_at', '<', now - claimTimeoutMs)
      .returning(returned)
      .execute();
    const tasks = [...new Set([...a, ...b].map((r) => r.task_id))];
    for (let i = 0; i < tasks.length; i += 500)
      await this.db
        .updateTable('tasks')
        .set({ updated_at: now })
        .where('id', 'in', tasks.slice(i, i + 500))
        .execute();
    const view =
      (reason: LostExecution['reason']) =>
      (r: { id: string; task_id: string; job_id: string }): LostExecution => ({
        executionId: r.id,
        taskId: r.task_id,
        jobId: r.job_id,
        reason,
      });
    return [...a.map(view('lease_expired')), ...b.map(view('not_claimed'))];
  }

  /**
   * Fails open tasks that waited for a provider longer than their job's queue timeout: nothing assigned or
   * running and no change (placement, result, lost execution) for `queueTimeoutSeconds`. This includes a task
   * holding results that wait for a quorum no remaining provider can complete (every other one already failed
   * it): those results are cancelled, unpaid like a cancelled job's, since nothing could cross-check them.
   * Returns the job ids affected.
   */
  async expireQueuedTasks(now: number, limit: number): Promise<string[]> {
    const rows = await this.db
      .selectFrom('tasks')
      .innerJoin('jobs', 'jobs.id', 'tasks.job_id')
      .select(['tasks.id', 'tasks.job_id', 'tasks.revision', 'jobs.queue_timeout_ms'])
      .where('tasks.state', 'in', OPEN_TASK)
      .where((eb) => eb('tasks.updated_at', '<', eb(eb.val(now), '-', eb.ref('jobs.queue_timeout_ms'))))
      .where((eb) =>
        eb.not(
          eb.exists(
            eb
              .selectFrom('executions')
              .select('executions.id')
              .whereRef('executions.task_id', '=', 'tasks.id')
              .where('executions.state', 'in', ['assigned', 'running']),
          ),
        ),
      )
      .limit(limit)
      .execute();
    const jobs = new Set<string>();
    for (const r of rows) {
      const failure = JSON.stringify({
        reason: 'queue_timeout',
        blame: 'none',
        message: `no provider took this task within the queue timeout (${Math.round(Number(r.queue_timeout_ms) / 1000)} s); \`deqo explain ${r.job_id}\` shows why`,
      });
      const failed = await transact(this.db, async (tx) => {
        await lockJobs(tx, [r.job_id], this.caps);
        const u = await tx
          .updateTable('tasks')
          .set({ state: 'failed', failure, revision: r.revision + 1, updated_at: now })
          .where('id', '=', r.id)
          .where('revision', '=', r.revision)
          .where('state', 'in', OPEN_TASK)
          .executeTakeFirst();
        if (Number(u.numUpdatedRows) === 0) return false;
        await tx
          .updateTable('executions')
          .set((eb) => ({
            state: 'cancelled',
            desired: 'stop',
            failure: JSON.stringify({
              reason: 'cancelled',
              blame: 'none',
              message: 'the task timed out waiting for more replicas to cross-check this result',
            }),
            revision: eb('revision', '+', 1),
          }))
          .where('task_id', '=', r.id)
          .where('state', '=', 'reported')
          .execute();
        await rollUpJob(tx, r.job_id, now, this.caps);
        return true;
      });
      if (failed) jobs.add(r.job_id);
    }
    return [...jobs];
  }
}

/** Escrow (µcr) a task needs held before its target may rise to `target` executions; 0 when already funded. */
export function topUpCost(task: Pick<TaskForVerification, 'funded' | 'executionMaxCost'>, target: number): number {
  return Math.max(0, target - task.funded) * task.executionMaxCost;
}

async function setExecutions(
  db: Kysely<Database>,
  ids: readonly string[],
  state: Extract<ExecutionState, 'valid' | 'invalid'>,
  now: number,
): Promise<void> {
  if (ids.length === 0) return;
  await db
    .updateTable('executions')
    .set((eb) => ({ state, finished_at: eb.fn.coalesce('finished_at', eb.val(now)), revision: eb('revision', '+', 1) }))
    .where('id', 'in', ids)
    .where('state', 'in', EXECUTION_TRANSITIONS[state])
    .execute();
}
