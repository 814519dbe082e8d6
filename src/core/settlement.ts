/**
 * Settlement rules: what an ended execution earns and what it does to its provider's reputation. The engine
 * reads an ended execution, asks these rules, and has the store write the payment and the reputation change in
 * the transaction that marks the execution settled (exactly once).
 *
 * Providers are paid for what the coordinator observed, not for what they claim: the wall time billed is the
 * reported one bounded by the time between the claim and the report (or the stop) as the coordinator saw it.
 *
 * - A valid execution is paid its cost at its own offer price for that time (pricing.ts), capped at what escrow
 *   holds for one execution; it counts as valid for reputation, cross-checked when another provider's result agreed
 *   (BOINC's `consecutive_valid` rule, reputation.ts), confirmed when the rest of its group confirms it independently.
 * - An invalid (outvoted) one earns nothing and counts as invalid.
 * - A failed or lost one earns nothing; it counts as an error when the failure catalogue says the reason counts
 *   against the provider (failures.ts).
 * - One that ended without a grade (`cancelled`: the buyer cancelled, or its task ended without a verdict) is paid
 *   for the time it ran when the catalogue says the reason is charged, and leaves reputation alone; a `superseded`
 *   one (never started) earns nothing.
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
  /** Its result was confirmed independently (verification.ts confirmedMembers). */
  confirmed: boolean;
  startedAt: number | null;
  finishedAt: number | null;
}

/**
 * What settling an ended execution does: whether it is paid for its work (`payable`), the amount paid from escrow
 * (µcr; may be 0 at zero prices), its ledger transaction (null when nothing moves), and its reputation outcome.
 */
export interface ExecutionSettlement {
  payable: boolean;
  cost: number;
  payment: LedgerTxn | null;
  reputation: ReputationOutcome | null;
}

/** Settles one ended execution (see the module comment). `feeBps` is the platform fee in basis points. */
export function settleExecution(e: EndedExecution, feeBps: number): ExecutionSettlement {
  const observedMs = e.startedAt !== null && e.finishedAt !== null ? Math.max(0, e.finishedAt - e.startedAt) : null;
  const pay = (): { payable: boolean; cost: number; payment: LedgerTxn | null } => {
    if (observedMs === null) return { payable: false, cost: 0, payment: null };
    const wallMs = Math.min(e.wallMs ?? observedMs, observedMs);
    const cost = Math.min(executionCost(e.price, e.reserved, wallMs, e.timeoutMs), e.executionMaxCost);
    return { payable: true, cost, payment: paymentTxn(e.jobId, e.executionId, e.providerId, cost, feeBps) };
  };
  const nothing = { payable: false, cost: 0, payment: null };
  switch (e.state) {
    case 'valid':
      return {
        ...pay(),
        reputation: {
          kind: 'valid',
          crossChecked: e.validInTask >= 2,
          confirmed: e.confirmed,
          turnaroundMs: observedMs,
        },
      };
    case 'invalid':
      return { ...nothing, reputation: { kind: 'invalid', turnaroundMs: observedMs } };
    case 'failed':
    case 'lost': {
      const against = e.failure !== null && meaningOf(e.failure.reason).againstProvider;
      return { ...nothing, reputation: against ? { kind: 'error' } : null };
    }
    case 'cancelled': {
      const charged = e.failure !== null && meaningOf(e.failure.reason).charged;
      return charged ? { ...pay(), reputation: null } : { ...nothing, reputation: null };
    }
    default:
      return { ...nothing, reputation: null };
  }
}
