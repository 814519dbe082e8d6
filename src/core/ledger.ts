/**
 * Ledger rules: every movement of credits is a transaction of postings that sum to zero (double entry);
 * postings are appended, never changed. Ledger accounts:
 *   `acct:<accountId>`   an account's available credits (buyer spending money, provider earnings);
 *   `escrow:<jobId>`     credits held for one job until it is settled;
 *   `platform:fees`      the platform's fees;
 *   `platform:issuer`    where granted credits come from. It is the only ledger account that goes negative:
 *                        its balance is minus the credits in circulation.
 * Amounts are micro-credits (integers). Sources: the double-entry rule (sum of every transaction is zero) and
 * the escrow pattern of marketplaces such as Golem (allocation, then payment per activity, then release).
 */
import { DeqoError } from './errors.js';
import { formatCredits } from './format.js';
import { fromMicro, MAX_MICRO } from './money.js';
import { platformFee } from './pricing.js';

/** Kinds of ledger transactions. */
export type { LedgerKind } from '../protocol/index.js';
import type { LedgerKind } from '../protocol/index.js';

/** One side of a transaction: `amount` is added to `account` (negative = taken from it). */
export interface Posting {
  account: string;
  amount: number;
}

/** A balanced transaction. `executionId` is set for payments (one payment per execution, enforced by the store). */
export interface LedgerTxn {
  kind: LedgerKind;
  postings: Posting[];
  jobId: string | null;
  executionId: string | null;
  memo: string;
}

export const ISSUER = 'platform:issuer';
export const FEES = 'platform:fees';
/** The available-credits ledger account of an account id. */
export const accountLedger = (accountId: string): string => `acct:${accountId}`;
/** The escrow ledger account of a job. */
export const escrowLedger = (jobId: string): string => `escrow:${jobId}`;

/**
 * The lowest balance a ledger account may reach, µcr: 0, or −MAX_MICRO for the issuer (at most MAX_MICRO in
 * circulation, so every other balance, being non-negative with all of them summing to zero, is at most MAX_MICRO).
 */
export function lowestBalance(account: string): number {
  return account === ISSUER ? -MAX_MICRO : 0;
}

/**
 * The validation_failed error (field `amount`) of a grant that would put more than MAX_MICRO in circulation;
 * `circulation` is what is in circulation now, µcr.
 */
export function circulationExceeded(amount: number, circulation: number): DeqoError {
  const message =
    `granting ${formatCredits(amount)} would put ${formatCredits(circulation + amount)} in circulation, over the ` +
    `ledger's bound of ${formatCredits(MAX_MICRO)} (${formatCredits(MAX_MICRO - circulation)} can still be granted)`;
  return new DeqoError('validation_failed', message, [
    { path: 'amount', message, circulation: fromMicro(circulation), bound: fromMicro(MAX_MICRO) },
  ]);
}

/** Throws RangeError unless the postings are integers that sum to zero with no zero or duplicate accounts. */
export function assertBalanced(t: LedgerTxn): void {
  let sum = 0;
  const seen = new Set<string>();
  for (const p of t.postings) {
    if (!Number.isSafeInteger(p.amount) || p.amount === 0)
      throw new RangeError(`posting to ${p.account} must be a non-zero integer, got ${p.amount}`);
    if (seen.has(p.account)) throw new RangeError(`account ${p.account} appears twice in one transaction`);
    seen.add(p.account);
    sum += p.amount;
  }
  if (sum !== 0) throw new RangeError(`transaction ${t.kind} does not balance (sum ${sum})`);
}

/** Credits granted to an account by an admin (issued from the platform). */
export function grantTxn(accountId: string, amount: number, memo: string): LedgerTxn {
  return {
    kind: 'grant',
    jobId: null,
    executionId: null,
    memo,
    postings: [
      { account: ISSUER, amount: -amount },
      { account: accountLedger(accountId), amount },
    ],
  };
}

/** Buyer's credits moved into a job's escrow (at submission, or a top-up when a task needs more executions). */
export function escrowHoldTxn(buyerId: string, jobId: string, amount: number, memo: string): LedgerTxn {
  return {
    kind: 'escrow_hold',
    jobId,
    executionId: null,
    memo,
    postings: [
      { account: accountLedger(buyerId), amount: -amount },
      { account: escrowLedger(jobId), amount },
    ],
  };
}

/**
 * Payment of one valid execution from the job's escrow: the provider gets `cost − fee`, the platform the fee
 * (`feeBps` basis points of the cost). `cost` is already capped at what escrow holds for one execution.
 * Null for a free execution (nothing moves).
 */
export function paymentTxn(
  jobId: string,
  executionId: string,
  providerId: string,
  cost: number,
  feeBps: number,
): LedgerTxn | null {
  if (cost <= 0) return null;
  const fee = platformFee(cost, feeBps);
  const postings: Posting[] = [{ account: escrowLedger(jobId), amount: -cost }];
  if (cost - fee > 0) postings.push({ account: accountLedger(providerId), amount: cost - fee });
  if (fee > 0) postings.push({ account: FEES, amount: fee });
  return { kind: 'payment', jobId, executionId, memo: `execution ${executionId}`, postings };
}

/** What is left in a job's escrow returned to its buyer when the job is settled. */
export function refundTxn(buyerId: string, jobId: string, remaining: number): LedgerTxn {
  return {
    kind: 'refund',
    jobId,
    executionId: null,
    memo: 'unused escrow returned',
    postings: [
      { account: escrowLedger(jobId), amount: -remaining },
      { account: accountLedger(buyerId), amount: remaining },
    ],
  };
}

/**
 * Credits taken back from a provider whose valid result a re-verification overturned, returned to the buyer who paid
 * for it (backtracking, spotchecks.ts): at most what it was paid and what it still holds. `executionId` is named in
 * the memo only: the ledger keeps one payment posting per (execution, account).
 */
export function clawbackTxn(
  providerId: string,
  buyerId: string,
  jobId: string,
  executionId: string,
  amount: number,
): LedgerTxn {
  return {
    kind: 'clawback',
    jobId,
    executionId: null,
    memo: `taken back: execution ${executionId} was overturned on re-verification`,
    postings: [
      { account: accountLedger(providerId), amount: -amount },
      { account: accountLedger(buyerId), amount },
    ],
  };
}
