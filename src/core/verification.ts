/**
 * Verification by redundant execution: deciding a task from its executions' results.
 *
 * Each reported execution carries a verdict: its result hash (the container exited, with any code), or
 * `failure:<reason>` for a job-caused failure that left no comparable result (out of memory, timeout, unknown
 * image, output too large). A task is decided when `quorum` reported executions share a verdict
 * (BOINC's validator idea, sched/validate_util2.cpp: a canonical result needs agreeing results from distinct
 * hosts). If agreement is no longer possible with what is outstanding, the target number of executions is
 * raised; executions are bounded by `maxExecutions` and provider-side errors by `maxErrors`
 * (BOINC's max_total_results / max_error_results, tools/backend_lib.cpp).
 */
import type { ExecutionState, Failure } from '../protocol/index.js';
import { clampFailureMessage, failureOf } from './failures.js';

/** Task-level verification settings (from the job spec, defaults filled). */
export interface VerificationPolicy {
  quorum: number;
  maxExecutions: number;
  maxErrors: number;
}

/** What the verifier needs to know of one execution. `at` orders reports (earliest wins ties), ms. */
export interface ExecutionVote {
  id: string;
  state: ExecutionState;
  verdict: string | null;
  exitCode: number | null;
  failure: Failure | null;
  at: number;
}

/** Outcome of deciding a task. `cancel` are executions to stop because nobody needs them any more. */
export type Decision =
  | { kind: 'verified'; verdict: string; valid: string[]; invalid: string[]; cancel: string[] }
  | { kind: 'failed'; failure: Failure; verdict: string | null; valid: string[]; invalid: string[]; cancel: string[] }
  | { kind: 'pending'; target: number };

/** Verdict of a job-caused failure without a comparable result. */
export function failureVerdict(reason: string): string {
  return `failure:${reason}`;
}

/** Default cap on executions per task when the spec gives none. */
export function defaultMaxExecutions(replicas: number): number {
  return replicas + 3;
}

/**
 * Decides a task from its executions. `target` is the task's current wanted number of active
 * (assigned, running, reported) executions; a pending decision may raise it, never lower it.
 */
export function decideTask(policy: VerificationPolicy, target: number, executions: readonly ExecutionVote[]): Decision {
  const reported = executions.filter((e) => e.state === 'reported').sort((a, b) => a.at - b.at);
  const outstanding = executions.filter((e) => e.state === 'assigned' || e.state === 'running');
  const errors = executions.filter((e) => e.state === 'failed' || e.state === 'lost');

  const groups = new Map<string, ExecutionVote[]>();
  for (const e of reported) {
    const key = e.verdict ?? failureVerdict('unknown');
    groups.set(key, [...(groups.get(key) ?? []), e]);
  }
  // Largest group; Map keeps insertion order, so ties go to the verdict reported first.
  let best: { verdict: string; members: ExecutionVote[] } | null = null;
  for (const [verdict, members] of groups)
    if (!best || members.length > best.members.length) best = { verdict, members };

  const ids = (xs: readonly ExecutionVote[]) => xs.map((x) => x.id);
  if (best && best.members.length >= policy.quorum) {
    const valid = ids(best.members);
    const invalid = ids(reported.filter((e) => !valid.includes(e.id)));
    const first = best.members[0]!;
    if (first.exitCode === 0 && first.failure === null) {
      // Started replicas finish and are graded against the canonical verdict; unstarted ones are cancelled.
      return {
        kind: 'verified',
        verdict: best.verdict,
        valid,
        invalid,
        cancel: ids(outstanding.filter((e) => e.state === 'assigned')),
      };
    }
    const failure: Failure =
      first.failure ??
      failureOf('nonzero_exit', `exit code ${first.exitCode ?? '?'}, agreed by ${valid.length} providers`);
    return { kind: 'failed', failure, verdict: best.verdict, valid, invalid, cancel: ids(outstanding) };
  }

  const giveUp = (failure: Failure): Decision => ({
    kind: 'failed',
    failure,
    verdict: null,
    valid: [],
    invalid: ids(reported),
    cancel: ids(outstanding),
  });

  if (errors.length >= policy.maxErrors) {
    const last = [...errors].sort((a, b) => a.at - b.at).at(-1)!;
    return giveUp(
      failureOf(
        'too_many_errors',
        clampFailureMessage(
          `${errors.length} executions failed on the provider side (limit ${policy.maxErrors}); last: ${last.failure?.message ?? last.state}`,
        ),
      ),
    );
  }

  const maxVotes = best?.members.length ?? 0;
  const room = Math.max(0, policy.maxExecutions - executions.length);
  if (maxVotes + outstanding.length + room < policy.quorum) {
    return giveUp(
      failureOf(
        'no_quorum',
        `no ${policy.quorum} of ${reported.length} results agree (${groups.size} distinct) and the cap of ` +
          `${policy.maxExecutions} executions is reached; a nondeterministic job cannot be verified by replication`,
      ),
    );
  }
  const missingVotes = Math.max(0, policy.quorum - maxVotes - outstanding.length);
  return { kind: 'pending', target: Math.max(target, reported.length + outstanding.length + missingVotes) };
}

/** Grade of an execution that reports after its task was decided: it agrees with the canonical verdict or not. */
export function gradeLateResult(canonicalVerdict: string | null, verdict: string): 'valid' | 'invalid' {
  return canonicalVerdict !== null && canonicalVerdict === verdict ? 'valid' : 'invalid';
}

/** What the canonical-execution rule reads of a valid execution: its id and when it reported (ms). */
export interface CanonicalCandidate {
  id: string;
  reportedAt: number;
}

/**
 * The canonical execution of a verified task: the one whose outputs `deqo results` serves and whose logs are the
 * task's. The earliest-reported valid execution (the one the verifier's largest group is ordered by), ties broken
 * by id so every reader picks the same one. Null when there is no valid execution.
 */
export function canonicalExecution<T extends CanonicalCandidate>(valid: readonly T[]): T | null {
  let best: T | null = null;
  for (const e of valid) {
    if (!best || e.reportedAt < best.reportedAt || (e.reportedAt === best.reportedAt && e.id < best.id)) best = e;
  }
  return best;
}
