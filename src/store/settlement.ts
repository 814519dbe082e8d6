/**
 * Settlement: paying valid executions from their job's escrow, recording reputation outcomes, and returning
 * what is left in escrow to the buyer once a job has ended. Each execution and each job is settled exactly
 * once: the step that claims it (`SET settled_at WHERE settled_at IS NULL`) is in the same transaction as the
 * ledger postings and reputation events, so a crash or a second coordinator can never pay twice. On
 * PostgreSQL an execution is picked `FOR UPDATE SKIP LOCKED`: coordinators settling at once share the work
 * instead of queueing on the same rows.
 */
import type { Kysely } from 'kysely';
import {
  escrowLedger,
  executionCost,
  FEES,
  paymentTxn,
  refundTxn,
  TERMINAL_JOB_STATES,
  type QuotaConfig,
  type ReputationOutcome,
} from '../core/index.js';
import {
  FailureSchema,
  PriceSchema,
  UsageSchema,
  type ExecutionState,
  type FailureReason,
  type JobState,
} from '../protocol/index.js';
import { transact, type StoreCapabilities } from './db.js';
import { balanceOf, postTxn } from './ledger.js';
import { recordOutcome } from './reputation.js';
import type { Database } from './schema.js';

/** Executions whose outcome is final and must be accounted. */
const ENDED: ExecutionState[] = ['valid', 'invalid', 'failed', 'lost', 'cancelled'];

/** Settlement settings: the platform fee in basis points and the reputation quota rules. */
export interface SettlementConfig {
  feeBps: number;
  quota: QuotaConfig;
}

/**
 * What settling one execution did: its final state (and failure reason, for failed or lost ones), and the
 * money moved from escrow, µcr: `paid` to its provider, `fee` to the platform (both 0 unless it was valid).
 */
export interface SettledExecution {
  executionId: string;
  jobId: string;
  state: ExecutionState;
  reason: FailureReason | null;
  paid: number;
  fee: number;
}

/** What settling one job did: its final state, when it was submitted and ended (epoch ms), the escrow refunded (µcr). */
export interface SettledJob {
  jobId: string;
  state: JobState;
  createdAt: number;
  finishedAt: number;
  refunded: number;
}

/** Demand fields settlement needs (stored as JSON on the job). */
interface StoredDemand {
  cpus: number;
  memoryMb: number;
  gpus: number;
  timeoutMs: number;
}

export class SettlementStore {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly config: SettlementConfig,
    private readonly caps: StoreCapabilities,
  ) {}

  /** Ended executions not yet settled, oldest first. */
  async unsettledExecutions(limit: number): Promise<string[]> {
    const rows = await this.db
      .selectFrom('executions')
      .select('id')
      .where('settled_at', 'is', null)
      .where('state', 'in', ENDED)
      .orderBy('finished_at')
      .limit(limit)
      .execute();
    return rows.map((r) => r.id);
  }

  /** Ended jobs not yet settled whose executions are all settled (ready for settleJob). */
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
   * Settles one ended execution: a valid one is paid its cost (capped at the job's per-execution maximum) and
   * counts for its provider's reputation (cross-checked when another provider's result agreed); an invalid one
   * earns nothing and resets the provider's consecutive valid count; a provider-side failure is an error for
   * reputation (the owner coming back, or a cancellation, is not). Returns what it did, or null when the
   * execution is not ended, already settled, or (PostgreSQL) being settled or otherwise written by another
   * transaction right now (a later round retries).
   */
  async settleExecution(executionId: string, now: number): Promise<SettledExecution | null> {
    return transact(this.db, (tx) => this.settleExecutionIn(tx, executionId, now));
  }

  /**
   * Settles ended executions as settleExecution does, all in one transaction (one commit instead of one per
   * execution). Should that transaction fail, each is retried in its own, so one bad row cannot hold back the
   * others; the error of the last failing one is then thrown. Returns what was settled.
   */
  async settleExecutions(executionIds: readonly string[], now: number): Promise<SettledExecution[]> {
    if (executionIds.length === 0) return [];
    const keep = (xs: Array<SettledExecution | null>) => xs.filter((x): x is SettledExecution => x !== null);
    try {
      return await transact(this.db, async (tx) => {
        const done: Array<SettledExecution | null> = [];
        for (const id of executionIds) done.push(await this.settleExecutionIn(tx, id, now));
        return keep(done);
      });
    } catch {
      const done: Array<SettledExecution | null> = [];
      let failure: unknown = null;
      for (const id of executionIds) {
        try {
          done.push(await this.settleExecution(id, now));
        } catch (err) {
          failure = err;
        }
      }
      if (failure !== null) throw failure;
      return keep(done);
    }
  }

  /** settleExecution inside the caller's transaction. */
  private async settleExecutionIn(
    tx: Kysely<Database>,
    executionId: string,
    now: number,
  ): Promise<SettledExecution | null> {
    const e = await tx
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
      .where('executions.state', 'in', ENDED)
      .$if(this.caps.skipLocked, (q) => q.forUpdate('executions').skipLocked())
      .executeTakeFirst();
    if (!e) return null;
    const claimed = await tx
      .updateTable('executions')
      .set({ settled_at: now })
      .where('id', '=', executionId)
      .where('settled_at', 'is', null)
      .executeTakeFirst();
    if (Number(claimed.numUpdatedRows) === 0) return null;
    const failure = e.failure ? FailureSchema.parse(JSON.parse(e.failure)) : null;
    const settled: SettledExecution = {
      executionId,
      jobId: e.job_id,
      state: e.state,
      reason: failure?.reason ?? null,
      paid: 0,
      fee: 0,
    };
    const ref = { executionId, jobId: e.job_id };
    const turnaroundMs =
      e.started_at !== null && e.finished_at !== null ? Number(e.finished_at) - Number(e.started_at) : null;
    let outcome: ReputationOutcome | null = null;
    if (e.state === 'valid') {
      const d = JSON.parse(e.demand) as StoredDemand;
      const wallMs = e.usage ? UsageSchema.parse(JSON.parse(e.usage)).wallMs : 0;
      const price = PriceSchema.parse(e.price ? JSON.parse(e.price) : {});
      const cost = Math.min(executionCost(price, d, wallMs, d.timeoutMs), Number(e.execution_max_cost));
      const txn = paymentTxn(e.job_id, executionId, e.provider_id, cost, this.config.feeBps);
      if (txn) {
        await postTxn(tx, txn, now);
        settled.fee = txn.postings.find((p) => p.account === FEES)?.amount ?? 0;
        settled.paid = cost - settled.fee;
      }
      await tx.updateTable('executions').set({ paid: cost }).where('id', '=', executionId).execute();
      // Filtered by task only: with `state = 'valid'` as well, SQLite used the state index and read every
      // valid execution ever recorded (a cost growing with history, per settlement).
      const states = await tx.selectFrom('executions').select('state').where('task_id', '=', e.task_id).execute();
      outcome = { kind: 'valid', crossChecked: states.filter((x) => x.state === 'valid').length >= 2, turnaroundMs };
    } else if (e.state === 'invalid') {
      outcome = { kind: 'invalid', turnaroundMs };
    } else if (e.state === 'failed' || e.state === 'lost') {
      if (failure?.blame === 'provider' && failure.reason !== 'owner_returned') outcome = { kind: 'error' };
    }
    if (outcome) await recordOutcome(tx, e.provider_id, outcome, ref, this.config.quota, now, this.caps);
    return settled;
  }

  /**
   * Settles an ended job whose executions are all settled: what is left in its escrow returns to the buyer.
   * Returns what it did (the refund in µcr), or null when the job is not ready or already settled.
   */
  async settleJob(jobId: string, now: number): Promise<SettledJob | null> {
    return transact(this.db, async (tx) => {
      const r = await tx
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
      const remaining = await balanceOf(tx, escrowLedger(jobId));
      if (remaining > 0) await postTxn(tx, refundTxn(r.buyer_id, jobId, remaining), now);
      return {
        jobId,
        state: r.state,
        createdAt: Number(r.created_at),
        finishedAt: Number(r.finished_at ?? now),
        refunded: remaining,
      };
    });
  }
}
