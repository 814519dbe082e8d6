/**
 * Settlement records: which ended executions and jobs are not settled yet, what settling one reads, and the
 * claim that marks it settled. Each execution and each job is settled exactly once: the claim
 * (`SET settled_at WHERE settled_at IS NULL`) is in the same transaction as the ledger postings and reputation
 * change the engine writes for it, so a crash or a second coordinator can never pay twice. On PostgreSQL an
 * execution is read `FOR UPDATE SKIP LOCKED`: coordinators settling at once share the work instead of queueing.
 * What an execution earns is core's rule (core/settlement.ts), not this file's.
 */
import type { Kysely } from 'kysely';
import { TERMINAL_JOB_STATES, type EndedExecution, type Reserved } from '../core/index.js';
import { FailureSchema, PriceSchema, UsageSchema, type ExecutionState, type JobState } from '../protocol/index.js';
import { requireTransaction, type StoreCapabilities } from './db.js';
import type { Database } from './schema.js';

/** Executions whose outcome is final and must be accounted. */
export const ENDED_EXECUTION_STATES: readonly ExecutionState[] = ['valid', 'invalid', 'failed', 'lost', 'cancelled'];

/** A job whose settlement was just claimed: its buyer, final state, and when it was submitted and ended (ms). */
export interface ClaimedJob {
  jobId: string;
  buyerId: string;
  state: JobState;
  createdAt: number;
  finishedAt: number;
}

/** Demand fields settlement needs (stored as JSON on the job). */
interface StoredDemand extends Reserved {
  timeoutMs: number;
}

export class SettlementStore {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly caps: StoreCapabilities,
  ) {}

  /** Ended executions not yet settled, oldest first. */
  async unsettledExecutions(limit: number): Promise<string[]> {
    const rows = await this.db
      .selectFrom('executions')
      .select('id')
      .where('settled_at', 'is', null)
      .where('state', 'in', ENDED_EXECUTION_STATES)
      .orderBy('finished_at')
      .limit(limit)
      .execute();
    return rows.map((r) => r.id);
  }

  /** Ended jobs not yet settled whose executions are all settled (ready for claimJob). */
  async unsettledJobs(limit: number): Promise<string[]> {
    const rows = await this.db
      .selectFrom('jobs')
      .select('id')
      .where('settled_at', 'is', null)
      .where('state', 'in', TERMINAL_JOB_STATES)
      .where((eb) =>
        eb.not(
          eb.exists(
            eb
              .selectFrom('executions')
              .select('executions.id')
              .whereRef('executions.job_id', '=', 'jobs.id')
              .where('executions.settled_at', 'is', null),
          ),
        ),
      )
      .orderBy('finished_at')
      .limit(limit)
      .execute();
    return rows.map((r) => r.id);
  }

  /**
   * An ended, unsettled execution with what settling it needs; null when it is not ended, already settled, or
   * (PostgreSQL) being written by another transaction right now (a later round retries). In a transaction.
   */
  async ended(executionId: string): Promise<Omit<EndedExecution, 'confirmed'> | null> {
    requireTransaction(this.db);
    const e = await this.db
      .selectFrom('executions')
      .innerJoin('jobs', 'jobs.id', 'executions.job_id')
      .select([
        'executions.id',
        'executions.task_id',
        'executions.job_id',
        'executions.provider_id',
        'executions.state',
        'executions.price',
        'executions.usage',
        'executions.failure',
        'executions.started_at',
        'executions.finished_at',
        'jobs.demand',
        'jobs.execution_max_cost',
      ])
      .where('executions.id', '=', executionId)
      .where('executions.settled_at', 'is', null)
      .where('executions.state', 'in', ENDED_EXECUTION_STATES)
      .$if(this.caps.skipLocked, (q) => q.forUpdate('executions').skipLocked())
      .executeTakeFirst();
    if (!e) return null;
    // Filtered by task only: with `state = 'valid'` as well, SQLite used the state index and read every valid
    // execution ever recorded (a cost growing with history, per settlement).
    const states = await this.db.selectFrom('executions').select('state').where('task_id', '=', e.task_id).execute();
    const d = JSON.parse(e.demand) as StoredDemand;
    return {
      executionId: e.id,
      jobId: e.job_id,
      providerId: e.provider_id,
      state: e.state,
      failure: e.failure ? FailureSchema.parse(JSON.parse(e.failure)) : null,
      wallMs: e.usage ? UsageSchema.parse(JSON.parse(e.usage)).wallMs : null,
      price: PriceSchema.parse(e.price ? JSON.parse(e.price) : {}),
      reserved: { cpus: d.cpus, memoryMb: d.memoryMb, gpus: d.gpus ?? 0 },
      timeoutMs: d.timeoutMs,
      executionMaxCost: Number(e.execution_max_cost),
      validInTask: states.filter((x) => x.state === 'valid').length,
      startedAt: e.started_at === null ? null : Number(e.started_at),
      finishedAt: e.finished_at === null ? null : Number(e.finished_at),
    };
  }

  /**
   * Marks an ended execution settled, recording `paid` (µcr it earned; null when it was not payable); false when it
   * already was. In a transaction.
   */
  async claimExecution(executionId: string, paid: number | null, now: number): Promise<boolean> {
    requireTransaction(this.db);
    const r = await this.db
      .updateTable('executions')
      .set({ settled_at: now, paid })
      .where('id', '=', executionId)
      .where('settled_at', 'is', null)
      .executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }

  /**
   * Marks an ended job settled if every one of its executions is; returns what the engine needs to refund it, or
   * null when it is not ready or already settled. In a transaction.
   */
  async claimJob(jobId: string, now: number): Promise<ClaimedJob | null> {
    requireTransaction(this.db);
    const r = await this.db
      .updateTable('jobs')
      .set({ settled_at: now })
      .where('id', '=', jobId)
      .where('settled_at', 'is', null)
      .where('state', 'in', TERMINAL_JOB_STATES)
      .where((eb) =>
        eb.not(
          eb.exists(
            eb
              .selectFrom('executions')
              .select('executions.id')
              .whereRef('executions.job_id', '=', 'jobs.id')
              .where('executions.settled_at', 'is', null),
          ),
        ),
      )
      .returning(['buyer_id', 'state', 'created_at', 'finished_at'])
      .executeTakeFirst();
    if (!r) return null;
    return {
      jobId,
      buyerId: r.buyer_id,
      state: r.state,
      createdAt: Number(r.created_at),
      finishedAt: Number(r.finished_at ?? now),
    };
  }
}
