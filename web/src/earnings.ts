/** A provider's earnings from its ledger entries (payments into its account), for when the earnings route is missing. */
import type { LedgerEntry } from '../../src/protocol/index.js';

/** Payments credited to `accountId`, oldest first. */
export function paymentsOf(entries: LedgerEntry[], accountId: string): LedgerEntry[] {
  return entries
    .filter((e) => e.kind === 'payment' && e.account === `acct:${accountId}` && e.amount > 0)
    .sort((a, b) => a.at - b.at);
}

/** Running total of `payments` over time: one point per payment. */
export function cumulative(payments: LedgerEntry[]): { x: number[]; y: number[] } {
  let sum = 0;
  return { x: payments.map((p) => p.at), y: payments.map((p) => Number((sum += p.amount).toFixed(6))) };
}

/** Credits earned per job, largest first. */
export function byJob(
  payments: LedgerEntry[],
): Array<{ jobId: string; credits: number; executions: number; last: number }> {
  const m = new Map<string, { jobId: string; credits: number; executions: number; last: number }>();
  for (const p of payments) {
    const k = p.jobId ?? '(none)';
    const row = m.get(k) ?? { jobId: k, credits: 0, executions: 0, last: 0 };
    row.credits = Number((row.credits + p.amount).toFixed(6));
    row.executions++;
    row.last = Math.max(row.last, p.at);
    m.set(k, row);
  }
  return [...m.values()].sort((a, b) => b.last - a.last);
}
