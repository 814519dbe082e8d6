/**
 * What the engine tells observers (the coordinator's metrics, tests): a typed EventEmitter, `engine.events`.
 * Each event fires after the change it describes is committed, from the coordinator that made the change.
 * Every change is a conditional write that exactly one coordinator wins, so with several coordinators on one
 * database each event fires in exactly one of them: per-process counts add up to the cluster's.
 * A listener that throws is logged and skipped; it never fails the engine step that emitted.
 */
import { EventEmitter } from 'node:events';
import type { ExecutionState, JobState } from '../protocol/index.js';

/**
 * What settling one execution did: its final state (and failure reason, for failed or lost ones), and the money
 * moved from escrow, µcr: `paid` to its provider, `fee` to the platform (both 0 unless it was paid).
 */
export interface SettledExecution {
  executionId: string;
  jobId: string;
  state: ExecutionState;
  reason: string | null;
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

/** An agent claimed an execution: `latencyMs` from its placement (assigned) to the claim. */
export interface DispatchedEvent {
  executionId: string;
  jobId: string;
  taskId: string;
  agentId: string;
  latencyMs: number;
}

/** The verifier decided a task: verified, or failed with `reason` (no_quorum, too_many_errors, insufficient_funds …). */
export interface TaskDecidedEvent {
  taskId: string;
  jobId: string;
  outcome: 'verified' | 'failed';
  reason: string | null;
}

/**
 * An ended execution was settled (once per execution): its final state, and for failed or lost ones the reason
 * (`lease_expired` and `not_claimed` are the lost leases).
 */
export interface ExecutionSettledEvent {
  executionId: string;
  jobId: string;
  state: ExecutionState;
  reason: string | null;
}

/** An ended job was settled (once per job): its final state and `durationMs` from submission to its end. */
export interface JobEndedEvent {
  jobId: string;
  state: JobState;
  durationMs: number;
}

/** Kinds of credit movement: held in escrow (submission, top-up), paid to a provider, platform fee, refunded to the buyer. */
export type CreditKind = 'escrow_hold' | 'payment' | 'fee' | 'refund';

/** Credits moved by the ledger for a job; `microCredits` > 0. */
export interface CreditsMovedEvent {
  kind: CreditKind;
  jobId: string;
  microCredits: number;
}

/**
 * Something about a job changed that the events above do not announce: it was submitted, executions were placed
 * (the job may now be running), an execution reported or was lost, tasks expired in the queue, or it was cancelled.
 * Live observers (the coordinator's event stream) re-read the job on it.
 */
export interface JobTouchedEvent {
  jobId: string;
  cause: 'submitted' | 'placed' | 'reported' | 'lost' | 'expired' | 'cancelled';
}

/** Event name → listener arguments. */
export interface EngineEventMap {
  dispatched: [DispatchedEvent];
  taskDecided: [TaskDecidedEvent];
  executionSettled: [ExecutionSettledEvent];
  jobEnded: [JobEndedEvent];
  creditsMoved: [CreditsMovedEvent];
  jobTouched: [JobTouchedEvent];
}

/** The engine's event emitter. `onListenerError` hears what a throwing listener threw. */
export class EngineEvents extends EventEmitter<EngineEventMap> {
  constructor(private readonly onListenerError: (err: unknown, event: keyof EngineEventMap) => void) {
    super();
  }

  /** Emits `event` to every listener; never throws (see onListenerError). */
  notify<K extends keyof EngineEventMap>(event: K, ...args: EngineEventMap[K]): void {
    for (const listener of this.rawListeners(event)) {
      try {
        (listener as (...a: EngineEventMap[K]) => void)(...args);
      } catch (err) {
        this.onListenerError(err, event);
      }
    }
  }

  /** Announces a settled execution: executionSettled, then the payment and fee it moved (if any). */
  executionSettled(s: SettledExecution): void {
    this.notify('executionSettled', { executionId: s.executionId, jobId: s.jobId, state: s.state, reason: s.reason });
    this.credits('payment', s.jobId, s.paid);
    this.credits('fee', s.jobId, s.fee);
  }

  /** Announces a settled job: jobEnded, then its refund (if any). */
  jobSettled(s: SettledJob): void {
    this.notify('jobEnded', { jobId: s.jobId, state: s.state, durationMs: Math.max(0, s.finishedAt - s.createdAt) });
    this.credits('refund', s.jobId, s.refunded);
  }

  /** Announces credits moved for a job; nothing for 0. */
  credits(kind: CreditKind, jobId: string, microCredits: number): void {
    if (microCredits > 0) this.notify('creditsMoved', { kind, jobId, microCredits });
  }
}
