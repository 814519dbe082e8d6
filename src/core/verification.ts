/**
 * Verification by redundant execution: deciding a task from its executions' results.
 *
 * Each reported execution carries a verdict: its result hash (the container exited, with any code), or
 * `failure:<reason>` for a job-caused failure that left no comparable result (out of memory, timeout, unknown
 * image, output too large). Results that share a verdict form a group. A group is accepted when:
 *
 * - it has `quorum` members (BOINC's validator idea, sched/validate_util2.cpp: a canonical result needs agreeing
 *   results from distinct hosts) — at least 2 for a failure (a non-zero exit or a job-caused failure), so a single
 *   provider can neither fail a task nor bill the buyer for a failure alone;
 * - with an error bound ε (`maxError`): its credibility (Sarmenta's group credibility, credibility.ts) is at least
 *   1 − ε; without one (quorum voting): once a provider of established credibility has voted on the task, the group
 *   includes one (probation: providers nothing has confirmed cannot outvote an established one, and a pair of new
 *   accounts cannot be a task's quorum when an established provider took part).
 *
 * Otherwise the target number of executions is raised while an acceptable verdict is still reachable; executions
 * are bounded by `maxExecutions` and provider-side errors by `maxErrors` (BOINC's max_total_results /
 * max_error_results, tools/backend_lib.cpp). Giving up grades nobody: finished results are paid for the work
 * done (cancelled), with no reputation change — only results outvoted by an accepted group are invalid.
 */
import type { ExecutionState, Failure } from '../protocol/index.js';
import { groupCredibility } from './credibility.js';
import { clampFailureMessage, failureOf } from './failures.js';

/** Task-level verification settings (from the job spec, defaults filled). `maxError`: ε, or null for voting alone. */
export interface VerificationPolicy {
  quorum: number;
  maxExecutions: number;
  maxErrors: number;
  maxError: number | null;
}

/**
 * What the verifier needs to know of one execution. `at` orders reports (earliest wins ties), ms. `credibility` and
 * `established` are its provider's now (credibility.ts).
 */
export interface ExecutionVote {
  id: string;
  state: ExecutionState;
  verdict: string | null;
  exitCode: number | null;
  failure: Failure | null;
  at: number;
  providerId: string;
  credibility: number;
  established: boolean;
}

/**
 * Outcome of deciding a task. `valid` / `invalid` grade reported results (`confirmed`: the valid ones the rest of the
 * accepted group confirms independently, credibility.ts); `ungraded` are reported results that end without a grade
 * (paid for the work, no reputation change); `cancel` are placed but unstarted executions nobody needs (superseded);
 * `stop` are running ones to stop (paid for the time they ran).
 */
export type Decision =
  | {
      kind: 'verified';
      verdict: string;
      valid: string[];
      invalid: string[];
      confirmed: string[];
      ungraded: string[];
      cancel: string[];
      stop: string[];
    }
  | {
      kind: 'failed';
      failure: Failure;
      verdict: string | null;
      valid: string[];
      invalid: string[];
      confirmed: string[];
      ungraded: string[];
      cancel: string[];
      stop: string[];
    }
  | { kind: 'pending'; target: number };

/** Verdict of a job-caused failure without a comparable result. */
export function failureVerdict(reason: string): string {
  return `failure:${reason}`;
}

/** Default cap on executions per task when the spec gives none. */
export function defaultMaxExecutions(replicas: number): number {
  return replicas + 3;
}

/** A group of agreeing results and what acceptance reads of it. */
interface Group {
  verdict: string;
  members: ExecutionVote[];
  credibility: number;
  established: boolean;
  /** Members needed: the quorum, and at least 2 for a failure. */
  needed: number;
}

const ids = (xs: readonly ExecutionVote[]): string[] => xs.map((x) => x.id);

/** True when a result is a failure (non-zero exit or a job-caused failure): it needs a second provider to count. */
function isFailure(v: ExecutionVote): boolean {
  return v.failure !== null || (v.exitCode !== null && v.exitCode !== 0);
}

/**
 * The members of an accepted group whose result the rest of the group confirms independently: the other providers
 * include an established one, or are at least two. A pair of newcomers cannot confirm each other.
 */
export function confirmedMembers(group: readonly ExecutionVote[]): string[] {
  return group
    .filter((m) => {
      const rest = group.filter((o) => o.providerId !== m.providerId);
      return rest.some((o) => o.established) || new Set(rest.map((o) => o.providerId)).size >= 2;
    })
    .map((m) => m.id);
}

/**
 * Decides a task from its executions. `target` is the task's current wanted number of active (assigned, running,
 * reported) executions; a pending decision may raise it, never lower it.
 */
export function decideTask(policy: VerificationPolicy, target: number, executions: readonly ExecutionVote[]): Decision {
  const reported = executions.filter((e) => e.state === 'reported').sort((a, b) => a.at - b.at);
  const assigned = executions.filter((e) => e.state === 'assigned');
  const running = executions.filter((e) => e.state === 'running');
  const outstanding = assigned.length + running.length;
  const errors = executions.filter((e) => e.state === 'failed' || e.state === 'lost');

  const byVerdict = new Map<string, ExecutionVote[]>();
  for (const e of reported) {
    const key = e.verdict ?? failureVerdict('unknown');
    byVerdict.set(key, [...(byVerdict.get(key) ?? []), e]);
  }
  const lists = [...byVerdict.values()];
  const groups: Group[] = [...byVerdict].map(([verdict, members], i) => ({
    verdict,
    members,
    credibility: groupCredibility(
      lists.map((g) => g.map((m) => m.credibility)),
      i,
    ),
    established: members.some((m) => m.established),
    needed: isFailure(members[0]!) ? Math.max(policy.quorum, 2) : policy.quorum,
  }));
  const establishedVoted = reported.some((e) => e.established);
  const acceptable = (g: Group) =>
    g.members.length >= g.needed &&
    (policy.maxError !== null ? g.credibility >= 1 - policy.maxError : !establishedVoted || g.established);
  // Among acceptable groups the most credible wins, then the largest; Map order breaks ties by first report.
  const best = groups
    .filter(acceptable)
    .sort((a, b) => b.credibility - a.credibility || b.members.length - a.members.length)[0];

  if (best) {
    const valid = ids(best.members);
    const invalid = ids(reported.filter((e) => !valid.includes(e.id)));
    const confirmed = confirmedMembers(best.members);
    const first = best.members[0]!;
    if (!isFailure(first)) {
      // Started replicas finish and are graded against the verdict; unstarted ones are superseded.
      return {
        kind: 'verified',
        verdict: best.verdict,
        valid,
        invalid,
        confirmed,
        ungraded: [],
        cancel: ids(assigned),
        stop: [],
      };
    }
    const failure =
      first.failure ??
      failureOf('nonzero_exit', `exit code ${first.exitCode ?? '?'}, agreed by ${valid.length} providers`);
    return {
      kind: 'failed',
      failure,
      verdict: best.verdict,
      valid,
      invalid,
      confirmed,
      ungraded: [],
      cancel: ids(assigned),
      stop: ids(running),
    };
  }

  const giveUp = (failure: Failure): Decision => ({
    kind: 'failed',
    failure,
    verdict: null,
    valid: [],
    invalid: [],
    confirmed: [],
    ungraded: ids(reported),
    cancel: ids(assigned),
    stop: ids(running),
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

  const room = Math.max(0, policy.maxExecutions - executions.length);
  // The votes a group still lacks to be acceptable: its quorum, and under probation one from an established provider.
  const lackingFor = (g: Group) => {
    const short = Math.max(0, g.needed - g.members.length);
    return policy.maxError === null && establishedVoted && !g.established ? Math.max(short, 1) : short;
  };
  // A fresh group (a verdict nobody reported yet) needs a full quorum.
  const minLacking = Math.min(policy.quorum, ...groups.map(lackingFor));
  const reachable = policy.maxError !== null ? outstanding + room > 0 : minLacking <= outstanding + room;
  if (!reachable) {
    const leading = [...groups].sort((a, b) => b.credibility - a.credibility)[0];
    const why =
      policy.maxError !== null
        ? `no group of results reached the error bound ${policy.maxError} (best credibility ${(leading?.credibility ?? 0).toFixed(6)})`
        : `no ${policy.quorum} of ${reported.length} results agree (${groups.length} distinct)`;
    return giveUp(
      failureOf(
        'no_quorum',
        `${why} and the cap of ${policy.maxExecutions} executions is reached; a nondeterministic job cannot be verified by replication`,
      ),
    );
  }
  // Results still wanted beyond those outstanding; at least one more when nothing is outstanding (a group has its
  // votes but lacks an established member, or enough credibility).
  let missing = Math.max(0, minLacking - outstanding);
  if (missing === 0 && outstanding === 0) missing = 1;
  return { kind: 'pending', target: Math.max(target, reported.length + outstanding + missing) };
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
