/**
 * Provider reputation, after BOINC's rules (sched/sched_send.cpp, sched/sched_result.cpp, db/boinc_db.h
 * `consecutive_valid`, `max_jobs_per_day`):
 * - `consecutiveValid` +1 for a valid result that was cross-checked against another provider's result; reset
 *   to 0 on an invalid result or a provider-side error (crash, lost lease). A valid result that ran alone
 *   (unreplicated) leaves it unchanged: nothing checked it.
 * - a daily quota of executions: doubled on a valid result (up to a cap), minus one on an invalid result or an
 *   error (down to 1).
 * - counts of valid, invalid and error results, and the mean turnaround (claim → report) of reported results.
 * The score shown to buyers (and used by `constraints.minReputation` and ranking) is the Laplace-smoothed
 * success ratio (valid + 1) / (valid + invalid + errors + 2): 0.5 for a newcomer, → 1 with a clean record.
 *
 * The record also carries the provider's standing for credibility (credibility.ts): results confirmed in a row
 * (+1 for a valid result others confirmed independently or a passed spot-check, reset to 0 by an invalid one), an
 * operator's vouch, and when it was caught lying (a failed spot-check: blacklisted for good).
 */
import type { ReputationView } from '../protocol/index.js';
import { credibility, isEstablished, type CredibilityConfig, type Standing } from './credibility.js';

/** A provider's reputation record. Times in ms. */
export interface Reputation {
  consecutiveValid: number;
  valid: number;
  invalid: number;
  errors: number;
  dailyQuota: number;
  turnaroundMsTotal: number;
  turnaroundCount: number;
  /** Results confirmed in a row (credibility.ts Standing.confirmed). */
  confirmed: number;
  /** The operator vouched for this provider. */
  vouched: boolean;
  /** When it was caught lying (epoch ms), or null. */
  caughtAt: number | null;
}

/** Quota settings: a newcomer's daily quota and the cap. */
export interface QuotaConfig {
  initialDailyQuota: number;
  maxDailyQuota: number;
}

/** Defaults: 100 executions a day to start, doubling on valid results up to 10,000. */
export const DEFAULT_QUOTA: Readonly<QuotaConfig> = Object.freeze({ initialDailyQuota: 100, maxDailyQuota: 10_000 });

/** The record of a provider with no history. */
export function newReputation(q: QuotaConfig = DEFAULT_QUOTA): Reputation {
  return {
    consecutiveValid: 0,
    valid: 0,
    invalid: 0,
    errors: 0,
    dailyQuota: q.initialDailyQuota,
    turnaroundMsTotal: 0,
    turnaroundCount: 0,
    confirmed: 0,
    vouched: false,
    caughtAt: null,
  };
}

/**
 * What happened to one execution, as reputation sees it: `valid` (with `crossChecked` when another provider's
 * result agreed), `invalid` (outvoted), `error` (failed or lost on the provider's side). `turnaroundMs` is
 * claim → report for a reported result.
 */
export type ReputationOutcome =
  | { kind: 'valid'; crossChecked: boolean; confirmed: boolean; turnaroundMs: number | null }
  | { kind: 'invalid'; turnaroundMs: number | null }
  | { kind: 'error' }
  /** A spot-check (a task whose answer was known) passed: a confirmation, no payment from a buyer. */
  | { kind: 'spot_check_passed' }
  /** Caught lying (a failed spot-check): blacklisted at `at` (epoch ms). */
  | { kind: 'caught'; at: number }
  /** The operator vouched for the provider (it may run unchecked like an established one). */
  | { kind: 'vouched' };

/** The record after one outcome. Pure. */
export function applyOutcome(r: Reputation, o: ReputationOutcome, q: QuotaConfig = DEFAULT_QUOTA): Reputation {
  const next = { ...r };
  if ((o.kind === 'valid' || o.kind === 'invalid') && o.turnaroundMs !== null) {
    next.turnaroundMsTotal += Math.max(0, o.turnaroundMs);
    next.turnaroundCount += 1;
  }
  switch (o.kind) {
    case 'valid':
      next.valid += 1;
      if (o.crossChecked) next.consecutiveValid += 1;
      if (o.confirmed) next.confirmed += 1;
      next.dailyQuota = Math.min(q.maxDailyQuota, Math.max(1, r.dailyQuota) * 2);
      break;
    case 'spot_check_passed':
      next.confirmed += 1;
      break;
    case 'vouched':
      next.vouched = true;
      break;
    case 'caught':
      next.caughtAt = r.caughtAt ?? o.at;
      next.invalid += 1;
      next.confirmed = 0;
      next.consecutiveValid = 0;
      next.dailyQuota = 1;
      break;
    case 'invalid':
    case 'error':
      if (o.kind === 'invalid') {
        next.invalid += 1;
        next.confirmed = 0;
      } else next.errors += 1;
      next.consecutiveValid = 0;
      next.dailyQuota = Math.max(1, r.dailyQuota - 1);
      break;
  }
  return next;
}

/** What credibility reads of a record (credibility.ts). */
export function standingOf(r: Pick<Reputation, 'confirmed' | 'vouched' | 'caughtAt'>): Standing {
  return { confirmed: r.confirmed, vouched: r.vouched, caught: r.caughtAt !== null };
}

/** Reputation score in [0, 1]: (valid + 1) / (valid + invalid + errors + 2). */
export function reputationScore(r: Pick<Reputation, 'valid' | 'invalid' | 'errors'>): number {
  return (r.valid + 1) / (r.valid + r.invalid + r.errors + 2);
}

/** Share of results that were provider-side errors, in [0, 1] (0 with no results). */
export function errorRate(r: Pick<Reputation, 'valid' | 'invalid' | 'errors'>): number {
  const n = r.valid + r.invalid + r.errors;
  return n === 0 ? 0 : r.errors / n;
}

/** Mean turnaround in ms, or null with no reported results. */
export function meanTurnaroundMs(r: Pick<Reputation, 'turnaroundMsTotal' | 'turnaroundCount'>): number | null {
  return r.turnaroundCount === 0 ? null : Math.round(r.turnaroundMsTotal / r.turnaroundCount);
}

/**
 * The API view of a record: its counts and score, `startedToday` (executions placed on the provider in the last
 * 24 h), and its standing under the credibility model `c` (confirmed, established, vouched, caught, credibility).
 */
export function reputationView(r: Reputation, startedToday: number, c: CredibilityConfig): ReputationView {
  const standing = standingOf(r);
  return {
    score: reputationScore(r),
    consecutiveValid: r.consecutiveValid,
    valid: r.valid,
    invalid: r.invalid,
    errors: r.errors,
    errorRate: errorRate(r),
    meanTurnaroundMs: meanTurnaroundMs(r),
    dailyQuota: r.dailyQuota,
    startedToday,
    confirmed: r.confirmed,
    established: isEstablished(standing, c),
    vouched: r.vouched,
    caught: r.caughtAt !== null,
    credibility: credibility(standing, c),
  };
}

/** Consecutive valid results from which a provider may run a task alone (BOINC's adaptive replication). */
export const ADAPTIVE_TRUST_THRESHOLD = 10;

/**
 * BOINC's adaptive replication (sched/sched_send.cpp): a provider with at least 10 consecutive cross-checked
 * valid results runs a task unreplicated with probability 1 − 1/consecutiveValid. `random` is a draw in [0, 1).
 */
export function runsAlone(consecutiveValid: number, random: number): boolean {
  return consecutiveValid >= ADAPTIVE_TRUST_THRESHOLD && random < 1 - 1 / consecutiveValid;
}

/**
 * Expected share of tasks that run alone under `adaptive` when the first execution goes to one of these
 * providers (each equally likely): the mean of 1 − 1/cv over providers at or above the threshold, 0 for others.
 */
export function adaptiveTrustedShare(consecutiveValid: readonly number[]): number {
  if (consecutiveValid.length === 0) return 0;
  const p = consecutiveValid.map((cv) => (cv >= ADAPTIVE_TRUST_THRESHOLD ? 1 - 1 / cv : 0));
  return p.reduce((x, y) => x + y, 0) / p.length;
}
