/**
 * The determinism probe (verification.checkDeterminism): before a job's tasks are placed, task 0 runs twice at once
 * on one agent — a probe pair — and the two results are compared. They agree: the job fans out as usual (the probe
 * counts toward no quorum). They differ: the job fails as `nondeterministic`, naming what differs (output paths,
 * stdout, exit code). A provider-side error (lost, failed) in a pair ends the pair and a new pair runs elsewhere, up
 * to the job's `maxErrors`. Probe executions are paid from the job's escrow and never graded, so they leave the
 * provider's record alone (a nondeterministic program is the buyer's doing).
 *
 * Probe executions are numbered by pair (1, 2, …); ordinary executions are pair 0. The rule of one execution per
 * (task, provider) holds among ordinary executions only.
 */
import type { ExecutionState, Failure, Manifest } from '../protocol/index.js';
import { describeDifference, type OutputDifference } from './compare.js';
import { failureOf } from './failures.js';
import { retryDue, type RetryBackoff } from './faults.js';
import type { Demand } from './matching.js';
import type { OpenTask } from './scheduler.js';

/**
 * Where a job's determinism probe stands: running (`pending`), agreed (`passed`), differed / gave up (`failed`), or
 * ended unfinished by the buyer's cancel (`cancelled`).
 */
export type ProbeState = 'pending' | 'passed' | 'failed' | 'cancelled';

/** One probe execution as the probe rule reads it. */
export interface ProbeRun {
  id: string;
  /** Its pair number (≥ 1). */
  pair: number;
  state: ExecutionState;
  /** Its verdict once reported (the result hash, or the comparator group's; `failure:<reason>` for a job failure). */
  verdict: string | null;
  manifest: Manifest | null;
  failure: Failure | null;
}

/**
 * What to do with a probe: `wait` for the pair; the pair `agree`d or `differ`s (its two reported runs, `close`d as
 * paid and ungraded); `retry` (a provider-side error ended the pair: `cancel` its unstarted partner, `stop` a running
 * one, `close` a reported one, then a new pair is placed); `give_up` after `maxErrors` provider-side errors.
 */
export type ProbeDecision<R extends ProbeRun = ProbeRun> =
  | { kind: 'wait' }
  | { kind: 'agree'; close: string[] }
  | { kind: 'differ'; close: string[]; runs: [R, R] }
  | { kind: 'retry'; cancel: string[]; stop: string[]; close: string[] }
  | { kind: 'give_up'; failure: Failure; cancel: string[]; stop: string[]; close: string[] };

const ERROR_STATES: ReadonlySet<ExecutionState> = new Set(['failed', 'lost']);

/** Decides a probe from all its runs (every pair) and the job's `maxErrors` (provider-side errors tolerated). */
export function decideProbe<R extends ProbeRun>(runs: readonly R[], maxErrors: number): ProbeDecision<R> {
  if (runs.length === 0) return { kind: 'wait' };
  const latest = Math.max(...runs.map((r) => r.pair));
  const pair = runs.filter((r) => r.pair === latest);
  const ids = (s: ExecutionState) => pair.filter((r) => r.state === s).map((r) => r.id);
  if (pair.some((r) => ERROR_STATES.has(r.state))) {
    const partner = { cancel: ids('assigned'), stop: ids('running'), close: ids('reported') };
    const errors = runs.filter((r) => ERROR_STATES.has(r.state)).length;
    if (errors < maxErrors) return { kind: 'retry', ...partner };
    return {
      kind: 'give_up',
      failure: failureOf(
        'too_many_errors',
        `the determinism probe failed on the provider side ${errors} time(s) (limit verification.maxErrors ${maxErrors})`,
      ),
      ...partner,
    };
  }
  const reported = pair.filter((r) => r.state === 'reported');
  if (reported.length < 2) return { kind: 'wait' };
  const [a, b] = reported as [R, R];
  const close = [a.id, b.id];
  return a.verdict !== null && a.verdict === b.verdict
    ? { kind: 'agree', close }
    : { kind: 'differ', close, runs: [a, b] };
}

/** How one run ended, in words, when it left no manifest: `out_of_memory`, `exit 3`. */
function endOf(r: ProbeRun): string {
  return r.manifest ? `exit ${r.manifest.exitCode}` : (r.failure?.reason ?? 'no result');
}

/**
 * Every difference between two probe runs' results, compared exactly: the exit code, stdout, and each output path
 * one run wrote and the other did not or whose SHA-256 differs (in path order). A run without a manifest (a
 * job-caused failure such as a timeout) differs as a whole (`(result)`).
 */
export function probeDifferences(a: ProbeRun, b: ProbeRun): OutputDifference[] {
  if (!a.manifest || !b.manifest)
    return [{ path: '(result)', where: '', a: endOf(a), b: endOf(b), why: 'the two runs ended differently' }];
  const out: OutputDifference[] = [];
  const sha = (s: string) => `SHA-256 ${s.slice(0, 12)}`;
  if (a.manifest.exitCode !== b.manifest.exitCode)
    out.push({ path: '(exit code)', where: '', a: endOf(a), b: endOf(b), why: 'differ' });
  if (a.manifest.stdoutSha256 !== b.manifest.stdoutSha256)
    out.push({
      path: '(stdout)',
      where: '',
      a: sha(a.manifest.stdoutSha256),
      b: sha(b.manifest.stdoutSha256),
      why: 'differ',
    });
  const filesA = new Map(a.manifest.files.map((f) => [f.path, f.sha256]));
  const filesB = new Map(b.manifest.files.map((f) => [f.path, f.sha256]));
  for (const path of [...new Set([...filesA.keys(), ...filesB.keys()])].sort()) {
    const fa = filesA.get(path);
    const fb = filesB.get(path);
    if (fa === fb) continue;
    out.push({
      path,
      where: '',
      a: fa ? sha(fa) : 'missing',
      b: fb ? sha(fb) : 'missing',
      why: fa && fb ? 'differ' : 'one run wrote it, the other did not',
    });
  }
  return out;
}

/**
 * The `nondeterministic` failure naming what differs between the two runs on `provider` (its name): the differing
 * outputs listed first by path, then each described (core/compare.ts describeDifference).
 */
export function nondeterministicFailure(provider: string, differences: readonly OutputDifference[]): Failure {
  const paths = differences.map((d) => d.path).join(', ');
  return failureOf(
    'nondeterministic',
    `task 0 ran twice on provider ${provider} and these outputs differ: ${paths || '(the results)'}. ` +
      differences.map(describeDifference).join('; '),
  );
}

/**
 * What a probe pair asks of one agent: room for both copies at once (twice the CPUs, memory and GPUs of one
 * execution); everything else as for one execution.
 */
export function probePairDemand(d: Demand): Demand {
  return { ...d, cpus: d.cpus * 2, memoryMb: d.memoryMb * 2, gpus: d.gpus * 2 };
}

/**
 * A job's probe as the store reads it for scheduling: its task 0 (OpenTask, `adaptive` false) with the counts taken
 * over its probe executions only, and the number of pairs placed so far.
 */
export interface OpenProbe extends OpenTask {
  pairs: number;
}

/**
 * The probes that want a pair now, as scheduler input: those with no probe execution active and, with `retry`, past
 * the retry backoff after a provider-side error (faults.ts retryDue). Each wants one placement of pair number
 * `pairs + 1`, on an agent with room for both copies (probePairDemand).
 */
export function probesWanting(
  open: readonly OpenProbe[],
  retry: { now: number; backoff: RetryBackoff } | null,
): Array<OpenTask & { need: number; probePair: number }> {
  return open
    .filter((p) => p.active === 0 && (!retry || retryDue(p.failures, p.lastFailureAt, retry.now, retry.backoff)))
    .map(({ pairs, ...t }) => ({
      ...t,
      adaptive: false,
      demand: probePairDemand(t.demand),
      need: 1,
      probePair: pairs + 1,
    }));
}
