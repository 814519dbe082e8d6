/** Verifier: turns an agent's report into a recorded execution end, and decides its task. */
import {
  clampFailureMessage,
  resultHashOf,
  decideTask,
  DeqoError,
  errors,
  failureVerdict,
  type Decision,
} from '../core/index.js';
import type { Failure, FailureReason, ReportRequest } from '../protocol/index.js';
import { topUpCost, type ExecutionEnd, type Store, type TaskForVerification } from '../store/index.js';
import type { EngineEvents } from './events.js';

/** Failures caused by the job itself: they vote like results (so one provider cannot fail a task alone). */
const JOB_FAILURES: ReadonlySet<FailureReason> = new Set([
  'out_of_memory',
  'timeout',
  'image_not_found',
  'output_too_large',
  'requirements_unavailable',
]);

const FAILURE_TEXT: Partial<Record<FailureReason, string>> = {
  out_of_memory: 'the job ran out of memory (exit 137): raise resources.memoryMb',
  timeout: 'the job ran past resources.timeoutSeconds and was stopped',
  image_not_found: 'the image is not present on the provider and could not be pulled',
  output_too_large: 'the output directory grew past limits.outputBytes',
  requirements_unavailable:
    "the script's requirements are not importable in the image (give network: true to pip-install them, or pick an image that has them)",
};

/**
 * Classifies a report into an execution end. Throws DeqoError digest_mismatch when the claimed result hash
 * does not match the manifest, or stdout's hash does not match its blob; validation_failed for blobs the
 * reporting provider (`providerId`) did not upload or a manifest listing one path twice (no canonical form).
 */
export async function classifyReport(store: Store, r: ReportRequest, providerId: string): Promise<ExecutionEnd> {
  for (const b of [r.stdoutBlob, r.stderrBlob, r.outcome === 'completed' ? r.outputsBlob : undefined]) {
    // The reporter must have uploaded (or otherwise be able to read) every blob it names: the buyer is then
    // granted access to them, so naming someone else's blob would leak it.
    if (b !== undefined && !(await store.accounts.canReadBlob(b, providerId))) {
      throw new DeqoError(
        'validation_failed',
        `blob ${b} was not uploaded by this provider; upload it with POST /v1/blobs before reporting`,
      );
    }
  }
  if (r.outcome === 'completed') {
    const paths = new Set(r.manifest.files.map((f) => f.path));
    if (paths.size !== r.manifest.files.length) {
      throw new DeqoError(
        'validation_failed',
        'manifest.files lists an output path more than once; list each file once',
      );
    }
    if (resultHashOf(r.manifest) !== r.resultHash)
      throw new DeqoError('digest_mismatch', 'resultHash is not the SHA-256 of the canonical manifest');
    if (r.manifest.stdoutSha256 !== r.stdoutBlob)
      throw new DeqoError('digest_mismatch', 'manifest.stdoutSha256 differs from stdoutBlob');
    const failure: Failure | null =
      r.manifest.exitCode === 0
        ? null
        : { reason: 'nonzero_exit', blame: 'job', message: `the job exited with code ${r.manifest.exitCode}` };
    return {
      state: 'reported',
      verdict: r.resultHash,
      exitCode: r.manifest.exitCode,
      resultHash: r.resultHash,
      manifest: r.manifest,
      failure,
      usage: r.usage,
      stdoutBlob: r.stdoutBlob,
      stderrBlob: r.stderrBlob,
      outputsBlob: r.outputsBlob,
    };
  }
  const message = clampFailureMessage(FAILURE_TEXT[r.reason] ? `${FAILURE_TEXT[r.reason]} (${r.message})` : r.message);
  if (JOB_FAILURES.has(r.reason)) {
    return {
      state: 'reported',
      verdict: failureVerdict(r.reason),
      exitCode: null,
      resultHash: null,
      manifest: null,
      failure: { reason: r.reason, blame: 'job', message },
      usage: r.usage ?? null,
      stdoutBlob: r.stdoutBlob ?? null,
      stderrBlob: r.stderrBlob ?? null,
      outputsBlob: null,
    };
  }
  return {
    state: 'failed',
    failure: { reason: r.reason, blame: r.reason === 'cancelled' ? 'none' : 'provider', message },
    usage: r.usage ?? null,
    stdoutBlob: r.stdoutBlob ?? null,
    stderrBlob: r.stderrBlob ?? null,
  };
}

/**
 * Decides a task from its executions and applies the decision, retrying when another writer changed the
 * task meanwhile. For an already decided task, grades late results. Returns the decision kind applied.
 * A decision that needs more escrow than the buyer has fails the task (insufficient_funds) instead.
 * `events`, when given, hears taskDecided for a verified or failed task and creditsMoved for an escrow top-up.
 */
export async function verifyTask(
  store: Store,
  taskId: string,
  now: () => number,
  events?: EngineEvents,
): Promise<'verified' | 'failed' | 'pending' | 'closed'> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const task = await store.executions.taskForVerification(taskId);
    if (!task) throw errors.notFound('task', taskId);
    if (task.state !== 'queued' && task.state !== 'running') {
      await store.executions.gradeLateResults(taskId, task.state === 'cancelled' ? null : task.verdict, now());
      return 'closed';
    }
    const decision = decideTask(task.policy, task.target, task.votes);
    if (decision.kind === 'pending' && decision.target === task.target) return 'pending';
    const applied = await applyOrFail(store, task, decision, now());
    if (!applied) continue;
    if (applied.kind === 'pending') events?.credits('escrow_hold', task.jobId, topUpCost(task, applied.target));
    else
      events?.notify('taskDecided', {
        taskId,
        jobId: task.jobId,
        outcome: applied.kind,
        reason: applied.kind === 'failed' ? applied.failure.reason : null,
      });
    return applied.kind;
  }
  throw new DeqoError('conflict', `task ${taskId} kept changing while being verified; retry`);
}

/**
 * Applies `d`, or, when it needs an escrow top-up the buyer cannot fund, fails the task with insufficient_funds
 * (its reported results invalid). Returns the decision applied, or null when the task changed meanwhile.
 */
async function applyOrFail(
  store: Store,
  task: TaskForVerification,
  d: Decision,
  now: number,
): Promise<Decision | null> {
  try {
    return (await store.executions.applyDecision(task, d, now)) ? d : null;
  } catch (err) {
    if (!(err instanceof DeqoError) || err.code !== 'insufficient_funds') throw err;
    const failed: Decision = {
      kind: 'failed',
      verdict: null,
      valid: [],
      cancel: [],
      invalid: task.votes.filter((v) => v.state === 'reported').map((v) => v.id),
      failure: {
        reason: 'insufficient_funds',
        blame: 'job',
        message: `results disagree and another replica is needed, but the buyer cannot fund it: ${err.message}`,
      },
    };
    return (await store.executions.applyDecision(task, failed, now)) ? failed : null;
  }
}
