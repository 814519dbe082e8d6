/**
 * Snapshots for the scheduler and for `explain`: open tasks wanting executions with their job's demand,
 * agents with offers, free capacity, availability, reputation and quota, and runtime history for prediction.
 */
import type { Kysely } from 'kysely';
import {
  ACTIVE_EXECUTION_STATES,
  reputationScore,
  retryDue,
  type Demand,
  type RetryBackoff,
  type RuntimeSample,
  type SchedAgent,
  type SchedTask,
} from '../core/index.js';
import { AvailabilitySchema, CapacitySchema, OfferSchema, type Price } from '../protocol/index.js';
import type { ReputationStore } from './reputation.js';
import type { Database } from './schema.js';

const OPEN_TASK = ['queued', 'running'] as const;

/** The scheduler's input plus what applying a plan needs: task revisions and each agent's prices. */
export interface SchedulingSnapshot {
  tasks: SchedTask[];
  agents: SchedAgent[];
  revisions: Map<string, number>;
  prices: Map<string, Price>;
}

export class SnapshotStore {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly reputation: ReputationStore,
  ) {}

  /**
   * Open tasks that want more executions (need = min(target − active, maxExecutions − total, funded − active)),
   * oldest job first, at most `limit`; optionally only one job's. With `retry`, a task whose executions were
   * lost or failed provider-side waits out its backoff (core/faults.ts retryDue) before it is offered again.
   */
  async wantingTasks(
    limit: number,
    jobId?: string,
    retry?: { now: number; backoff: RetryBackoff },
  ): Promise<{ tasks: SchedTask[]; revisions: Map<string, number> }> {
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
        'jobs.created_at',
        'jobs.demand',
        'jobs.mode',
      ])
      .select((eb) => [
        eb
          .selectFrom('executions')
          .select(eb.fn.countAll<number>().as('n'))
          .whereRef('executions.task_id', '=', 'tasks.id')
          .where('executions.state', 'in', ['assigned', 'running', 'reported'])
          .as('active'),
        eb
          .selectFrom('executions')
          .select(eb.fn.countAll<number>().as('n'))
          .whereRef('executions.task_id', '=', 'tasks.id')
          .as('total'),
        eb
          .selectFrom('executions')
          .select(eb.fn.countAll<number>().as('n'))
          .whereRef('executions.task_id', '=', 'tasks.id')
          .where('executions.state', 'in', ['lost', 'failed'])
          .as('failures'),
        eb
          .selectFrom('executions')
          .select((sb) => sb.fn.max('executions.finished_at').as('t'))
          .whereRef('executions.task_id', '=', 'tasks.id')
          .where('executions.state', 'in', ['lost', 'failed'])
          .as('last_failure_at'),
      ])
      .where('tasks.state', 'in', OPEN_TASK)
      .orderBy('jobs.created_at')
      .orderBy('tasks.idx');
    if (jobId) q = q.where('tasks.job_id', '=', jobId);
    const rows = await q.execute();
    const wanting = rows
      .map((r) => ({
        r,
        need: Math.min(r.target - Number(r.active), r.max_executions - Number(r.total), r.funded - Number(r.active)),
      }))
      .filter(
        (x) =>
          x.need > 0 &&
          (!retry ||
            retryDue(
              Number(x.r.failures),
              x.r.last_failure_at === null ? null : Number(x.r.last_failure_at),
              retry.now,
              retry.backoff,
            )),
      )
      .slice(0, limit);
    const excluded = new Map<string, string[]>();
    const ids = wanting.map((x) => x.r.id);
    for (let i = 0; i < ids.length; i += 500) {
      const ex = await this.db
        .selectFrom('executions')
        .select(['task_id', 'provider_id'])
        .where('task_id', 'in', ids.slice(i, i + 500))
        .execute();
      for (const e of ex) {
        const xs = excluded.get(e.task_id);
        if (xs) xs.push(e.provider_id);
        else excluded.set(e.task_id, [e.provider_id]);
      }
    }
    const demands = new Map<string, Demand>();
    const demandOfJob = (jobId: string, text: string) => {
      let d = demands.get(jobId);
      if (!d) {
        d = JSON.parse(text) as Demand;
        demands.set(jobId, d);
      }
      return d;
    };
    const tasks: SchedTask[] = wanting.map(({ r, need }) => ({
      taskId: r.id,
      jobId: r.job_id,
      jobCreatedAt: Number(r.created_at),
      index: r.idx,
      need,
      demand: demandOfJob(r.job_id, r.demand),
      excludedProviders: excluded.get(r.id) ?? [],
      adaptiveFresh: r.mode === 'adaptive' && Number(r.total) === 0,
    }));
    return { tasks, revisions: new Map(wanting.map(({ r }) => [r.id, r.revision])) };
  }

  /**
   * How many open tasks want more executions now: the scheduler's queue depth, by the same rule as
   * wantingTasks (whose per-task work it repeats, so call it at monitoring rates, not per request).
   */
  async wantingTaskCount(): Promise<number> {
    return (await this.wantingTasks(Number.MAX_SAFE_INTEGER)).tasks.length;
  }

  /** Agents with their offers and free capacity; only those seen since `onlineSince` unless `includeOffline`. */
  async agents(
    now: number,
    onlineSince: number,
    includeOffline: boolean,
  ): Promise<{ agents: SchedAgent[]; prices: Map<string, Price> }> {
    let q = this.db
      .selectFrom('agents')
      .select(['id', 'provider_id', 'name', 'capacity', 'offer', 'availability', 'last_seen_at']);
    if (!includeOffline) q = q.where('last_seen_at', '>=', onlineSince);
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
    const used = new Map<string, { cpus: number; memoryMb: number; gpus: number; n: number }>();
    for (const e of active) {
      const u = used.get(e.agent_id) ?? { cpus: 0, memoryMb: 0, gpus: 0, n: 0 };
      u.cpus += e.cpus;
      u.memoryMb += e.memory_mb;
      u.gpus += (JSON.parse(e.demand) as Partial<Demand>).gpus ?? 0;
      u.n += 1;
      used.set(e.agent_id, u);
    }
    const records = await this.reputation.records([...new Set(rows.map((r) => r.provider_id))], now);
    const prices = new Map<string, Price>();
    const agents = rows.map((r): SchedAgent => {
      const cap = CapacitySchema.parse(JSON.parse(r.capacity));
      const offer = OfferSchema.parse(JSON.parse(r.offer));
      const u = used.get(r.id) ?? { cpus: 0, memoryMb: 0, gpus: 0, n: 0 };
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
        gpuModels: cap.gpus.map((g) => g.model),
        freeGpus: cap.gpus.length - u.gpus,
        arch: cap.arch,
        os: cap.os,
        allowNetwork: cap.allowNetwork,
        labels: offer.labels,
        prices: offer.prices,
        reputation: reputationScore(rec.reputation),
        consecutiveValid: rec.reputation.consecutiveValid,
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
