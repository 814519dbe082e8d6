/**
 * Snapshots for the scheduler and for `explain`: open tasks with their job's demand and the counts of their
 * executions, agents with offers, free capacity, availability, reputation and quota, and runtime history for
 * prediction. Which tasks want executions, and where they go, is core's to decide (core/scheduler.ts).
 */
import { sql, type ExpressionBuilder, type Kysely, type Selection } from 'kysely';
import {
  ACTIVE_EXECUTION_STATES,
  cohortOf,
  credibility,
  isEstablished,
  reputationScore,
  standingOf,
  type CredibilityConfig,
  type Demand,
  type OpenJob,
  type OpenProbe,
  type OpenTask,
  type QuotaConfig,
  type RuntimeSample,
  type SchedAgent,
} from '../core/index.js';
import type { Price } from '../protocol/index.js';
import { parsedAvailability, parsedCapacity, parsedOffer } from './json-memo.js';
import { OPEN_STATES } from './migration-literals.js';
import type { ReputationStore } from './reputation.js';
import type { Database } from './schema.js';

/** A task row's own columns that scheduling reads (its execution counts aside). */
const TASK_ROW_COLUMNS = [
  'tasks.id',
  'tasks.job_id',
  'tasks.idx',
  'tasks.target',
  'tasks.max_executions',
  'tasks.funded',
  'tasks.revision',
  'tasks.quorum',
  'tasks.max_error',
  'tasks.replay_of',
] as const;

/** The task columns an OpenTask is made of: the row's, and the counts of its ordinary executions (migration 011). */
const TASK_COLUMNS = [
  ...TASK_ROW_COLUMNS,
  'tasks.executions_active',
  'tasks.executions_total',
  'tasks.executions_failed',
  'tasks.last_failure_at',
] as const;

/** Open tasks, as a literal so that the partial index of open tasks (migration 011) applies. */
const OPEN_TASK = sql<boolean>`tasks.state IN ${sql.raw(OPEN_STATES)}`;

/**
 * Tasks not held for their job's determinism probe: a job whose probe is pending has none of its tasks placed as
 * ordinary tasks (its task 0 is placed as the probe pair instead, `openProbes`). Needs the jobs row joined.
 */
const NOT_HELD = sql<boolean>`(jobs.probe IS NULL OR jobs.probe != 'pending')`;

/** Tasks whose counts leave room for another execution (core executionsWanted > 0). */
const WANTS_MORE = sql<boolean>`tasks.executions_active < tasks.target
  AND tasks.executions_total < tasks.max_executions AND tasks.executions_active < tasks.funded`;

/** A task row with its job's age, demand and mode as core's OpenTask. */
function openTaskOf(
  r: Selection<Database, 'tasks', (typeof TASK_COLUMNS)[number]>,
  job: { createdAt: number; demand: Demand; adaptive: boolean },
): OpenTask {
  return {
    taskId: r.id,
    jobId: r.job_id,
    jobCreatedAt: job.createdAt,
    index: r.idx,
    revision: r.revision,
    target: r.target,
    maxExecutions: r.max_executions,
    funded: r.funded,
    adaptive: job.adaptive,
    demand: job.demand,
    active: Number(r.executions_active),
    total: Number(r.executions_total),
    failures: Number(r.executions_failed),
    lastFailureAt: r.last_failure_at === null ? null : Number(r.last_failure_at),
    quorum: r.quorum,
    maxError: r.max_error,
    replayOf: r.replay_of,
  };
}

export class SnapshotStore {
  /** Parsed demands by their stored text (demandOf). */
  private readonly demands = new Map<string, Demand>();

  constructor(
    private readonly db: Kysely<Database>,
    private readonly reputation: ReputationStore,
  ) {}

  /**
   * Open tasks with the counts of their ordinary executions that scheduling reads (core/scheduler.ts `tasksWanting`
   * decides which want more), oldest job first; optionally only one job's. A job whose determinism probe is still
   * pending has its tasks held: none is read. Reads every open task: for `explain` and tests; a scheduling round
   * reads `openJobs` and `wantingTasks` instead.
   */
  async openTasks(jobId?: string): Promise<OpenTask[]> {
    let q = this.db
      .selectFrom('tasks')
      .innerJoin('jobs', 'jobs.id', 'tasks.job_id')
      .select(TASK_COLUMNS)
      .select(['jobs.created_at', 'jobs.demand', 'jobs.mode'])
      .where(OPEN_TASK)
      .where(NOT_HELD)
      .orderBy('jobs.created_at')
      .orderBy('tasks.idx');
    if (jobId) q = q.where('tasks.job_id', '=', jobId);
    const rows = await q.execute();
    return rows.map((r) =>
      openTaskOf(r, {
        createdAt: Number(r.created_at),
        demand: this.demandOf(r.demand),
        adaptive: r.mode === 'adaptive',
      }),
    );
  }

  /**
   * Jobs whose determinism probe is pending: their task 0, with the counts of its probe executions (every pair) and
   * the number of pairs placed (core/probe.ts `probesWanting` decides which want a pair), oldest job first;
   * optionally only one job's. Read through the index on jobs.probe, then the tasks' (job_id, idx); the counts are
   * taken from the executions (the counts on task rows are of ordinary executions only).
   */
  async openProbes(jobId?: string): Promise<OpenProbe[]> {
    const ofTask = (eb: ExpressionBuilder<Database, 'tasks' | 'jobs'>) =>
      eb.selectFrom('executions').whereRef('executions.task_id', '=', 'tasks.id').where('executions.probe', '>', 0);
    let q = this.db
      .selectFrom('jobs')
      // Pending jobs first (jobs_probe), then each one's task 0: a CROSS JOIN keeps SQLite to that order whatever its
      // statistics say; an inner join let it scan the open tasks (6 ms a round with 100,000 queued).
      .crossJoin('tasks')
      .whereRef('tasks.job_id', '=', 'jobs.id')
      .select([...TASK_ROW_COLUMNS, 'jobs.created_at', 'jobs.demand'])
      .select((eb) => [
        ofTask(eb)
          .select(eb.fn.countAll<number>().as('n'))
          .where('executions.state', 'in', ['assigned', 'running', 'reported'])
          .as('active'),
        ofTask(eb).select(eb.fn.countAll<number>().as('n')).as('total'),
        ofTask(eb)
          .select(eb.fn.countAll<number>().as('n'))
          .where('executions.state', 'in', ['lost', 'failed'])
          .as('failures'),
        ofTask(eb)
          .select((sb) => sb.fn.max('executions.finished_at').as('t'))
          .where('executions.state', 'in', ['lost', 'failed'])
          .as('last_failure_at'),
        ofTask(eb)
          .select((sb) => sb.fn.max('executions.probe').as('p'))
          .as('pairs'),
      ])
      .where('jobs.probe', '=', 'pending')
      .where('tasks.idx', '=', 0)
      .where(OPEN_TASK)
      .orderBy('jobs.created_at');
    if (jobId) q = q.where('tasks.job_id', '=', jobId);
    const rows = await q.execute();
    return rows.map((r) => ({
      taskId: r.id,
      jobId: r.job_id,
      jobCreatedAt: Number(r.created_at),
      index: r.idx,
      revision: r.revision,
      target: r.target,
      maxExecutions: r.max_executions,
      funded: r.funded,
      adaptive: false,
      demand: this.demandOf(r.demand),
      active: Number(r.active),
      total: Number(r.total),
      failures: Number(r.failures),
      lastFailureAt: r.last_failure_at === null ? null : Number(r.last_failure_at),
      quorum: r.quorum,
      maxError: r.max_error,
      replayOf: r.replay_of,
      pairs: Number(r.pairs ?? 0),
    }));
  }

  /**
   * Whether any open task wants another execution (by the counts on its row): the first row found. Tasks that want
   * none (their replicas all out) are passed over, and they are at most what agents are running. Tasks held for a
   * pending determinism probe are not counted (a waiting probe is `openProbes`).
   */
  async anyTaskWanting(): Promise<boolean> {
    const r = await this.db
      .selectFrom('tasks')
      .innerJoin('jobs', 'jobs.id', 'tasks.job_id')
      .select('tasks.id')
      .where(OPEN_TASK)
      .where(WANTS_MORE)
      .where(NOT_HELD)
      .limit(1)
      .executeTakeFirst();
    return r !== undefined;
  }

  /**
   * Open jobs (queued or running), oldest first: their buyer, demand (parsed once per distinct text) and open task
   * count; not those whose determinism probe is pending (their tasks are held). Reads job rows only, through the
   * partial index of open jobs (migration 011).
   */
  async openJobs(): Promise<OpenJob[]> {
    const rows = await this.db
      .selectFrom('jobs')
      .select(['id', 'buyer_id', 'created_at', 'demand', 'mode', 'tasks_queued', 'tasks_running'])
      .where(sql<boolean>`state IN ${sql.raw(OPEN_STATES)}`)
      .where(NOT_HELD)
      .orderBy('created_at')
      .execute();
    return rows.map((r) => ({
      jobId: r.id,
      buyerId: r.buyer_id,
      createdAt: Number(r.created_at),
      demandKey: r.demand,
      demand: this.demandOf(r.demand),
      adaptive: r.mode === 'adaptive',
      openTasks: r.tasks_queued + r.tasks_running,
    }));
  }

  /**
   * Up to `limit` open tasks of `jobs` (taken in the order given, each job's by index) that want more executions by
   * the counts on their rows (core executionsWanted > 0; retry backoff is core's to apply). Jobs are read in
   * batches whose open tasks fit in what is left of `limit`, a larger job alone with a LIMIT, so the rows read stay
   * near `limit` however long the queue behind them is. `jobs` come from `openJobs`, so none is held for a pending
   * determinism probe.
   */
  async wantingTasks(jobs: readonly OpenJob[], limit: number): Promise<Array<OpenTask & { buyerId: string }>> {
    const out: Array<OpenTask & { buyerId: string }> = [];
    const byId = new Map(jobs.map((j) => [j.jobId, j]));
    let i = 0;
    while (i < jobs.length && out.length < limit) {
      const left = limit - out.length;
      const start = i;
      let open = jobs[i++]!.openTasks;
      while (i < jobs.length && i - start < 500 && open + jobs[i]!.openTasks <= left) open += jobs[i++]!.openTasks;
      const rows = await this.db
        .selectFrom('tasks')
        .select(TASK_COLUMNS)
        .where(
          'tasks.job_id',
          'in',
          jobs.slice(start, i).map((j) => j.jobId),
        )
        .where(OPEN_TASK)
        .where(WANTS_MORE)
        .orderBy('tasks.job_id')
        .orderBy('tasks.idx')
        .limit(left)
        .execute();
      const tasks = rows.map((r) => {
        const j = byId.get(r.job_id)!;
        return { ...openTaskOf(r, j), buyerId: j.buyerId };
      });
      tasks.sort((a, b) => a.jobCreatedAt - b.jobCreatedAt || a.jobId.localeCompare(b.jobId) || a.index - b.index);
      out.push(...tasks);
    }
    return out.slice(0, limit);
  }

  /**
   * How many open tasks want more executions (by the counts on their rows): the queue depth shown to people. Tasks
   * held for a pending determinism probe are not counted.
   */
  async wantingCount(): Promise<number> {
    const r = await this.db
      .selectFrom('tasks')
      .innerJoin('jobs', 'jobs.id', 'tasks.job_id')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where(OPEN_TASK)
      .where(WANTS_MORE)
      .where(NOT_HELD)
      .executeTakeFirst();
    return Number(r?.n ?? 0);
  }

  /** A job's demand from its stored text, parsed once per distinct text (a small cache, cleared when it grows). */
  private demandOf(text: string): Demand {
    let d = this.demands.get(text);
    if (!d) {
      if (this.demands.size >= 10_000) this.demands.clear();
      d = JSON.parse(text) as Demand;
      this.demands.set(text, d);
    }
    return d;
  }

  /** Every execution each task had: its provider and state, by task id. */
  async executionsOf(taskIds: readonly string[]): Promise<Map<string, Array<{ providerId: string; state: string }>>> {
    const out = new Map<string, Array<{ providerId: string; state: string }>>();
    for (let i = 0; i < taskIds.length; i += 500) {
      const ex = await this.db
        .selectFrom('executions')
        .select(['task_id', 'provider_id', 'state'])
        .where('task_id', 'in', taskIds.slice(i, i + 500))
        .execute();
      for (const e of ex) {
        const x = { providerId: e.provider_id, state: e.state };
        const xs = out.get(e.task_id);
        if (xs) xs.push(x);
        else out.set(e.task_id, [x]);
      }
    }
    return out;
  }

  /**
   * Agents with their offers, free capacity and provider's record (newcomers' with quota `quota`); only those seen
   * since `onlineSince` unless `includeOffline`. With the active executions (assigned, running) on them per buyer:
   * fair share's measure of what each buyer already has.
   */
  async agents(
    now: number,
    onlineSince: number,
    includeOffline: boolean,
    policy: { quota: QuotaConfig; credibility: CredibilityConfig },
  ): Promise<{ agents: SchedAgent[]; prices: Map<string, Price>; runningByBuyer: Map<string, number> }> {
    let q = this.db
      .selectFrom('agents')
      .innerJoin('accounts', 'accounts.id', 'agents.provider_id')
      .select([
        'agents.id',
        'agents.provider_id',
        'agents.name',
        'agents.capacity',
        'agents.offer',
        'agents.availability',
        'agents.last_seen_at',
        'agents.network_prefix',
        'accounts.created_at as provider_created_at',
      ]);
    if (!includeOffline) q = q.where('agents.last_seen_at', '>=', onlineSince);
    const rows = await q.execute();
    if (rows.length === 0) return { agents: [], prices: new Map(), runningByBuyer: new Map() };
    const active = await this.db
      .selectFrom('executions')
      .innerJoin('jobs', 'jobs.id', 'executions.job_id')
      .select(['executions.agent_id', 'jobs.cpus', 'jobs.memory_mb', 'jobs.demand', 'jobs.buyer_id'])
      .where('executions.state', 'in', ACTIVE_EXECUTION_STATES)
      .where(
        'executions.agent_id',
        'in',
        rows.map((r) => r.id),
      )
      .execute();
    const used = new Map<string, { cpus: number; memoryMb: number; gpus: number; diskMb: number; n: number }>();
    const runningByBuyer = new Map<string, number>();
    for (const e of active) {
      runningByBuyer.set(e.buyer_id, (runningByBuyer.get(e.buyer_id) ?? 0) + 1);
      const u = used.get(e.agent_id) ?? { cpus: 0, memoryMb: 0, gpus: 0, diskMb: 0, n: 0 };
      const d = JSON.parse(e.demand) as Partial<Demand>;
      u.cpus += e.cpus;
      u.memoryMb += e.memory_mb;
      u.gpus += d.gpus ?? 0;
      u.diskMb += d.diskMb ?? 0;
      u.n += 1;
      used.set(e.agent_id, u);
    }
    const records = await this.reputation.records([...new Set(rows.map((r) => r.provider_id))], now, policy.quota);
    const prices = new Map<string, Price>();
    const agents = rows.map((r): SchedAgent => {
      const cap = parsedCapacity(r.capacity);
      const offer = parsedOffer(r.offer);
      const u = used.get(r.id) ?? { cpus: 0, memoryMb: 0, gpus: 0, diskMb: 0, n: 0 };
      const rec = records.get(r.provider_id)!;
      prices.set(r.id, offer.prices);
      return {
        agentId: r.id,
        providerId: r.provider_id,
        name: r.name,
        online: Number(r.last_seen_at) >= onlineSince,
        availability: parsedAvailability(r.availability).state,
        totalCpus: cap.cpus,
        freeCpus: cap.cpus - u.cpus,
        totalMemoryMb: cap.memoryMb,
        freeMemoryMb: cap.memoryMb - u.memoryMb,
        totalDiskMb: offer.diskMb,
        freeDiskMb: offer.diskMb - u.diskMb,
        gpuModels: cap.gpus.map((g) => g.model),
        freeGpus: cap.gpus.length - u.gpus,
        arch: cap.arch,
        os: cap.os,
        allowNetwork: cap.allowNetwork,
        labels: offer.labels,
        prices: offer.prices,
        reputation: reputationScore(rec.reputation),
        consecutiveValid: rec.reputation.consecutiveValid,
        credibility: credibility(standingOf(rec.reputation), policy.credibility),
        established: isEstablished(standingOf(rec.reputation), policy.credibility),
        cohort: cohortOf(Number(r.provider_created_at)),
        prefix: r.network_prefix,
        quotaLeft: rec.reputation.dailyQuota - rec.startedToday,
        running: u.n,
      };
    });
    return { agents, prices, runningByBuyer };
  }

  /** The most recent valid executions with their wall time (newest last), for runtime prediction. */
  async runtimeSamples(limit: number): Promise<RuntimeSample[]> {
    const rows = await this.db
      .selectFrom('executions')
      .innerJoin('jobs', 'jobs.id', 'executions.job_id')
      .select(['executions.agent_id', 'jobs.image', 'jobs.cpus', 'executions.usage'])
      .where('executions.state', '=', 'valid')
      .where('executions.usage', 'is not', null)
      .orderBy('executions.finished_at', 'desc')
      .limit(limit)
      .execute();
    return rows.reverse().map((r) => ({
      agentId: r.agent_id,
      image: r.image,
      cpus: r.cpus,
      wallMs: (JSON.parse(r.usage!) as { wallMs: number }).wallMs,
    }));
  }
}
