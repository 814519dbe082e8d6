/**
 * Read models for buyers: a job with its tasks and executions, a buyer's job list, a job's money, and the
 * manifests of its valid executions (the engine picks the canonical one with core's rule). Reads only.
 */
import type { Kysely } from 'kysely';
import { escrowLedger, FEES, fromMicro } from '../core/index.js';
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
  type Manifest,
  type TaskState,
  type TaskView,
  TASK_PAGE_DEFAULT,
  TASK_PAGE_MAX,
} from '../protocol/index.js';
import { balanceOf } from './ledger.js';
import type { Database, JobKind } from './schema.js';

export class ViewStore {
  constructor(private readonly db: Kysely<Database>) {}

  /** A job's money from its ledger postings, credits. */
  async billing(jobId: string): Promise<JobBilling> {
    const escrow = escrowLedger(jobId);
    // Summed per kind and account in the database: an array job has an entry per execution.
    const rows = await this.db
      .selectFrom('ledger_entries')
      .select(['kind', 'account', (eb) => eb.fn.sum<number>('amount').as('amount')])
      .where('job_id', '=', jobId)
      .groupBy(['kind', 'account'])
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

  /**
   * A job with its task counts and one page of its tasks (index order, optionally only those in `page.state`), each
   * with every execution; null when missing or not the buyer's. Reads the page's tasks and their executions only, so
   * the cost is the page's, not the array's. `page.offset` counts among the matching tasks; `limit` Infinity reads
   * them all (the results of a job).
   */
  async jobView(
    jobId: string,
    buyerId: string,
    page: { offset: number; limit: number; state?: TaskState } = { offset: 0, limit: TASK_PAGE_DEFAULT },
  ): Promise<JobView | null> {
    const job = await this.db
      .selectFrom('jobs')
      .selectAll()
      .where('id', '=', jobId)
      .where('buyer_id', '=', buyerId)
      .executeTakeFirst();
    if (!job) return null;
    let q = this.db.selectFrom('tasks').selectAll().where('job_id', '=', jobId);
    if (page.state) q = q.where('state', '=', page.state);
    q = q.orderBy('idx');
    if (Number.isFinite(page.limit)) q = q.limit(page.limit).offset(page.offset);
    const tasks = await q.execute();
    const execs =
      tasks.length === 0
        ? []
        : await this.db
            .selectFrom('executions')
            .innerJoin('agents', 'agents.id', 'executions.agent_id')
            .selectAll('executions')
            .select('agents.name as agent_name')
            // All of a large job's tasks: read its executions (executions_job) rather than bind thousands of ids.
            .where((eb) =>
              tasks.length > TASK_PAGE_MAX
                ? eb('executions.job_id', '=', jobId)
                : eb(
                    'executions.task_id',
                    'in',
                    tasks.map((t) => t.id),
                  ),
            )
            .orderBy('executions.created_at')
            .execute();
    const byTask = new Map<string, ExecutionView[]>();
    for (const e of execs) {
      const list = byTask.get(e.task_id);
      if (list) list.push(toExecutionView(e));
      else byTask.set(e.task_id, [toExecutionView(e)]);
    }
    const taskViews: TaskView[] = tasks.map((t) => ({
      id: t.id,
      index: t.idx,
      params: JSON.parse(t.params) as TaskView['params'],
      state: t.state,
      targetReplicas: t.target,
      resultHash: t.state === 'verified' ? t.verdict : null,
      failure: t.failure ? FailureSchema.parse(JSON.parse(t.failure)) : null,
      executions: byTask.get(t.id) ?? [],
      audit: (t.audit as TaskView['audit']) ?? null,
    }));
    const taskCounts = {
      queued: job.tasks_queued,
      running: job.tasks_running,
      verified: job.tasks_verified,
      failed: job.tasks_failed,
      cancelled: job.tasks_cancelled,
    };
    const allTasks = Object.values(taskCounts).reduce((a, b) => a + b, 0);
    const history = await this.db
      .selectFrom('job_events')
      .select(['at', 'kind', 'task_index', 'message'])
      .where('job_id', '=', jobId)
      .orderBy('id')
      .execute();
    return {
      id: job.id,
      name: job.name,
      state: job.state,
      createdAt: Number(job.created_at),
      finishedAt: job.finished_at === null ? null : Number(job.finished_at),
      spec: JobSpecSchema.parse(JSON.parse(job.spec)),
      taskCounts,
      taskPage: {
        offset: page.offset,
        limit: page.limit,
        total: page.state ? taskCounts[page.state] : allTasks,
        state: page.state ?? null,
      },
      tasks: taskViews,
      billing: await this.billing(jobId),
      history: history.map((h) => ({ at: Number(h.at), kind: h.kind, taskIndex: h.task_index, message: h.message })),
      ...(job.probe ? { probe: job.probe } : {}),
    };
  }

  /** A buyer's jobs, newest first, with task counts (kept on the job row: no task is read). */
  async listJobs(
    buyerId: string,
    opts: { state?: JobState; limit: number; kinds?: readonly JobKind[] },
  ): Promise<JobSummary[]> {
    let q = this.db
      .selectFrom('jobs')
      .selectAll()
      .where('buyer_id', '=', buyerId)
      .where('kind', 'in', opts.kinds ?? ['buyer'])
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
      tasks: { total: r.task_count, verified: r.tasks_verified, failed: r.tasks_failed },
    }));
  }

  /**
   * The executions whose results stand for tasks of the job after a re-verification changed them (they belong to the
   * platform's re-verification job): by task id, with their manifest and blobs.
   */
  async replacedResults(jobId: string): Promise<
    Map<
      string,
      {
        executionId: string;
        manifest: Manifest | null;
        outputsBlob: string | null;
        stdoutBlob: string | null;
        stderrBlob: string | null;
        agentId: string;
        agentName: string;
        providerId: string;
      }
    >
  > {
    const rows = await this.db
      .selectFrom('tasks')
      .innerJoin('executions', 'executions.id', 'tasks.result_execution_id')
      .innerJoin('agents', 'agents.id', 'executions.agent_id')
      .select([
        'tasks.id as task_id',
        'executions.id',
        'executions.manifest',
        'executions.outputs_blob',
        'executions.stdout_blob',
        'executions.stderr_blob',
        'executions.agent_id',
        'executions.provider_id',
        'agents.name',
      ])
      .where('tasks.job_id', '=', jobId)
      .execute();
    return new Map(
      rows.map((r) => [
        r.task_id,
        {
          executionId: r.id,
          manifest: r.manifest ? ManifestSchema.parse(JSON.parse(r.manifest)) : null,
          outputsBlob: r.outputs_blob,
          stdoutBlob: r.stdout_blob,
          stderrBlob: r.stderr_blob,
          agentId: r.agent_id,
          agentName: r.name,
          providerId: r.provider_id,
        },
      ]),
    );
  }

  /** The manifests of a job's valid executions, by execution id. */
  async validManifests(jobId: string): Promise<Map<string, Manifest>> {
    const rows = await this.db
      .selectFrom('executions')
      .select(['id', 'manifest'])
      .where('job_id', '=', jobId)
      .where('state', '=', 'valid')
      .execute();
    const out = new Map<string, Manifest>();
    for (const r of rows) if (r.manifest) out.set(r.id, ManifestSchema.parse(JSON.parse(r.manifest)));
    return out;
  }
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
    ...(e.probe > 0 ? { probe: e.probe } : {}),
  };
}
