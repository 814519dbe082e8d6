/**
 * State machines of jobs, tasks and executions: the allowed transitions. The store applies every transition
 * as a conditional update (`WHERE state IN (from...)`), using these tables to know the `from` states.
 */
import type { ExecutionState, JobState, TaskState } from '../protocol/index.js';

/** For each target state, the states an execution may move from. */
export const EXECUTION_TRANSITIONS: Readonly<Record<ExecutionState, readonly ExecutionState[]>> = {
  assigned: [],
  running: ['assigned'],
  reported: ['running'],
  valid: ['reported'],
  invalid: ['reported'],
  failed: ['assigned', 'running'],
  lost: ['assigned', 'running'],
  // A reported result of a task the buyer cancelled is cancelled too: not graded, not paid, no reputation change.
  cancelled: ['assigned', 'running', 'reported'],
};

export const TASK_TRANSITIONS: Readonly<Record<TaskState, readonly TaskState[]>> = {
  queued: [],
  running: ['queued'],
  verified: ['queued', 'running'],
  failed: ['queued', 'running'],
  cancelled: ['queued', 'running'],
};

export const JOB_TRANSITIONS: Readonly<Record<JobState, readonly JobState[]>> = {
  queued: [],
  running: ['queued'],
  succeeded: ['queued', 'running'],
  failed: ['queued', 'running'],
  cancelled: ['queued', 'running'],
};

/** Executions that hold (or will hold) a provider's resources. */
export const ACTIVE_EXECUTION_STATES: readonly ExecutionState[] = ['assigned', 'running'];
export const TERMINAL_TASK_STATES: readonly TaskState[] = ['verified', 'failed', 'cancelled'];
export const TERMINAL_JOB_STATES: readonly JobState[] = ['succeeded', 'failed', 'cancelled'];

/** True when `from → to` is an allowed transition of the given machine. */
export function canTransition<S extends string>(table: Readonly<Record<S, readonly S[]>>, from: S, to: S): boolean {
  return table[to].includes(from);
}

/** Job state implied by its tasks' states (used when a task ends). */
export function rollUpJobState(tasks: readonly TaskState[]): JobState {
  if (tasks.length > 0 && tasks.every((t) => t === 'cancelled')) return 'cancelled';
  if (tasks.every((t) => TERMINAL_TASK_STATES.includes(t))) {
    return tasks.every((t) => t === 'verified') ? 'succeeded' : 'failed';
  }
  return tasks.some((t) => t !== 'queued') ? 'running' : 'queued';
}
