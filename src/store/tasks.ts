/**
 * Tasks: the verifier's read of a task and its votes, and the task's conditional writes. A task moves only along
 * core's TASK_TRANSITIONS and only at the revision its writer read (`WHERE revision = ?`), and every state change
 * moves the job's task counts in the same statement order (task row, then job row: lock order).
 */
import { sql, type ExpressionBuilder, type Kysely } from 'kysely';
import {
  ACTIVE_EXECUTION_STATES,
  OPEN_TASK_STATES,
  canTransition,
  standingOf,
  TASK_TRANSITIONS,
  type Demand,
  type ExecutionVote,
  type ProbeState,
  type Standing,
  type VerificationPolicy,
} from '../core/index.js';
import {
  FailureSchema,
  JobSpecSchema,
  type ExecutionState,
  type Failure,
  type JobSpec,
  type TaskState,
} from '../protocol/index.js';
import { requireTransaction } from './db.js';
import { OPEN_STATES } from './migration-literals.js';
import type { Database } from './schema.js';

/** A task as the verifier sees it. */
export interface TaskForVerification {
  id: string;
  jobId: string;
  buyerId: string;
  state: TaskState;
  target: number;
  verdict: string | null;
  revision: number;
  /** Executions escrow holds credits for; the target may not exceed it without a top-up. */
  funded: number;
  /** What escrow holds for one execution of this job, µcr (a top-up holds this per extra execution). */
  executionMaxCost: number;
  policy: VerificationPolicy;
  /** Whose job: a buyer's, or the platform's spot-check or re-verification. */
  jobKind: 'buyer' | 'spot_check' | 'audit';
  /** A spot-check's known answer; the task a replay replays. */
  expectedVerdict: string | null;
  replayOf: string | null;
  /** It ran alone (adaptive replication); its re-verification's state, if any. */
  alone: boolean;
  audit: string | null;
  index: number;
  /** The job allows its verified tasks to be replayed as spot-checks. */
  spotChecks: boolean;
  /** The job compares results under comparator rules (verification.compare): its results may differ within them. */
  tolerant: boolean;
  /** The job's determinism probe (core/probe.ts), or null without one. */
  probe: ProbeState | null;
  /** The ordinary executions (probe executions never vote) with their provider's standing now (the engine turns it into credibility). */
  votes: Array<Omit<ExecutionVote, 'credibility' | 'established'> & { standing: Standing }>;
}

/** Columns a task write may set besides its state. */
export interface TaskChanges {
  canary?: boolean;
  audit?: string | null;
  resultExecutionId?: string | null;
  target?: number;
  quorum?: number;
  alone?: boolean;
  funded?: number;
  verdict?: string | null;
  failure?: Failure | null;
}

export class TaskStore {
  constructor(private readonly db: Kysely<Database>) {}

  /** A task and its executions' votes, for the verifier; null if missing. */
  async forVerification(taskId: string): Promise<TaskForVerification | null> {
    const t = await this.db
      .selectFrom('tasks')
      .innerJoin('jobs', 'jobs.id', 'tasks.job_id')
      .selectAll('tasks')
      .select(['jobs.execution_max_cost', 'jobs.buyer_id', 'jobs.kind', 'jobs.spec', 'jobs.probe'])
      .where('tasks.id', '=', taskId)
      .executeTakeFirst();
    if (!t) return null;
    const ex = await this.db
      .selectFrom('executions')
      .leftJoin('reputation', 'reputation.provider_id', 'executions.provider_id')
      .select([
        'executions.id',
        'executions.state',
        'executions.verdict',
        'executions.exit_code',
        'executions.failure',
        'executions.finished_at',
        'executions.created_at',
        'executions.provider_id',
        'reputation.confirmed',
        'reputation.vouched',
        'reputation.caught_at',
      ])
      .where('executions.task_id', '=', taskId)
      .where('executions.probe', '=', 0)
      .execute();
    return {
      id: t.id,
      jobId: t.job_id,
      buyerId: t.buyer_id,
      state: t.state,
      target: t.target,
      verdict: t.verdict,
      revision: t.revision,
      funded: t.funded,
      executionMaxCost: Number(t.execution_max_cost),
      policy: { quorum: t.quorum, maxExecutions: t.max_executions, maxErrors: t.max_errors, maxError: t.max_error },
      jobKind: t.kind,
      expectedVerdict: t.expected_verdict,
      replayOf: t.replay_of,
      alone: t.alone === 1,
      audit: t.audit,
      index: t.idx,
      probe: t.probe,
      ...verificationFlags(t.spec),
      votes: ex.map((e) => ({
        id: e.id,
        state: e.state,
        verdict: e.verdict,
        exitCode: e.exit_code,
        failure: e.failure ? FailureSchema.parse(JSON.parse(e.failure)) : null,
        at: Number(e.finished_at ?? e.created_at),
        providerId: e.provider_id,
        standing: standingOf({
          confirmed: e.confirmed ?? 0,
          vouched: e.vouched === 1,
          caughtAt: e.caught_at === null || e.caught_at === undefined ? null : Number(e.caught_at),
        }),
      })),
    };
  }

  /**
   * Writes a task read at `revision`: sets `changes`, moves it to `to` when given (only if core's TASK_TRANSITIONS
   * allow it from its current state; the same state is always allowed), bumps the revision, and moves the job's
   * task counts. Returns the job id, or null when the task changed since (or the move is not allowed): the caller
   * re-reads and re-decides. In a transaction.
   */
  async write(
    taskId: string,
    revision: number,
    now: number,
    changes: TaskChanges,
    to?: TaskState,
  ): Promise<string | null> {
    requireTransaction(this.db);
    const cur = await this.db
      .selectFrom('tasks')
      .select(['state', 'job_id', 'revision'])
      .where('id', '=', taskId)
      .executeTakeFirst();
    if (!cur || cur.revision !== revision) return null;
    if (to !== undefined && to !== cur.state && !canTransition(TASK_TRANSITIONS, cur.state, to)) return null;
    const u = await this.db
      .updateTable('tasks')
      .set({
        ...(to !== undefined ? { state: to } : {}),
        ...(changes.target !== undefined ? { target: changes.target } : {}),
        ...(changes.quorum !== undefined ? { quorum: changes.quorum } : {}),
        ...(changes.alone !== undefined ? { alone: changes.alone ? 1 : 0 } : {}),
        ...(changes.funded !== undefined ? { funded: changes.funded } : {}),
        ...(changes.verdict !== undefined ? { verdict: changes.verdict } : {}),
        ...(changes.canary !== undefined ? { canary: changes.canary ? 1 : 0 } : {}),
        ...(changes.audit !== undefined ? { audit: changes.audit } : {}),
        ...(changes.resultExecutionId !== undefined ? { result_execution_id: changes.resultExecutionId } : {}),
        ...(changes.failure !== undefined
          ? { failure: changes.failure === null ? null : JSON.stringify(changes.failure) }
          : {}),
        revision: revision + 1,
        updated_at: now,
      })
      .where('id', '=', taskId)
      .where('revision', '=', revision)
      .executeTakeFirst();
    if (Number(u.numUpdatedRows) === 0) return null;
    if (to !== undefined && to !== cur.state) await this.moveCount(cur.job_id, cur.state, to);
    return cur.job_id;
  }

  /**
   * Marks tasks touched (updated_at = now, revision + 1) without a decision: a report or a lost execution changed
   * what the verifier would see. Bumping the revision makes a decision computed from older votes fail its check.
   */
  async touch(taskIds: readonly string[], now: number): Promise<void> {
    requireTransaction(this.db);
    for (let i = 0; i < taskIds.length; i += 500)
      await this.db
        .updateTable('tasks')
        .set((eb) => ({ updated_at: now, revision: eb('revision', '+', 1) }))
        .where('id', 'in', taskIds.slice(i, i + 500))
        .execute();
  }

  /** Moves one task from `from` to `to` in its job's counts. */
  private async moveCount(jobId: string, from: TaskState, to: TaskState): Promise<void> {
    const col = (s: TaskState) => `tasks_${s}` as const;
    await this.db
      .updateTable('jobs')
      .set((eb) => ({ [col(from)]: eb(col(from), '-', 1), [col(to)]: eb(col(to), '+', 1) }))
      .where('id', '=', jobId)
      .execute();
  }

  /**
   * Open tasks with results or errors but no execution in flight (assigned or running), least recently updated
   * first. Nothing else will trigger their verification, so if a coordinator stopped between recording a report
   * and deciding, only re-verifying these un-sticks the task. Returns task and job ids. Read among the open tasks
   * that ever had an ordinary execution (index tasks_state_placed), not the whole queue, and among the task 0s of jobs
   * whose determinism probe is pending (index jobs_probe; their probe pair is what waits for a decision). Tasks held
   * for a pending probe are not read.
   */
  async awaitingDecision(limit: number): Promise<Array<{ taskId: string; jobId: string }>> {
    const probes = await this.db
      .selectFrom('jobs')
      .innerJoin('tasks', 'tasks.job_id', 'jobs.id')
      .select(['tasks.id', 'tasks.job_id'])
      .where('jobs.probe', '=', 'pending')
      .where('tasks.idx', '=', 0)
      .where('tasks.state', 'in', OPEN_TASK_STATES)
      .where((eb) => undecided(eb))
      .orderBy('tasks.updated_at')
      .limit(limit)
      .execute();
    const tasks = await this.db
      .selectFrom('tasks')
      .innerJoin('jobs', 'jobs.id', 'tasks.job_id')
      .select(['tasks.id', 'tasks.job_id'])
      .where('tasks.state', 'in', OPEN_TASK_STATES)
      .where('tasks.executions_total', '>', 0)
      .where((eb) => eb.or([eb('jobs.probe', 'is', null), eb('jobs.probe', '!=', 'pending')]))
      .where((eb) => undecided(eb))
      .orderBy('tasks.updated_at')
      .limit(limit - probes.length)
      .execute();
    return [...probes, ...tasks].map((r) => ({ taskId: r.id, jobId: r.job_id }));
  }

  /**
   * Open tasks that waited longer than their job's queue timeout with nothing assigned or running and no change
   * (placement, result, lost execution) since: candidates for queue_timeout. With their revision, for the write.
   * Tasks held for a pending determinism probe are not (`probe`: task 0 of such a job, which stands for its probe).
   * Read job by job (open jobs, then each one's tasks past its timeout), so tasks within their timeout are not read.
   */
  async queueTimedOut(
    now: number,
    limit: number,
  ): Promise<Array<{ taskId: string; jobId: string; revision: number; queueTimeoutMs: number; probe: boolean }>> {
    const rows = await this.db
      .selectFrom('jobs')
      // Open jobs first, then each one's tasks by the partial index (job_id, updated_at): a CROSS JOIN keeps SQLite to
      // that order whatever its statistics say (PostgreSQL plans it as an inner join).
      .crossJoin('tasks')
      .whereRef('tasks.job_id', '=', 'jobs.id')
      .select(['tasks.id', 'tasks.job_id', 'tasks.revision', 'jobs.queue_timeout_ms', 'jobs.probe'])
      .where(sql<boolean>`jobs.state IN ${sql.raw(OPEN_STATES)} AND tasks.state IN ${sql.raw(OPEN_STATES)}`)
      .where((eb) => eb.or([eb('jobs.probe', 'is', null), eb('jobs.probe', '!=', 'pending'), eb('tasks.idx', '=', 0)]))
      .where((eb) => eb('tasks.updated_at', '<', eb(eb.val(now), '-', eb.ref('jobs.queue_timeout_ms'))))
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
      .limit(limit)
      .execute();
    return rows.map((r) => ({
      taskId: r.id,
      jobId: r.job_id,
      revision: r.revision,
      queueTimeoutMs: Number(r.queue_timeout_ms),
      probe: r.probe === 'pending',
    }));
  }

  /** A job's tasks with their revisions, by index. */
  async ofJob(jobId: string): Promise<Array<{ id: string; index: number; revision: number }>> {
    const rows = await this.db
      .selectFrom('tasks')
      .select(['id', 'idx', 'revision'])
      .where('job_id', '=', jobId)
      .orderBy('idx')
      .execute();
    return rows.map((r) => ({ id: r.id, index: r.idx, revision: r.revision }));
  }

  /** A task's parameters, or null. */
  async paramsOf(taskId: string): Promise<Record<string, string | number | boolean> | null> {
    const r = await this.db.selectFrom('tasks').select('params').where('id', '=', taskId).executeTakeFirst();
    return r ? (JSON.parse(r.params) as Record<string, string | number | boolean>) : null;
  }

  /**
   * Canaries the provider may be spot-checked with: tasks marked canary whose every execution, and every replay's,
   * ran on other providers; a random sample of at most `limit`, with what a replay needs (spec, index, parameters,
   * the job's task count, the verdict).
   */
  async canariesFor(providerId: string, limit: number): Promise<Canary[]> {
    const rows = await this.db
      .selectFrom('tasks')
      .innerJoin('jobs', 'jobs.id', 'tasks.job_id')
      .select([
        'tasks.id',
        'tasks.job_id',
        'tasks.idx',
        'tasks.params',
        'tasks.verdict',
        'jobs.spec',
        'jobs.task_count',
        'jobs.demand',
      ])
      .where('tasks.canary', '=', 1)
      .where('tasks.state', '=', 'verified')
      .where((eb) =>
        eb.not(
          eb.exists(
            eb
              .selectFrom('executions')
              .select('executions.id')
              .where('executions.provider_id', '=', providerId)
              .where((x) =>
                x.or([
                  x('executions.task_id', '=', x.ref('tasks.id')),
                  x(
                    'executions.task_id',
                    'in',
                    x.selectFrom('tasks as r').select('r.id').whereRef('r.replay_of', '=', 'tasks.id'),
                  ),
                ]),
              ),
          ),
        ),
      )
      .orderBy(sql`random()`)
      .limit(limit)
      .execute();
    return rows.map((r) => ({
      taskId: r.id,
      jobId: r.job_id,
      index: r.idx,
      params: JSON.parse(r.params) as Canary['params'],
      verdict: r.verdict!,
      spec: JobSpecSchema.parse(JSON.parse(r.spec)),
      taskCount: r.task_count,
      demand: JSON.parse(r.demand) as Demand,
    }));
  }

  /**
   * Verified tasks of buyers' jobs, not re-verified yet, where the provider has a valid execution, with what
   * backtracking reads of each (core/spotchecks.ts restedOn): quorum, whether it ran alone, its valid executions'
   * providers.
   */
  async verifiedWith(providerId: string): Promise<BacktrackCandidate[]> {
    // One query: each such task once per valid execution (its provider), grouped below. It starts from the provider's
    // valid executions (executions_provider_state) and a CROSS JOIN keeps SQLite to that order: the read is this
    // provider's history, not every verified task (an outvote is something a hostile pair can cause at will).
    const rows = await this.db
      .selectFrom('executions as mine')
      .crossJoin('tasks')
      .whereRef('tasks.id', '=', 'mine.task_id')
      .innerJoin('jobs', 'jobs.id', 'tasks.job_id')
      .innerJoin('executions as v', (j) => j.onRef('v.task_id', '=', 'tasks.id').on('v.state', '=', 'valid'))
      .select([
        'tasks.id',
        'tasks.job_id',
        'tasks.idx',
        'tasks.quorum',
        'tasks.alone',
        'tasks.verdict',
        'tasks.audit',
        'tasks.revision',
        'v.provider_id',
      ])
      .where('mine.provider_id', '=', providerId)
      .where('mine.state', '=', 'valid')
      .where('tasks.state', '=', 'verified')
      .where('tasks.audit', 'is', null)
      .where('jobs.kind', '=', 'buyer')
      .orderBy('tasks.id')
      .execute();
    const byTask = new Map<string, BacktrackCandidate>();
    for (const t of rows) {
      let c = byTask.get(t.id);
      if (!c) {
        c = {
          taskId: t.id,
          jobId: t.job_id,
          index: t.idx,
          quorum: t.quorum,
          alone: t.alone === 1,
          verdict: t.verdict,
          audit: t.audit,
          revision: t.revision,
          validProviders: [],
        };
        byTask.set(t.id, c);
      }
      c.validProviders.push(t.provider_id);
    }
    const out = [...byTask.values()];
    return out;
  }
}

/** A canary: a verified task a spot-check may replay, with what the replay needs. */
export interface Canary {
  taskId: string;
  jobId: string;
  index: number;
  params: Record<string, string | number | boolean>;
  verdict: string;
  spec: JobSpec;
  taskCount: number;
  demand: Demand;
}

/** A verified task with a provider's valid execution, as backtracking reads it. */
export interface BacktrackCandidate {
  taskId: string;
  jobId: string;
  index: number;
  quorum: number;
  alone: boolean;
  verdict: string | null;
  audit: string | null;
  revision: number;
  validProviders: string[];
}

/** What the verifier reads of a stored spec's verification: spot-checks allowed, comparator rules given. */
function verificationFlags(spec: string): { spotChecks: boolean; tolerant: boolean } {
  const v = (JSON.parse(spec) as { verification?: { spotChecks?: boolean; compare?: unknown[] } }).verification;
  return { spotChecks: v?.spotChecks === true, tolerant: (v?.compare?.length ?? 0) > 0 };
}

/** A task with a result or an error (reported, failed, lost) among its executions and none in flight. */
function undecided(eb: ExpressionBuilder<Database, 'tasks' | 'jobs'>) {
  const executions = (states: readonly ExecutionState[]) =>
    eb.exists(
      eb
        .selectFrom('executions')
        .select('executions.id')
        .whereRef('executions.task_id', '=', 'tasks.id')
        .where('executions.state', 'in', states),
    );
  return eb.and([executions(['reported', 'failed', 'lost']), eb.not(executions(ACTIVE_EXECUTION_STATES))]);
}
