/**
 * The determinism probe (core/probe.ts for the rules): deciding a job's probe from its probe executions and applying
 * the decision in the caller's transaction. Agree: the probe passes and the job's tasks are released to the
 * scheduler. Differ: every task fails as `nondeterministic`, naming the outputs that differ, and the job ends failed.
 * A provider-side error ends the pair (its partner unpaid) and the scheduler places a new pair elsewhere, up to the
 * job's maxErrors. Probe executions end `cancelled` with reason `probe`: paid for their work, never graded, so their
 * providers' records do not change (settlement.ts, core/settlement.ts).
 */
import {
  decideProbe,
  failureOf,
  nondeterministicFailure,
  probeDifferences,
  type OutputDifference,
} from '../core/index.js';
import type { Failure, JobState } from '../protocol/index.js';
import type { ProbeResult, Repositories, TaskForVerification } from '../store/index.js';
import { compareOutputs } from './compare.js';
import type { Effects } from './effects.js';
import type { EngineResources } from './resources.js';
import type { SettlementSystem } from './settlement.js';

/** Moves a job to the state its task counts imply and settles it once ended (VerificationSystem.rollUp). */
export type RollUp = (tx: Repositories, jobId: string, now: number, fx: Effects) => Promise<JobState | null>;

/** What deciding a probe did (a VerifyOutcome): passed, failed the job, ended a pair for a new one, or nothing. */
export type ProbeOutcome = 'verified' | 'failed' | 'pending' | 'unchanged';

export class ProbeSystem {
  constructor(
    private readonly r: EngineResources,
    private readonly settlement: SettlementSystem,
    private readonly rollUp: RollUp,
  ) {}

  /**
   * Decides the pending probe of `task` (task 0 of its job, read by the verifier) inside `tx` and applies it. Returns
   * `verified` when the probe passed, `failed` when the job failed by it, `pending` when a pair was ended for a new
   * one, else `unchanged`.
   */
  async decide(tx: Repositories, task: TaskForVerification, now: number, fx: Effects): Promise<ProbeOutcome> {
    const runs = await tx.executions.probeRuns(task.id);
    const d = decideProbe(runs, task.policy.maxErrors);
    switch (d.kind) {
      case 'wait':
        return 'unchanged';
      case 'retry': {
        const ended = await this.discard(tx, d, now);
        if (ended.length === 0) return 'unchanged';
        await this.settlement.executions(tx, ended, now, fx);
        fx.touch(task.jobId, 'reported');
        return 'pending';
      }
      case 'give_up': {
        const ended = await this.discard(tx, d, now);
        await this.settlement.executions(tx, ended, now, fx);
        return this.fail(tx, task, d.failure, now, fx);
      }
      case 'agree':
        return this.pass(tx, task, d.close, runs, now, fx);
      case 'differ': {
        const [a, b] = d.runs;
        const differences = await this.differences(tx, task.jobId, a, b);
        if (differences.length === 0) return this.pass(tx, task, d.close, runs, now, fx);
        const why = failureOf('probe', 'ran twice as the determinism probe; the results differ');
        const ended = await tx.executions.move(d.close, 'cancelled', now, why);
        await this.settlement.executions(tx, ended, now, fx);
        const failure = nondeterministicFailure(await this.providerName(tx, a.providerId), differences);
        return this.fail(tx, task, failure, now, fx);
      }
    }
  }

  /**
   * The probe passed: its pair is closed (paid, ungraded), the job's history says so, and its tasks are released —
   * touched, so that their queue timeout counts from now, not from the submission they were held since.
   */
  private async pass(
    tx: Repositories,
    task: TaskForVerification,
    close: readonly string[],
    runs: readonly ProbeResult[],
    now: number,
    fx: Effects,
  ): Promise<ProbeOutcome> {
    if (!(await tx.jobs.setProbe(task.jobId, 'pending', 'passed'))) return 'unchanged';
    await tx.tasks.touch(
      (await tx.tasks.ofJob(task.jobId)).map((t) => t.id),
      now,
    );
    const why = failureOf('probe', 'ran twice as the determinism probe; the results agree');
    await this.settlement.executions(tx, await tx.executions.move(close, 'cancelled', now, why), now, fx);
    const provider = await this.providerName(tx, runs.find((x) => x.id === close[0])?.providerId);
    await tx.jobs.addHistory(
      task.jobId,
      now,
      'probe',
      0,
      `determinism probe passed: task 0 ran twice on provider ${provider} with the same result; placing the job's tasks`,
    );
    fx.touch(task.jobId, 'reported');
    return 'verified';
  }

  /** Ends what is left of a pair a provider-side error broke: unpaid (core reason `probe_discarded`). */
  private async discard(
    tx: Repositories,
    d: { cancel: string[]; stop: string[]; close: string[] },
    now: number,
  ): Promise<string[]> {
    const why = failureOf('probe_discarded', 'the other execution of its determinism probe pair failed');
    return tx.executions.move([...d.cancel, ...d.stop, ...d.close], 'cancelled', now, why);
  }

  /** The probe failed the job: every task fails with `failure`, the job's history says so, and it rolls up. */
  private async fail(
    tx: Repositories,
    task: TaskForVerification,
    failure: Failure,
    now: number,
    fx: Effects,
  ): Promise<ProbeOutcome> {
    if (!(await tx.jobs.setProbe(task.jobId, 'pending', 'failed'))) return 'unchanged';
    const cancelled = await tx.jobs.cancelOpenWork(task.jobId, failure, now, 'failed');
    await this.settlement.executions(tx, cancelled, now, fx);
    await tx.jobs.addHistory(task.jobId, now, 'probe', 0, `determinism probe failed: ${failure.message}`);
    fx.decided.push({ taskId: task.id, jobId: task.jobId, outcome: 'failed', reason: failure.reason });
    this.r.log.info({ jobId: task.jobId, reason: failure.reason }, 'determinism probe failed the job');
    fx.touch(task.jobId, 'reported');
    await this.rollUp(tx, task.jobId, now, fx);
    return 'failed';
  }

  /**
   * What differs between two probe results: under the job's comparator rules (verification.compare) the first
   * difference beyond them (engine/compare.ts, which reads the outputs; none when they agree within the rules), else
   * every exact difference (core probeDifferences).
   */
  private async differences(
    tx: Repositories,
    jobId: string,
    a: ProbeResult,
    b: ProbeResult,
  ): Promise<OutputDifference[]> {
    const rules = (await tx.jobs.spec(jobId))?.verification.compare ?? [];
    if (rules.length > 0 && a.manifest && b.manifest && a.outputsBlob && b.outputsBlob) {
      const d = await compareOutputs(
        this.r.blobs,
        rules,
        { manifest: a.manifest, outputsBlob: a.outputsBlob },
        { manifest: b.manifest, outputsBlob: b.outputsBlob },
      );
      return d ? [d] : [];
    }
    return probeDifferences(a, b);
  }

  /** A provider's account name (its id when unknown). */
  private async providerName(tx: Repositories, providerId: string | undefined): Promise<string> {
    if (!providerId) return 'unknown';
    return (await tx.accounts.findAccount(providerId))?.name ?? providerId;
  }
}
