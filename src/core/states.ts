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
  // valid → invalid: re-graded when a re-verification overturns its task's verdict (backtracking, spotchecks.ts).
  invalid: ['reported', 'valid'],
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
/** Tasks still open: waiting for a provider or for results. */
export const OPEN_TASK_STATES: readonly TaskState[] = ['queued', 'running'];
export const TERMINAL_TASK_STATES: readonly TaskState[] = ['verified', 'failed', 'cancelled'];
export const TERMINAL_JOB_STATES: readonly JobState[] = ['succeeded', 'failed', 'cancelled'];

/** True when `from → to` is an allowed transition of the given machine. */
export function canTransition<S extends string>(table: Readonly<Record<S, readonly S[]>>, from: S, to: S): boolean {
  return table[to].includes(from);
}

/** How many of a job's tasks are in each state (kept on the job row as tasks move, so a roll-up reads no task). */
export type TaskCounts = Record<TaskState, number>;

/** Counts with every state at zero. */
export function emptyTaskCounts(): TaskCounts {
  return { queued: 0, running: 0, verified: 0, failed: 0, cancelled: 0 };
}

/** The counts of a list of task states. */
export function countTasks(states: readonly TaskState[]): TaskCounts {
  const c = emptyTaskCounts();
  for (const s of states) c[s] += 1;
  return c;
}

/**
 * Job state implied by its tasks' states: cancelled when every task was cancelled; succeeded when every task
 * verified; failed when all ended and some did not verify; running once any task left the queue; else queued.
 */
export function rollUpJobState(c: TaskCounts): JobState {
  const total = c.queued + c.running + c.verified + c.failed + c.cancelled;
  if (total > 0 && c.cancelled === total) return 'cancelled';
  if (c.queued + c.running === 0) return c.verified === total ? 'succeeded' : 'failed';
  return c.queued < total ? 'running' : 'queued';
}
