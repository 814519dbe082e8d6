/** Expanding a job spec into tasks, and the environment each task's container sees. */
import { execArgsProblem, type FieldProblem, type JobSpec, type ParamValue } from '../protocol/index.js';

/** One task of a job: its array index and parameters. */
export interface TaskPlan {
  index: number;
  params: Record<string, ParamValue>;
}

/** Most tasks a job may expand to. */
export const MAX_TASKS_PER_JOB = 10_000;

/**
 * Tasks of a job: one for a plain job; one per index for an array job (`count`), per entry of `parameters`,
 * or per point of the cartesian product of `sweep` (first key varies slowest, as nested loops read).
 * Throws RangeError when a sweep expands past MAX_TASKS_PER_JOB.
 */
export function expandTasks(spec: JobSpec): TaskPlan[] {
  const a = spec.array;
  if (!a) return [{ index: 0, params: {} }];
  if (a.count !== undefined) return Array.from({ length: a.count }, (_, index) => ({ index, params: {} }));
  if (a.parameters) return a.parameters.map((params, index) => ({ index, params }));
  let points: Record<string, ParamValue>[] = [{}];
  for (const [name, values] of Object.entries(a.sweep ?? {})) {
    if (points.length * values.length > MAX_TASKS_PER_JOB) {
      throw new RangeError(`the sweep expands to more than ${MAX_TASKS_PER_JOB} tasks`);
    }
    points = points.flatMap((p) => values.map((v) => ({ ...p, [name]: v })));
  }
  return points.map((params, index) => ({ index, params }));
}

/**
 * Environment of a task's container: the spec's env, then DEQO_TASK_INDEX, DEQO_TASK_COUNT,
 * DEQO_PARAMS (JSON of all parameters) and DEQO_PARAM_<NAME> (upper-cased) for each parameter.
 */
export function taskEnv(spec: JobSpec, task: TaskPlan, taskCount: number): Record<string, string> {
  const env: Record<string, string> = { ...spec.env };
  env.DEQO_TASK_INDEX = String(task.index);
  env.DEQO_TASK_COUNT = String(taskCount);
  env.DEQO_PARAMS = JSON.stringify(task.params);
  for (const [k, v] of Object.entries(task.params)) env[`DEQO_PARAM_${k.toUpperCase()}`] = String(v);
  return env;
}

/**
 * The first task whose container command and environment (taskEnv: the spec's env with the DEQO_* variables of its
 * parameters) exceed what the kernel and Docker accept (protocol execArgsProblem), as a problem of the field that
 * holds its parameters (`array.parameters.<i>` or `array.sweep`), or `env` for a plain job; null when all fit.
 */
export function taskExecProblem(spec: JobSpec, tasks: readonly TaskPlan[]): FieldProblem | null {
  for (const task of tasks) {
    const problem = execArgsProblem(spec.command, taskEnv(spec, task, tasks.length));
    if (!problem) continue;
    const a = spec.array;
    const path = a?.parameters ? `array.parameters.${task.index}` : a?.sweep ? 'array.sweep' : problem.path;
    return { path, message: `task ${task.index} with its DEQO_* variables: ${problem.path}: ${problem.message}` };
  }
  return null;
}
