/**
 * Submission and cancellation: a parsed job spec becomes a stored job with its tasks and its escrow held, in one
 * transaction; a cancellation ends what is open of a job and settles it.
 */
import {
  accountLedger,
  admitTasks,
  defaultMaxExecutions,
  demandOf,
  DeqoError,
  errors,
  escrowHoldTxn,
  expandTasks,
  failureOf,
  formatCredits,
  fromMicro,
  jobEscrow,
  PROBE_PAIR,
  taskExecProblem,
  type JobEscrow,
  type TaskPlan,
} from '../core/index.js';
import type { JobSpec } from '../protocol/index.js';
import { Effects } from './effects.js';
import type { EngineResources } from './resources.js';
import type { SettlementSystem } from './settlement.js';

/**
 * Expands a spec into its tasks; throws DeqoError validation_failed (field `array`) when it expands too far, or
 * (naming the field) when a task's command and environment would not fit in a container (core taskExecProblem).
 */
function tasksOf(spec: JobSpec): TaskPlan[] {
  let tasks: TaskPlan[];
  try {
    tasks = expandTasks(spec);
  } catch (err) {
    const message = (err as Error).message;
    throw new DeqoError('validation_failed', message, [{ path: 'array', message }]);
  }
  const problem = taskExecProblem(spec, tasks);
  if (problem)
    throw new DeqoError('validation_failed', `invalid job spec: ${problem.path}: ${problem.message}`, [problem]);
  return tasks;
}

/**
 * Admission of a parsed spec beyond its schema, shared by quote and submit so they never disagree: its tasks
 * (tasksOf) and its escrow (core jobEscrow). Throws DeqoError validation_failed naming the field (array, a task's
 * environment, maxPrice when the worst case passes the ledger's bound).
 */
export function admit(spec: JobSpec): { tasks: TaskPlan[]; escrow: JobEscrow } {
  const tasks = tasksOf(spec);
  return { tasks, escrow: jobEscrow(spec, tasks.length) };
}

export class SubmissionSystem {
  constructor(
    private readonly r: EngineResources,
    private readonly settlement: SettlementSystem,
  ) {}

  /**
   * Stores a parsed spec as a job of the buyer's with its maximum cost held in escrow (core jobEscrow). Throws
   * DeqoError not_found for an input blob the buyer cannot read (naming the input), validation_failed as admit
   * does, quota_exceeded when the buyer's open tasks would pass `limits.queuedTasks`, insufficient_funds (with the
   * shortfall) when the buyer cannot afford the escrow.
   */
  async submit(buyerId: string, spec: JobSpec): Promise<{ jobId: string; tasks: number; escrow: number }> {
    const { store, log } = this.r;
    const sizes = new Map<string, number>();
    for (const input of spec.inputs) {
      const size = await store.accounts.blobSize(input.blob);
      if (size === null || !(await store.accounts.canReadBlob(input.blob, buyerId))) {
        throw errors.notFound('input blob', `${input.blob} (inputs: ${input.path}); upload it first`);
      }
      sizes.set(input.blob, size);
    }
    const { tasks, escrow } = admit(spec);
    const v = spec.verification;
    const jobId = await store.transaction(async (tx) => {
      const now = this.r.now();
      admitTasks(await tx.jobs.openTasksOf(buyerId), tasks.length, this.r.limits.queuedTasks);
      const available = await tx.ledger.balance(accountLedger(buyerId));
      if (escrow.total > available) throw unaffordable(buyerId, escrow, tasks.length, available);
      const id = await tx.jobs.insert(
        {
          buyerId,
          spec,
          demand: demandOf(
            spec,
            [...sizes.values()].reduce((a, b) => a + b, 0),
          ),
          tasks,
          policy: {
            replicas: v.replicas,
            quorum: v.quorum,
            maxExecutions: v.maxExecutions ?? defaultMaxExecutions(v.replicas),
            maxErrors: v.maxErrors,
            maxError: v.maxError ?? null,
          },
          fundedPerTask: escrow.fundedPerTask,
          executionMaxCost: escrow.executionMaxCost,
          probe: v.checkDeterminism,
        },
        now,
      );
      const inputs = spec.inputs.map((i) => i.blob);
      // Taken up in this transaction: a sweep deleting one of them meanwhile makes the job fail here, not later.
      if ((await tx.blobs.touch(inputs, now)) < new Set(inputs).size)
        throw errors.notFound('input blob', 'of this job (it expired meanwhile); upload it again');
      await tx.blobs.reference(id, inputs);
      if (escrow.total > 0) {
        const probe = escrow.probe > 0 ? ` + ${PROBE_PAIR} determinism probe execution(s)` : '';
        const memo = `escrow for ${tasks.length} task(s) × ${escrow.fundedPerTask} execution(s)${probe}`;
        await tx.ledger.post(escrowHoldTxn(buyerId, id, escrow.total, memo), now);
      }
      return id;
    });
    log.info({ jobId, tasks: tasks.length, image: spec.image, escrow: escrow.total }, 'job submitted');
    this.r.events.credits('escrow_hold', jobId, escrow.total);
    this.r.events.notify('jobTouched', { jobId, cause: 'submitted' });
    return { jobId, tasks: tasks.length, escrow: escrow.total };
  }

  /** Cancels a job: its open tasks and their executions end as cancelled, and it is settled. False when it had ended. */
  async cancel(jobId: string): Promise<boolean> {
    const fx = await this.r.store.transaction(async (tx) => {
      const f = new Effects();
      const now = this.r.now();
      await tx.jobs.lock([jobId]);
      if (!(await tx.jobs.setState(jobId, 'cancelled', now))) return null;
      const cancelled = await tx.jobs.cancelOpenWork(jobId, failureOf('cancelled', 'the job was cancelled'), now);
      await tx.jobs.setProbe(jobId, 'pending', 'cancelled'); // nothing when it has none or it ended

      f.touch(jobId, 'cancelled');
      await this.settlement.executions(tx, cancelled, now, f);
      await this.settlement.job(tx, jobId, now, f);
      return f;
    });
    if (!fx) return false;
    this.r.log.info({ jobId }, 'job cancelled');
    fx.emit(this.r.events);
    return true;
  }
}

/** The insufficient_funds error of a job whose escrow the buyer cannot hold, naming the shortfall. */
function unaffordable(buyerId: string, escrow: JobEscrow, tasks: number, available: number): DeqoError {
  const shortfall = escrow.total - available;
  return new DeqoError(
    'insufficient_funds',
    `the job's escrow is ${formatCredits(escrow.total)} (${tasks} task(s) × ${escrow.fundedPerTask} execution(s)` +
      `${escrow.probe > 0 ? ` + ${PROBE_PAIR} determinism probe execution(s)` : ''} × ` +
      `${formatCredits(escrow.executionMaxCost)} at most each) but you have ${formatCredits(available)}: short by ` +
      `${formatCredits(shortfall)}. Lower replicas, timeout or maxPrice (\`deqo quote\` prices it), or ask an admin for credits.`,
    {
      account: accountLedger(buyerId),
      needed: fromMicro(escrow.total),
      available: fromMicro(available),
      shortfall: fromMicro(shortfall),
    },
  );
}
