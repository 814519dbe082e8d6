/**
 * Provider reputation: the current record per provider and the append-only history of its changes. How an
 * outcome changes a record is core's rule (core/reputation.ts); this file reads and writes records.
 */
import type { Kysely } from 'kysely';
import {
  newReputation,
  reputationScore,
  type QuotaConfig,
  type Reputation,
  type ReputationOutcome,
} from '../core/index.js';
import type { ProviderReputation } from '../protocol/index.js';
import { requireTransaction, type StoreCapabilities } from './db.js';
import type { Database } from './schema.js';

const DAY_MS = 86_400_000;

function toReputation(r: Database['reputation'] | undefined, q: QuotaConfig): Reputation {
  if (!r) return newReputation(q);
  return {
    consecutiveValid: r.consecutive_valid,
    valid: r.valid,
    invalid: r.invalid,
    errors: r.errors,
    dailyQuota: r.daily_quota,
    turnaroundMsTotal: Number(r.turnaround_ms_total),
    turnaroundCount: r.turnaround_count,
    confirmed: r.confirmed,
    vouched: r.vouched === 1,
    caughtAt: r.caught_at === null ? null : Number(r.caught_at),
  };
}

/** A record's columns. */
function columns(r: Reputation, now: number): Omit<Database['reputation'], 'provider_id'> {
  return {
    consecutive_valid: r.consecutiveValid,
    valid: r.valid,
    invalid: r.invalid,
    errors: r.errors,
    daily_quota: r.dailyQuota,
    turnaround_ms_total: r.turnaroundMsTotal,
    turnaround_count: r.turnaroundCount,
    confirmed: r.confirmed,
    vouched: r.vouched ? 1 : 0,
    caught_at: r.caughtAt,
    updated_at: now,
  };
}

/** Why a record changed, for its history: the outcome and the execution and job it came from. */
export interface ReputationChange {
  outcome: ReputationOutcome;
  executionId: string | null;
  jobId: string | null;
}

export class ReputationStore {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly caps: StoreCapabilities,
  ) {}

  /**
   * A provider's record for a read-modify-write: created first if missing (a newcomer's, with quota `q`,
   * `ON CONFLICT DO NOTHING`), then read `FOR UPDATE` on PostgreSQL, so two coordinators changing the same
   * provider's record at once apply one after the other. In a transaction.
   */
  async lock(providerId: string, q: QuotaConfig, now: number): Promise<Reputation> {
    requireTransaction(this.db);
    await this.db
      .insertInto('reputation')
      .values({ provider_id: providerId, ...columns(newReputation(q), now) })
      .onConflict((oc) => oc.column('provider_id').doNothing())
      .execute();
    const row = await this.db
      .selectFrom('reputation')
      .selectAll()
      .where('provider_id', '=', providerId)
      .$if(this.caps.skipLocked, (qb) => qb.forUpdate())
      .executeTakeFirstOrThrow();
    return toReputation(row, q);
  }

  /** Writes a provider's record (read with lock) and appends the change to its history. In a transaction. */
  async save(providerId: string, next: Reputation, change: ReputationChange, now: number): Promise<void> {
    requireTransaction(this.db);
    const o = change.outcome;
    await this.db.updateTable('reputation').set(columns(next, now)).where('provider_id', '=', providerId).execute();
    await this.db
      .insertInto('reputation_events')
      .values({
        provider_id: providerId,
        at: now,
        kind: o.kind,
        cross_checked: o.kind === 'valid' && o.crossChecked ? 1 : 0,
        execution_id: change.executionId,
        job_id: change.jobId,
        consecutive_valid: next.consecutiveValid,
        daily_quota: next.dailyQuota,
        score: reputationScore(next),
      })
      .execute();
  }

  /** Records of the given providers (newcomers get a fresh record with quota `q`), with executions started in the 24 h before `now`. */
  async records(
    providerIds: readonly string[],
    now: number,
    q: QuotaConfig,
  ): Promise<Map<string, { reputation: Reputation; startedToday: number }>> {
    const out = new Map<string, { reputation: Reputation; startedToday: number }>();
    if (providerIds.length === 0) return out;
    const rows = await this.db.selectFrom('reputation').selectAll().where('provider_id', 'in', providerIds).execute();
    const byId = new Map(rows.map((r) => [r.provider_id, r]));
    const started = await this.db
      .selectFrom('executions')
      .select(['provider_id', (eb) => eb.fn.countAll<number>().as('n')])
      .where('provider_id', 'in', providerIds)
      .where('created_at', '>=', now - DAY_MS)
      .groupBy('provider_id')
      .execute();
    const startedBy = new Map(started.map((s) => [s.provider_id, Number(s.n)]));
    for (const id of providerIds)
      out.set(id, { reputation: toReputation(byId.get(id), q), startedToday: startedBy.get(id) ?? 0 });
    return out;
  }

  /** A provider's most recent reputation events (newest first). */
  async history(providerId: string, limit: number): Promise<ProviderReputation['events']> {
    const events = await this.db
      .selectFrom('reputation_events')
      .selectAll()
      .where('provider_id', '=', providerId)
      .orderBy('id', 'desc')
      .limit(limit)
      .execute();
    return events.map((e) => ({
      id: Number(e.id),
      at: Number(e.at),
      kind: e.kind as ProviderReputation['events'][number]['kind'],
      crossChecked: e.cross_checked === 1,
      executionId: e.execution_id,
      jobId: e.job_id,
      consecutiveValid: e.consecutive_valid,
      dailyQuota: e.daily_quota,
      score: e.score,
    }));
  }
}
