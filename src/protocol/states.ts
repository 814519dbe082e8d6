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
 * Why an execution or a task ended without a verified result, e.g. `out_of_memory`, `lease_expired`, `no_quorum`.
 * The reasons and what each means (who is blamed, whether it votes, is charged, counts against the provider)
 * are core's failure catalogue (src/core/failures.ts); on the wire a reason is a short snake_case word, and the
 * coordinator refuses a report whose reason the catalogue does not let an agent report.
 */
export const FailureReasonSchema = z
  .string()
  .regex(/^[a-z][a-z0-9_]{0,47}$/, 'expected a failure reason such as "out_of_memory" (snake_case)');
