/** Jobs and tasks: creation, views for buyers, results, cancellation. */
import type { Kysely } from 'kysely';
import {
  demandOf,
  EXECUTION_TRANSITIONS,
  DeqoError,
  escrowHoldTxn,
  formatCredits,
  toMicro,
  escrowLedger,
  executionMaxCost,
  FEES,
  fromMicro,
  fundedExecutions,
  rollUpJobState,
  TERMINAL_JOB_STATES,
  type TaskPlan,
} from '../core/index.js';
import {
  FailureSchema,
  JobSpecSchema,
  ManifestSchema,
  UsageSchema,
  type ExecutionView,
  type JobBilling,
  type JobSpec,
  type JobState,
  type JobSummary,
  type JobView,
  type TaskResult,
  type TaskView,
} from '../protocol/index.js';
import { newId, transact, type StoreCapabilities } from './db.js';
import { balanceOf, postTxn } from './ledger.js';
import type { Database } from './schema.js';

/** A new job's tasks with their verification policy. */
export interface NewJob {
  buyerId: string;
  spec: JobSpec;
  tasks: TaskPlan[];
  policy: { replicas: number; quorum: number; maxExecutions: number; maxErrors: number };
}

export class JobStore {
  constructor(private readonly db: Kysely<Database>) {}

  /**
   * Stores a job and its tasks, and moves its maximum cost from the buyer's credits into the job's escrow,
   * all in one transaction. Returns the job id and the escrow held (µcr). Throws DeqoError insufficient_funds
   * (naming the shortfall) when the buyer cannot afford it; nothing is stored then.
   */
  async createJob(job: NewJob, now: number): Promise<{ jobId: string; escrow: number }> {
    const jobId = newId('job');
    const maxCost = executionMaxCost(job.spec);
    const funded = fundedExecutions(job.spec.verification.mode, job.policy.replicas);
    const escrow = maxCost * funded * job.tasks.length;
    await transact(this.db, async (tx) => {
      await tx
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
          task_count: job.tasks.length,
          created_at: now,
          finished_at: null,
          revision: 0,
          image: job.spec.image,
          demand: JSON.stringify(demandOf(job.spec)),
          mode: job.spec.verification.mode,
          execution_max_cost: maxCost,
          queue_timeout_ms: job.spec.queueTimeoutSeconds * 1000,
          settled_at: null,
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
        funded,
        alone: 0,
      }));
      for (let i = 0; i < rows.length; i += 500)
        await tx
          .insertInto('tasks')
          .values(rows.slice(i, i + 500))
          .execute();
      if (escrow > 0) {
        try {
          await postTxn(
            tx,
            escrowHoldTxn(
              job.buyerId,
              jobId,
              escrow,
              `escrow for ${job.tasks.length} task(s) × ${funded} execution(s)`,
            ),
            now,
          );
        } catch (err) {
          if (!(err instanceof DeqoError) || err.code !== 'insufficient_funds') throw err;
          const d = err.details as { available: number; shortfall: number };
          throw new DeqoError(
            'insufficient_funds',
            `the job's escrow is ${formatCredits(escrow)} (${job.tasks.length} task(s) × ${funded} execution(s) × ` +
              `${formatCredits(maxCost)} at most each) but you have ${formatCredits(toMicro(d.available))}: short by ${formatCredits(toMicro(d.shortfall))}. ` +
              'Lower replicas, timeout or maxPrice (`deqo quote` prices it), or ask an admin for credits.',
            { ...d, needed: fromMicro(escrow) },
          );
        }
      }
    });
    return { jobId, escrow };
  }

  /** A job's money from its ledger postings, credits. */
  async billing(jobId: string): Promise<JobBilling> {
    const escrow = escrowLedger(jobId);
    const rows = await this.db
      .selectFrom('ledger_entries')
      .select(['kind', 'account', 'amount'])
      .where('job_id', '=', jobId)
      .execute();
    const sum = (f: (r: { kind: string; account: string; amount: number }) => boolean) =>
      rows.filter(f).reduce((acc, r) => acc + Number(r.amount), 0);
    const settled = await this.db.selectFrom('jobs').select('settled_at').where('id', '=', jobId).executeTakeFirst();
    return {
      escrowHeld: fromMicro(sum((r) => r.kind === 'escrow_hold' && r.account === escrow)),
      paid: fromMicro(0 - sum((r) => r.kind === 'payment' && r.account === escrow)),
      fees: fromMicro(sum((r) => r.account === FEES)),
      refunded: fromMicro(0 - sum((r) => r.kind === 'refund' && r.account === escrow)),
      inEscrow: fromMicro(await balanceOf(this.db, escrow)),
      settled: settled?.settled_at !== null && settled?.settled_at !== undefined,
    };
  }

  /** The job's row (no ownership check: callers check), or null. */
  async jobRow(jobId: string): Promise<Database['jobs'] | null> {
    return (await this.db.selectFrom('jobs').selectAll().where('id', '=', jobId).executeTakeFirst()) ?? null;
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
      .where('state', 'in', ['queued', 'running'])
      .executeTakeFirst();
    return row?.t === null || row?.t === undefined ? null : Number(row.t);
  }

  /** The job's owner and state, or null. */
  async jobHeader(jobId: string): Promise<{ buyerId: string; state: JobState } | null> {
    const row = await this.db
      .selectFrom('jobs')
      .select(['buyer_id', 'state'])
      .where('id', '=', jobId)
      .executeTakeFirst();
    return row ? { buyerId: row.buyer_id, state: row.state } : null;
  }

  /** Full view of a job (tasks and every execution), or null when missing or not the buyer's. */
  async jobView(jobId: string, buyerId: string): Promise<JobView | null> {
    const job = await this.db
      .selectFrom('jobs')
      .selectAll()
      .where('id', '=', jobId)
      .where('buyer_id', '=', buyerId)
      .executeTakeFirst();
    if (!job) return null;
    const tasks = await this.db.selectFrom('tasks').selectAll().where('job_id', '=', jobId).orderBy('idx').execute();
    const execs = await this.db
      .selectFrom('executions')
      .innerJoin('agents', 'agents.id', 'executions.agent_id')
      .selectAll('executions')
      .select('agents.name as agent_name')
      .where('executions.job_id', '=', jobId)
      .orderBy('executions.created_at')
      .execute();
    const byTask = new Map<string, ExecutionView[]>();
    for (const e of execs) byTask.set(e.task_id, [...(byTask.get(e.task_id) ?? []), toExecutionView(e)]);
    const taskViews: TaskView[] = tasks.map((t) => ({
      id: t.id,
      index: t.idx,
      params: JSON.parse(t.params),
      state: t.state,
      targetReplicas: t.target,
      resultHash: t.state === 'verified' ? t.verdict : null,
      failure: t.failure ? FailureSchema.parse(JSON.parse(t.failure)) : null,
      executions: byTask.get(t.id) ?? [],
    }));
    return {
      id: job.id,
      name: job.name,
      state: job.state,
      createdAt: Number(job.created_at),
      finishedAt: job.finished_at === null ? null : Number(job.finished_at),
      spec: JobSpecSchema.parse(JSON.parse(job.spec)),
      tasks: taskViews,
      billing: await this.billing(jobId),
    };
  }

  /** A buyer's jobs, newest first, with task counts. */
  async listJobs(buyerId: string, opts: { state?: JobState; limit: number }): Promise<JobSummary[]> {
    let q = this.db
      .selectFrom('jobs')
      .selectAll('jobs')
      .select((eb) => [
        eb
          .selectFrom('tasks')
          .select(eb.fn.countAll<number>().as('n'))
          .whereRef('tasks.job_id', '=', 'jobs.id')
          .where('tasks.state', '=', 'verified')
          .as('verified'),
        eb
          .selectFrom('tasks')
          .select(eb.fn.countAll<number>().as('n'))
          .whereRef('tasks.job_id', '=', 'jobs.id')
          .where('tasks.state', '=', 'failed')
          .as('failed'),
      ])
      .where('buyer_id', '=', buyerId)
      .orderBy('created_at', 'desc')
      .orderBy('id', 'desc')
      .limit(opts.limit);
    if (opts.state) q = q.where('state', '=', opts.state);
    const rows = await q.execute();
    return rows.map((r) => ({
      id: r.id,
      name: r.name,
      state: r.state,
      createdAt: Number(r.created_at),
      finishedAt: r.finished_at === null ? null : Number(r.finished_at),
      image: (JSON.parse(r.spec) as JobSpec).image,
      tasks: { total: r.task_count, verified: Number(r.verified ?? 0), failed: Number(r.failed ?? 0) },
    }));
  }

  /** Verified results per task: the earliest valid execution is the canonical one. Null when not the buyer's. */
  async jobResults(jobId: string, buyerId: string): Promise<{ state: JobState; tasks: TaskResult[] } | null> {
    const view = await this.jobView(jobId, buyerId);
    if (!view) return null;
    const manifests = await this.db
      .selectFrom('executions')
      .select(['id', 'manifest'])
      .where('job_id', '=', jobId)
      .where('state', '=', 'valid')
      .execute();
    const manifestOf = new Map(manifests.map((m) => [m.id, m.manifest]));
    const tasks = view.tasks.map((t): TaskResult => {
      const valid = t.executions.filter((e) => e.state === 'valid');
      const canonical = t.state === 'verified' ? valid[0] : undefined;
      const manifest = canonical ? manifestOf.get(canonical.id) : undefined;
      return {
        taskIndex: t.index,
        params: t.params,
        state: t.state,
        resultHash: t.resultHash,
        failure: t.failure,
        manifest: manifest ? ManifestSchema.parse(JSON.parse(manifest)) : null,
        outputsBlob: canonical?.outputsBlob ?? null,
        stdoutBlob: canonical?.stdoutBlob ?? valid[0]?.stdoutBlob ?? null,
        stderrBlob: canonical?.stderrBlob ?? valid[0]?.stderrBlob ?? null,
        agreedBy: valid.map((e) => ({ agentId: e.agentId, agentName: e.agentName, providerId: e.providerId })),
      };
    });
    return { state: view.state, tasks };
  }

  /**
   * Cancels a job: open tasks → cancelled, their assigned/running/reported executions → cancelled (desired stop).
   * Returns false when the job had already ended.
   */
  async cancelJob(jobId: string, now: number): Promise<boolean> {
    // The job row is written first, so it is locked before its tasks (README: lock order).
    return transact(this.db, async (tx) => {
      const r = await tx
        .updateTable('jobs')
        .set((eb) => ({ state: 'cancelled', finished_at: now, revision: eb('revision', '+', 1) }))
        .where('id', '=', jobId)
        .where('state', 'not in', TERMINAL_JOB_STATES)
        .executeTakeFirst();
      if (Number(r.numUpdatedRows) === 0) return false;
      await tx
        .updateTable('tasks')
        .set((eb) => ({ state: 'cancelled', updated_at: now, revision: eb('revision', '+', 1) }))
        .where('job_id', '=', jobId)
        .where('state', 'in', ['queued', 'running'])
        .execute();
      await tx
        .updateTable('executions')
        .set((eb) => ({
          state: 'cancelled',
          desired: 'stop',
          finished_at: now,
          revision: eb('revision', '+', 1),
          failure: JSON.stringify({ reason: 'cancelled', blame: 'none', message: 'the job was cancelled' }),
        }))
        .where('job_id', '=', jobId)
        .where('state', 'in', EXECUTION_TRANSITIONS.cancelled)
        .execute();
      return true;
    });
  }
}

/**
 * Locks job rows for the rest of the caller's transaction (PostgreSQL `FOR UPDATE`, in id order so that two
 * transactions locking several jobs cannot deadlock; nothing to do on SQLite, whose transactions run one at a
 * time). Lock order (README): a job before its tasks, tasks before their executions.
 */
export async function lockJobs(tx: Kysely<Database>, jobIds: Iterable<string>, caps: StoreCapabilities): Promise<void> {
  if (!caps.skipLocked) return;
  const ids = [...new Set(jobIds)].sort();
  for (let i = 0; i < ids.length; i += 500) {
    await tx
      .selectFrom('jobs')
      .select('id')
      .where('id', 'in', ids.slice(i, i + 500))
      .orderBy('id')
      .forUpdate()
      .execute();
  }
}

/** Locks the jobs of the given tasks (as lockJobs); nothing on SQLite. */
export async function lockJobsOfTasks(
  tx: Kysely<Database>,
  taskIds: readonly string[],
  caps: StoreCapabilities,
): Promise<void> {
  if (!caps.skipLocked) return;
  const jobIds: string[] = [];
  for (let i = 0; i < taskIds.length; i += 500) {
    jobIds.push(
      ...(
        await tx
          .selectFrom('tasks')
          .select('job_id')
          .where('id', 'in', taskIds.slice(i, i + 500))
          .execute()
      ).map((r) => r.job_id),
    );
  }
  await lockJobs(tx, jobIds, caps);
}

/**
 * Recomputes a job's state from its tasks and applies it conditionally, inside the caller's transaction.
 * The job row is locked first: two transactions that each decide one task of the same job would otherwise
 * each read the other's task as still open (READ COMMITTED) and the job would never end.
 */
export async function rollUpJob(
  tx: Kysely<Database>,
  jobId: string,
  now: number,
  caps: StoreCapabilities,
): Promise<void> {
  await lockJobs(tx, [jobId], caps);
  const tasks = await tx.selectFrom('tasks').select('state').where('job_id', '=', jobId).execute();
  const state = rollUpJobState(tasks.map((t) => t.state));
  const terminal = TERMINAL_JOB_STATES.includes(state);
  await tx
    .updateTable('jobs')
    .set((eb) => ({ state, finished_at: terminal ? now : null, revision: eb('revision', '+', 1) }))
    .where('id', '=', jobId)
    .where('state', 'not in', TERMINAL_JOB_STATES)
    .where('state', '!=', state)
    .execute();
}

function toExecutionView(e: Database['executions'] & { agent_name: string }): ExecutionView {
  return {
    id: e.id,
    taskId: e.task_id,
    agentId: e.agent_id,
    agentName: e.agent_name,
    providerId: e.provider_id,
    state: e.state,
    desired: e.desired,
    createdAt: Number(e.created_at),
    startedAt: e.started_at === null ? null : Number(e.started_at),
    finishedAt: e.finished_at === null ? null : Number(e.finished_at),
    exitCode: e.exit_code,
    resultHash: e.result_hash,
    failure: e.failure ? FailureSchema.parse(JSON.parse(e.failure)) : null,
    usage: e.usage ? UsageSchema.parse(JSON.parse(e.usage)) : null,
    stdoutBlob: e.stdout_blob,
    stderrBlob: e.stderr_blob,
    outputsBlob: e.outputs_blob,
    paid: e.paid === null ? null : fromMicro(Number(e.paid)),
  };
}
