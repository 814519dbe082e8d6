/**
 * Spot-checks and backtracking (Sarmenta, FGCS 18(4), 2002, §4.2 and §5.3):
 *
 * - A spot-check is a task whose answer the network already knows, sent to a provider as ordinary work: a replay of
 *   a verified task (a canary) from a job whose buyer allows it. The provider cannot tell it from any other work:
 *   same image, command, inputs, parameters and environment; only the job id differs. Spot-checks continue forever
 *   at rate q, so a provider that behaves until it is trusted and then lies (a sleeper) is caught with probability q
 *   on each lie.
 * - A provider whose spot-check answer differs is caught: blacklisted (credibility 0, no more work), and every
 *   verified result it alone supported — a result that ran alone, or one whose agreeing group no longer reaches its
 *   quorum without it and other caught providers — is re-verified on other providers (backtracking). The buyers are
 *   told in their job's history; a result the re-verification overturns is replaced.
 */
import type { Failure } from '../protocol/index.js';

/** What the canary rule reads of a verified task and its executions. */
export interface CanaryCandidate {
  /** The buyer allowed its verified tasks to be replayed as spot-checks (verification.spotChecks). */
  allowed: boolean;
  /**
   * The job compares results within a tolerance (verification.compare): never a canary, since a spot-check is judged
   * by verdict equality and an honest provider's result may differ in the last digits.
   */
  tolerant?: boolean;
  /** Graded executions: valid or invalid, and whether their provider was established when decided. */
  graded: ReadonlyArray<{ state: 'valid' | 'invalid'; established: boolean; exitCode: number | null }>;
}

/**
 * Whether a verified task may serve as a canary: its buyer allowed it, its job has no comparator rules, at least two providers agreed and none
 * disagreed (a nondeterministic task that verified by chance would catch honest providers), one of them established,
 * and the agreed result exited 0.
 */
export function isCanary(c: CanaryCandidate): boolean {
  const valid = c.graded.filter((g) => g.state === 'valid');
  return (
    c.allowed &&
    c.tolerant !== true &&
    valid.length >= 2 &&
    valid.length === c.graded.length &&
    valid.some((g) => g.established) &&
    valid.every((g) => g.exitCode === 0)
  );
}

/** Whether an agent that just got a placement also gets a spot-check now: a draw in [0, 1) below the rate q. */
export function drawsSpotCheck(draw: number, rate: number): boolean {
  return draw < rate;
}

/**
 * A spot-check's outcome for its provider: `passed` (the known answer), `caught` (a different result: a wrong
 * answer, a different exit code or output), or `inconclusive` (a job-caused failure such as a timeout or out of
 * memory on a slower or smaller machine, which says nothing about honesty).
 */
export function judgeSpotCheck(
  expectedVerdict: string,
  result: { verdict: string | null; failure: Failure | null },
): 'passed' | 'caught' | 'inconclusive' {
  if (result.verdict === expectedVerdict) return 'passed';
  if (result.failure !== null && result.failure.reason !== 'nonzero_exit') return 'inconclusive';
  return 'caught';
}

/** What backtracking reads of a verified task: its quorum, whether it ran alone, and its valid executions' providers. */
export interface SupportedTask {
  quorum: number;
  alone: boolean;
  validProviders: readonly string[];
}

/**
 * How a provider came to be backtracked: `caught` by a spot-check (a proven liar: every result it helped verify is
 * suspect), or `outvoted` (outvoted by an accepted group, or overturned by a re-verification: perhaps an honest
 * machine on a nondeterministic task, so only what no other uncaught provider vouched for is suspect).
 */
export type BacktrackCause = 'caught' | 'outvoted';

/**
 * Whether a verified task rested on `provider`, once `caught` (providers known to lie) are discounted, so that it
 * must be re-verified. Caught: it ran alone on it, or its valid results from other, uncaught providers no longer
 * reach the quorum (Sarmenta §5.3). Outvoted: no other uncaught provider agreed with it (it ran alone, or its only
 * partners were caught) — a task another provider independently agreed on already had a check, and re-verifying it
 * would put honest results before a fresh, possibly colluding, group for nothing.
 */
export function restedOn(
  t: SupportedTask,
  provider: string,
  caught: ReadonlySet<string>,
  cause: BacktrackCause = 'caught',
): boolean {
  if (!t.validProviders.includes(provider)) return false;
  if (t.alone) return true;
  const others = new Set(t.validProviders.filter((p) => p !== provider && !caught.has(p)));
  return others.size < (cause === 'caught' ? Math.max(1, t.quorum) : 1);
}

/**
 * How a re-verification replays a task: three agreeing providers other than those that ran it (up to six
 * executions). Three, not two, so that a re-verification is not as easy to capture as the result it checks: with
 * a share f of colluding providers drawn at random, all three are colluders with probability about f³ (0.8% at
 * f = 0.2) where two would be f² (4%); the simulation measured 66–115 right results overturned per 2,000 tasks by
 * colluding sleepers under 2-of-2 re-verification.
 */
export const AUDIT_POLICY = Object.freeze({
  replicas: 3,
  quorum: 3,
  maxExecutions: 6,
  maxErrors: 3,
  maxError: null,
} as const);
