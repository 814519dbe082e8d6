/**
 * Settlement rules: what an ended execution earns and what it does to its provider's reputation. The engine
 * reads an ended execution, asks these rules, and has the store write the payment and the reputation change in
 * the transaction that marks the execution settled (exactly once).
 *
 * - A valid execution is paid its cost at its own offer price for its measured use (pricing.ts), capped at what
 *   escrow holds for one execution; it counts as valid for reputation, cross-checked when another provider's
 *   result agreed (BOINC's `consecutive_valid` rule, reputation.ts).
 * - An invalid (outvoted) one earns nothing and counts as invalid.
 * - A failed or lost one earns nothing; it counts as an error when the failure catalogue says the reason counts
 *   against the provider (failures.ts).
 * - A cancelled one earns nothing and leaves reputation alone.
 */
import type { ExecutionState, Failure, Price } from '../protocol/index.js';
import { meaningOf } from './failures.js';
import { paymentTxn, type LedgerTxn } from './ledger.js';
import { executionCost, type Reserved } from './pricing.js';
import type { ReputationOutcome } from './reputation.js';

/** What the settlement rule reads of one ended execution. Times epoch ms, money µcr. */
export interface EndedExecution {
  executionId: string;
  jobId: string;
  providerId: string;
  state: ExecutionState;
  failure: Failure | null;
  /** Wall time the provider was paid for, ms (null when it reported no usage). */
  wallMs: number | null;
  /** The offer price it was placed at. */
  price: Price;
  reserved: Reserved;
  timeoutMs: number;
  /** The most escrow holds for one execution of the job. */
  executionMaxCost: number;
  /** Valid executions of the same task, this one included. */
  validInTask: number;
  startedAt: number | null;
  finishedAt: number | null;
}

/** What settling an ended execution does: the amount paid from escrow (µcr), its ledger transaction, and reputation. */
export interface ExecutionSettlement {
  cost: number;
  payment: LedgerTxn | null;
  reputation: ReputationOutcome | null;
}

/** Settles one ended execution (see the module comment). `feeBps` is the platform fee in basis points. */
export function settleExecution(e: EndedExecution, feeBps: number): ExecutionSettlement {
  const turnaroundMs = e.startedAt !== null && e.finishedAt !== null ? e.finishedAt - e.startedAt : null;
  switch (e.state) {
    case 'valid': {
      const cost = Math.min(executionCost(e.price, e.reserved, e.wallMs ?? 0, e.timeoutMs), e.executionMaxCost);
      return {
        cost,
        payment: paymentTxn(e.jobId, e.executionId, e.providerId, cost, feeBps),
        reputation: { kind: 'valid', crossChecked: e.validInTask >= 2, turnaroundMs },
      };
    }
    case 'invalid':
      return { cost: 0, payment: null, reputation: { kind: 'invalid', turnaroundMs } };
    case 'failed':
    case 'lost': {
      const against = e.failure !== null && meaningOf(e.failure.reason).againstProvider;
      return { cost: 0, payment: null, reputation: against ? { kind: 'error' } : null };
    }
    default:
      return { cost: 0, payment: null, reputation: null };
  }
}
