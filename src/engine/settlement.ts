/**
 * Settlement: paying ended executions from their job's escrow, recording their reputation outcome, and returning
 * what is left to the buyer once a job has ended — each exactly once. What an execution earns and what it does to
 * reputation is core's rule (core/settlement.ts, core/reputation.ts); the store claims and writes.
 *
 * Executions are settled in the transaction that ends them (a report, a decision, a lost lease, a cancellation),
 * so a report returns with its money moved. The sweep settles anything left over (e.g. rows from an older
 * coordinator), in batches, on the engine's tick.
 */
import { applyOutcome, escrowLedger, FEES, refundTxn, settleExecution } from '../core/index.js';
import type { Repositories } from '../store/index.js';
import { Effects } from './effects.js';
import type { EngineResources } from './resources.js';

export class SettlementSystem {
  private sweeping: Promise<void> | null = null;

  constructor(private readonly r: EngineResources) {}

  /**
   * Settles the given ended executions inside `tx`: payment, fee, reputation. Skips those not ended or settled.
   * `confirmed` are the valid ones whose results the rest of their group confirmed independently (a decision's).
   */
  async executions(
    tx: Repositories,
    ids: Iterable<string>,
    now: number,
    fx: Effects,
    confirmed: ReadonlySet<string> = new Set(),
  ): Promise<void> {
    const { feeBps, quota } = this.r.policy;
    for (const id of new Set(ids)) {
      const ended = await tx.settlement.ended(id);
      if (!ended) continue;
      const e = { ...ended, confirmed: confirmed.has(id) };
      const s = settleExecution(e, feeBps);
      if (!(await tx.settlement.claimExecution(id, s.payable ? s.cost : null, now))) continue;
      let fee = 0;
      if (s.payment) {
        await tx.ledger.post(s.payment, now);
        fee = s.payment.postings.find((p) => p.account === FEES)?.amount ?? 0;
      }
      if (s.reputation) {
        const current = await tx.reputation.lock(e.providerId, quota, now);
        const next = applyOutcome(current, s.reputation, quota);
        await tx.reputation.save(e.providerId, next, { outcome: s.reputation, executionId: id, jobId: e.jobId }, now);
      }
      fx.settled.push({
        executionId: id,
        jobId: e.jobId,
        state: e.state,
        reason: e.failure?.reason ?? null,
        paid: s.payment ? s.cost - fee : 0,
        fee,
      });
    }
  }

  /** Settles an ended job inside `tx` once all its executions are: the rest of its escrow returns to the buyer. */
  async job(tx: Repositories, jobId: string, now: number, fx: Effects): Promise<void> {
    const j = await tx.settlement.claimJob(jobId, now);
    if (!j) return;
    const remaining = await tx.ledger.balance(escrowLedger(jobId));
    if (remaining > 0) await tx.ledger.post(refundTxn(j.buyerId, jobId, remaining), now);
    fx.jobsSettled.push({
      jobId,
      state: j.state,
      createdAt: j.createdAt,
      finishedAt: j.finishedAt,
      refunded: remaining,
    });
    this.r.log.info({ jobId, state: j.state, refunded: remaining }, 'job settled');
  }

  /**
   * Settles whatever ended and is still unsettled (up to 1,000 executions, then the jobs that became ready), each
   * batch in one transaction. Concurrent calls share one run. Errors are logged, never thrown.
   */
  sweep(): Promise<void> {
    if (this.sweeping) return this.sweeping;
    this.sweeping = this.sweepOnce()
      .catch((err: unknown) => this.r.log.error({ err }, 'settlement failed'))
      .finally(() => {
        this.sweeping = null;
      });
    return this.sweeping;
  }

  private async sweepOnce(): Promise<void> {
    const { store } = this.r;
    const ids = await store.settlement.unsettledExecutions(1_000);
    if (ids.length > 0) {
      const fx = await store.transaction(async (tx) => {
        const f = new Effects();
        await this.executions(tx, ids, this.r.now(), f);
        return f;
      });
      fx.emit(this.r.events);
    }
    for (const jobId of await store.settlement.unsettledJobs(1_000)) {
      const fx = await store.transaction(async (tx) => {
        const f = new Effects();
        await this.job(tx, jobId, this.r.now(), f);
        return f;
      });
      fx.emit(this.r.events);
    }
  }
}
