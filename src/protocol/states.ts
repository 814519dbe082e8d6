/** Closed state enums shared by the API and the domain. Transition rules live in core/states.ts. */
import { z } from 'zod';

export const JobStateSchema = z.enum(['queued', 'running', 'succeeded', 'failed', 'cancelled']);
export type JobState = z.infer<typeof JobStateSchema>;

export const TaskStateSchema = z.enum(['queued', 'running', 'verified', 'failed', 'cancelled']);
export type TaskState = z.infer<typeof TaskStateSchema>;

/**
 * Observed state of an execution:
 * assigned (placed by the scheduler) → running (claimed under a lease) → reported (result in, awaiting quorum)
 * → valid | invalid; or failed (provider-side error), lost (lease expired / never claimed), cancelled.
 */
export const ExecutionStateSchema = z.enum([
  'assigned',
  'running',
  'reported',
  'valid',
  'invalid',
  'failed',
  'lost',
  'cancelled',
]);
export type ExecutionState = z.infer<typeof ExecutionStateSchema>;

/** Desired state of an execution, set by the coordinator: keep running, or stop (task decided, job cancelled). */
export const DesiredStateSchema = z.enum(['run', 'stop']);
export type DesiredState = z.infer<typeof DesiredStateSchema>;

/**
 * Why an execution did not produce a normal result. `blame` says who caused it:
 * job (the buyer's code or request), provider (the machine or agent), none (cancelled).
 */
export const FailureReasonSchema = z.enum([
  'nonzero_exit',
  'out_of_memory',
  'timeout',
  'image_not_found',
  'output_too_large',
  'input_unavailable',
  'agent_error',
  'lease_expired',
  'not_claimed',
  'cancelled',
  // task-level reasons: the verifier gave up
  'no_quorum',
  'too_many_errors',
  'queue_timeout',
  'insufficient_funds',
  // the provider's owner came back (idle policy): the execution was stopped, not charged
  'owner_returned',
  // the agent restarted and could not finish or vouch for the execution (its container was gone, or was an orphan)
  'agent_restarted',
  // a script job's requirements are neither importable in the image nor installable (no network, or no pip)
  'requirements_unavailable',
]);
export type FailureReason = z.infer<typeof FailureReasonSchema>;
