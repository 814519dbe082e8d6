/**
 * Aggregate counts for monitoring (the coordinator's Prometheus gauges): jobs, tasks and executions per state,
 * agents by how recently they were heard from, and the scheduler's queue depth. Plain GROUP BY / CASE queries,
 * the same on SQLite and PostgreSQL. They read whole tables (through the state indexes where there are some), so
 * callers cache them (the metrics module keeps them for about a second).
 */
import type { Kysely } from 'kysely';
import type { ExecutionState, JobState, TaskState } from '../protocol/index.js';
import type { Database } from './schema.js';
import type { SnapshotStore } from './snapshot.js';

/** Agents by last contact: online (heard within the engine's agent TTL), suspect (silent longer), offline (long gone). */
export interface AgentCounts {
  online: number;
  suspect: number;
  offline: number;
}

/** Counts at one moment. A state with no rows is absent from its record. */
export interface StoreCounts {
  jobs: Partial<Record<JobState, number>>;
  tasks: Partial<Record<TaskState, number>>;
  executions: Partial<Record<ExecutionState, number>>;
  agents: AgentCounts;
  /** Open tasks that want more executions than they have (what the scheduler is trying to place). */
  tasksWanting: number;
}

/** Monitoring counts over the whole database (every coordinator sharing it reads the same). */
export class StatsStore {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly snapshot: SnapshotStore,
  ) {}

  /**
   * Counts now. Agents last seen at or after `onlineSince` (epoch ms) are online; before it but at or after
   * `suspectSince` (≤ onlineSince) suspect; before that offline.
   */
  async counts(onlineSince: number, suspectSince: number): Promise<StoreCounts> {
    const a = await this.db
      .selectFrom('agents')
      .select((eb) => [
        eb.fn.countAll<number>().as('total'),
        eb.fn.sum<number>(eb.case().when('last_seen_at', '>=', onlineSince).then(1).else(0).end()).as('online'),
        eb.fn.sum<number>(eb.case().when('last_seen_at', '>=', suspectSince).then(1).else(0).end()).as('seen'),
      ])
      .executeTakeFirst();
    const total = Number(a?.total ?? 0);
    const online = Number(a?.online ?? 0);
    const seen = Number(a?.seen ?? 0);
    return {
      jobs: await this.byState('jobs'),
      tasks: await this.byState('tasks'),
      executions: await this.byState('executions'),
      agents: { online, suspect: seen - online, offline: total - seen },
      tasksWanting: await this.snapshot.wantingCount(),
    };
  }

  private async byState<T extends 'jobs' | 'tasks' | 'executions'>(
    table: T,
  ): Promise<Partial<Record<Database[T]['state'], number>>> {
    const rows = await this.db
      .selectFrom(table as 'jobs')
      .select(['state', (eb) => eb.fn.countAll<number>().as('n')])
      .groupBy('state')
      .execute();
    return Object.fromEntries(rows.map((r) => [r.state, Number(r.n)])) as Partial<Record<Database[T]['state'], number>>;
  }
}
