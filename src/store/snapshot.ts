/**
 * Snapshots for the scheduler and for `explain`: open tasks with their job's demand and the counts of their
 * executions, agents with offers, free capacity, availability, reputation and quota, and runtime history for
 * prediction. Which tasks want executions, and where they go, is core's to decide (core/scheduler.ts).
 */
import type { ExpressionBuilder, Kysely } from 'kysely';
import {
  ACTIVE_EXECUTION_STATES,
  cohortOf,
  credibility,
  isEstablished,
  OPEN_TASK_STATES,
  reputationScore,
  standingOf,
  type CredibilityConfig,
  type Demand,
  type OpenProbe,
  type OpenTask,
  type QuotaConfig,
  type RuntimeSample,
  type SchedAgent,
} from '../core/index.js';
import { AvailabilitySchema, CapacitySchema, OfferSchema, type Price } from '../protocol/index.js';
import type { ReputationStore } from './reputation.js';
import type { Database } from './schema.js';

export class SnapshotStore {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly reputation: ReputationStore,
  ) {}

  /**
   * Open tasks with the counts of their ordinary executions that scheduling reads (core/scheduler.ts `tasksWanting`
   * decides which want more), oldest job first; optionally only one job's. A job whose determinism probe is still
   * pending has its tasks held: none is read.
   */
  async openTasks(jobId?: string): Promise<OpenTask[]> {
    return (await this.openTaskRows('tasks', jobId)).map(({ pairs: _, ...t }) => t);
  }

  /**
   * Jobs whose determinism probe is pending: their task 0, with the counts of its probe executions (every pair) and
   * the number of pairs placed (core/probe.ts `probesWanting` decides which want a pair); optionally only one job's.
   */
  openProbes(jobId?: string): Promise<OpenProbe[]> {
    return this.openTaskRows('probes', jobId);
  }

  /** Open tasks (`tasks`: ordinary executions counted) or pending probes (`probes`: probe executions counted). */
  private async openTaskRows(what: 'tasks' | 'probes', jobId?: string): Promise<OpenProbe[]> {
    const probes = what === 'probes';
    const ofTask = (eb: ExpressionBuilder<Database, 'tasks' | 'jobs'>) =>
      eb
        .selectFrom('executions')
        .whereRef('executions.task_id', '=', 'tasks.id')
        .where('executions.probe', probes ? '>' : '=', 0);
    let q = this.db
      .selectFrom('tasks')
      .innerJoin('jobs', 'jobs.id', 'tasks.job_id')
      .select([
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
        'jobs.created_at',
        'jobs.demand',
        'jobs.mode',
      ])
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
      ])
      .$if(probes, (qb) =>
        qb.select((eb) =>
          ofTask(eb)
            .select((sb) => sb.fn.max('executions.probe').as('p'))
            .as('pairs'),
        ),
      )
      .where('tasks.state', 'in', OPEN_TASK_STATES)
      .orderBy('jobs.created_at')
      .orderBy('tasks.idx');
    q = probes
      ? q.where('jobs.probe', '=', 'pending').where('tasks.idx', '=', 0)
      : q.where((eb) => eb.or([eb('jobs.probe', 'is', null), eb('jobs.probe', '!=', 'pending')]));
    if (jobId) q = q.where('tasks.job_id', '=', jobId);
    const rows = await q.execute();
    const demands = new Map<string, Demand>();
    const demandOfJob = (id: string, text: string) => {
      let d = demands.get(id);
      if (!d) {
        d = JSON.parse(text) as Demand;
        demands.set(id, d);
      }
      return d;
    };
    return rows.map((r) => ({
      taskId: r.id,
      jobId: r.job_id,
      jobCreatedAt: Number(r.created_at),
      index: r.idx,
      revision: r.revision,
      target: r.target,
      maxExecutions: r.max_executions,
      funded: r.funded,
      adaptive: r.mode === 'adaptive',
      demand: demandOfJob(r.job_id, r.demand),
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
   * since `onlineSince` unless `includeOffline`.
   */
  async agents(
    now: number,
    onlineSince: number,
    includeOffline: boolean,
    policy: { quota: QuotaConfig; credibility: CredibilityConfig },
  ): Promise<{ agents: SchedAgent[]; prices: Map<string, Price> }> {
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
    if (rows.length === 0) return { agents: [], prices: new Map() };
    const active = await this.db
      .selectFrom('executions')
      .innerJoin('jobs', 'jobs.id', 'executions.job_id')
      .select(['executions.agent_id', 'jobs.cpus', 'jobs.memory_mb', 'jobs.demand'])
      .where('executions.state', 'in', ACTIVE_EXECUTION_STATES)
      .where(
        'executions.agent_id',
        'in',
        rows.map((r) => r.id),
      )
      .execute();
    const used = new Map<string, { cpus: number; memoryMb: number; gpus: number; diskMb: number; n: number }>();
    for (const e of active) {
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
      const cap = CapacitySchema.parse(JSON.parse(r.capacity));
      const offer = OfferSchema.parse(JSON.parse(r.offer));
      const u = used.get(r.id) ?? { cpus: 0, memoryMb: 0, gpus: 0, diskMb: 0, n: 0 };
      const rec = records.get(r.provider_id)!;
      prices.set(r.id, offer.prices);
      return {
        agentId: r.id,
        providerId: r.provider_id,
        name: r.name,
        online: Number(r.last_seen_at) >= onlineSince,
        availability: AvailabilitySchema.parse(JSON.parse(r.availability)).state,
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
    return { agents, prices };
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
