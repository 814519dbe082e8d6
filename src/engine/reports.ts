/**
 * Reports: an agent's report of an execution's end is checked (its lease, its blobs, its result hash), recorded,
 * and its task verified and settled — all in one transaction, so a report returns when its effects are committed.
 */
import {
  AGENT_FAILURE_REASONS,
  DeqoError,
  errors,
  failureOf,
  failureVerdict,
  FAILURES,
  implausibleFailure,
  isFailureReason,
  resultHashOf,
} from '../core/index.js';
import type { CompareRule, Failure, ReportRequest } from '../protocol/index.js';
import type { ComparableResult, ExecutionEnd, LeaseInfo, Repositories } from '../store/index.js';
import { groupVerdict, type ComparisonCache } from './compare.js';
import { Effects } from './effects.js';
import { checkOutputs } from './outputs.js';
import type { EngineResources } from './resources.js';
import type { SettlementSystem } from './settlement.js';
import type { VerificationSystem, VerifyOutcome } from './verification.js';

/**
 * What a report comes to: the execution end to record and, when the report is refused for something the provider is
 * to blame for (outputs that do not match its manifest, a timeout the coordinator did not observe), the error the
 * agent gets back (422) once that failed end is recorded.
 */
export interface ReportCheck {
  end: ExecutionEnd;
  refused: DeqoError | null;
}

/**
 * Classifies a report into an execution end. `lease` is the execution as the coordinator holds it (its provider,
 * job, and claim time), `now` the report's arrival (epoch ms).
 *
 * Throws DeqoError digest_mismatch when the claimed result hash does not match the manifest, or stdout's hash does
 * not match its blob; validation_failed for blobs the reporting provider did not upload, a manifest listing one path
 * twice (no canonical form), or a failure reason an agent may not report (the catalogue's `source: 'agent'` reasons
 * only); unavailable when the outputs blob is not in the blob store. Those change nothing.
 *
 * Refuses, and records against the provider (a failed end with `refused` set): an outputs tarball that does not hold
 * exactly the manifest's files (digest_mismatch naming the first bad path; failure `outputs_mismatch`, checked by
 * streaming the blob, outputs.ts), and a failure the coordinator did not observe, such as a `timeout` before the
 * job's time limit passed since the claim (implausible_report, 422, naming `reason`; failure `implausible_report`).
 */
export async function classifyReport(
  res: Pick<EngineResources, 'store' | 'blobs'>,
  r: ReportRequest,
  lease: Pick<LeaseInfo, 'providerId' | 'jobId' | 'startedAt'>,
  now: number,
): Promise<ReportCheck> {
  const { store } = res;
  for (const b of [r.stdoutBlob, r.stderrBlob, r.outcome === 'completed' ? r.outputsBlob : undefined]) {
    // The reporter must have uploaded (or otherwise be able to read) every blob it names: the buyer is then
    // granted access to them, so naming someone else's blob would leak it.
    if (b !== undefined && !(await store.accounts.canReadBlob(b, lease.providerId))) {
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
    const mismatch = await checkOutputs(res.blobs, r.outputsBlob, r.manifest);
    if (mismatch) {
      const what = `${mismatch.path}: ${mismatch.problem}`;
      return refusedEnd(
        r,
        failureOf('outputs_mismatch', `outputs tarball ${r.outputsBlob} does not match the manifest: ${what}`),
        new DeqoError(
          'digest_mismatch',
          `outputsBlob does not match the manifest at ${what}; the report is refused and counted against this provider`,
          { path: mismatch.path, problem: mismatch.problem },
        ),
      );
    }
    return {
      end: {
        state: 'reported',
        verdict: r.resultHash,
        exitCode: r.manifest.exitCode,
        resultHash: r.resultHash,
        manifest: r.manifest,
        failure: r.manifest.exitCode === 0 ? null : failureOf('nonzero_exit', `exit code ${r.manifest.exitCode}`),
        usage: r.usage,
        stdoutBlob: r.stdoutBlob,
        stderrBlob: r.stderrBlob,
        outputsBlob: r.outputsBlob,
      },
      refused: null,
    };
  }
  if (!isFailureReason(r.reason) || FAILURES[r.reason].source !== 'agent') {
    throw new DeqoError(
      'validation_failed',
      `reason "${r.reason}" is not one an agent reports; expected one of ${AGENT_FAILURE_REASONS.join(', ')}`,
      [{ path: 'reason', message: `expected one of ${AGENT_FAILURE_REASONS.join(', ')}` }],
    );
  }
  const demand = r.reason === 'timeout' ? await store.jobs.demand(lease.jobId) : null;
  const implausible =
    demand && lease.startedAt !== null ? implausibleFailure(r.reason, now - lease.startedAt, demand.timeoutMs) : null;
  if (implausible) {
    return refusedEnd(
      r,
      failureOf('implausible_report', `refused: ${implausible}`),
      new DeqoError(
        'implausible_report',
        `reason "${r.reason}" was not observed: ${implausible}; the report is refused and counted against this provider`,
        [{ path: 'reason', message: implausible }],
      ),
    );
  }
  const failure = failureOf(r.reason, r.message);
  if (FAILURES[r.reason].votes) {
    return {
      end: {
        state: 'reported',
        verdict: failureVerdict(r.reason),
        exitCode: null,
        resultHash: null,
        manifest: null,
        failure,
        usage: r.usage ?? null,
        stdoutBlob: r.stdoutBlob ?? null,
        stderrBlob: r.stderrBlob ?? null,
        outputsBlob: null,
      },
      refused: null,
    };
  }
  return {
    end: {
      state: 'failed',
      failure,
      usage: r.usage ?? null,
      stdoutBlob: r.stdoutBlob ?? null,
      stderrBlob: r.stderrBlob ?? null,
    },
    refused: null,
  };
}

/** A refused report's end: the execution failed with `failure` (the provider's), its logs kept; `refused` answers the agent. */
function refusedEnd(r: ReportRequest, failure: Failure, refused: DeqoError): ReportCheck {
  return {
    end: {
      state: 'failed',
      failure,
      usage: r.usage ?? null,
      stdoutBlob: r.stdoutBlob ?? null,
      stderrBlob: r.stderrBlob ?? null,
    },
    refused,
  };
}

export class ReportSystem {
  constructor(
    private readonly r: EngineResources,
    private readonly verification: VerificationSystem,
    private readonly settlement: SettlementSystem,
  ) {}

  /**
   * Records an agent's report and verifies (and settles) its task, in one transaction. Throws DeqoError not_found
   * when the execution is not the agent's, stale_lease when the agent no longer holds the lease (expired, cancelled,
   * already reported, wrong token), digest_mismatch for an inconsistent result, validation_failed for a blob the
   * provider cannot read or a reason it may not report (classifyReport). A report refused for the provider's fault
   * (outputs that do not match the manifest, an unobserved timeout) is recorded first — the execution fails, the
   * lease ends and the task is verified again (so it is placed on another provider) in the same transaction — and
   * its error (digest_mismatch / validation_failed, 422) thrown after the commit.
   */
  async report(agentId: string, executionId: string, report: ReportRequest): Promise<VerifyOutcome> {
    const { store, log } = this.r;
    const lease = await store.executions.leaseOf(executionId);
    // Another agent's execution answers like a missing one: nothing about it is revealed.
    if (!lease || lease.agentId !== agentId) throw errors.notFound('execution', executionId);
    if (lease.state !== 'running' || lease.fencingToken !== report.fencingToken) throw errors.staleLease(executionId);
    const { end, refused } = await classifyReport(this.r, report, lease, this.r.now());
    // Under an output comparator the verdict is the group the result agrees with (compare.ts): compared first against
    // the groups founded so far, then again under the job's lock against any founded meanwhile (cached).
    const rules = end.state === 'reported' && end.resultHash !== null ? await this.compareRules(lease.jobId) : [];
    const cache: ComparisonCache = new Map();
    const scope = { taskId: lease.taskId, probe: lease.probe };
    if (rules.length > 0 && end.state === 'reported') await this.groupedVerdict(store, scope, end, rules, cache);
    const { outcome, fx } = await store.transaction(async (tx) => {
      const f = new Effects();
      const now = this.r.now();
      await tx.jobs.lock([lease.jobId]);
      if (rules.length > 0 && end.state === 'reported')
        end.verdict = await this.groupedVerdict(tx, scope, end, rules, cache);
      await tx.tasks.touch([lease.taskId], now);
      const taskId = await tx.executions.recordEnd(executionId, agentId, report.fencingToken, end, now);
      if (!taskId) throw errors.staleLease(executionId);
      const blobs = [end.stdoutBlob, end.stderrBlob, end.state === 'reported' ? end.outputsBlob : null].filter(
        (b): b is string => b !== null,
      );
      await tx.accounts.grantBlobAccess(blobs, lease.buyerId);
      await tx.blobs.reference(lease.jobId, blobs);
      f.touch(lease.jobId, 'reported');
      if (end.state === 'failed') await this.settlement.executions(tx, [executionId], now, f);
      return { outcome: await this.verification.task(tx, taskId, now, f), fx: f };
    });
    fx.emit(this.r.events);
    log.info(
      {
        executionId,
        jobId: lease.jobId,
        taskId: lease.taskId,
        agentId,
        state: end.state,
        reason: end.failure?.reason,
        task: outcome,
      },
      refused ? `report refused: ${refused.message}` : 'execution reported',
    );
    if (refused) throw refused;
    return outcome;
  }

  /** The job's comparator rules (verification.compare; empty: results must agree exactly). */
  private async compareRules(jobId: string): Promise<CompareRule[]> {
    return (await this.r.store.jobs.spec(jobId))?.verification.compare ?? [];
  }

  /**
   * The verdict of the reported result `end` of task `taskId` under `rules`, read through `repos` (groupVerdict),
   * among the task's ordinary results, or for a determinism probe execution (`probe` > 0) among its pair's. A
   * replay (spot-check or re-verification) also tries the replayed task's canonical result, with its verdict, first.
   */
  private async groupedVerdict(
    repos: Repositories,
    { taskId, probe }: { taskId: string; probe: number },
    end: Extract<ExecutionEnd, { state: 'reported' }>,
    rules: readonly CompareRule[],
    cache: ComparisonCache,
  ): Promise<string> {
    if (end.resultHash === null || end.manifest === null || end.outputsBlob === null) return end.verdict;
    const task = probe === 0 ? await repos.tasks.forVerification(taskId) : null;
    const original = task?.replayOf ? await repos.tasks.forVerification(task.replayOf) : null;
    let seeds: ComparableResult[] = [];
    if (original?.verdict) {
      const agreeing = (await repos.executions.comparable(original.id)).filter((e) => e.verdict === original.verdict);
      seeds = agreeing.slice(0, 1);
    }
    const existing = await repos.executions.comparable(taskId, probe);
    return groupVerdict(
      this.r.blobs,
      rules,
      { manifest: end.manifest, resultHash: end.resultHash, outputsBlob: end.outputsBlob },
      existing,
      cache,
      seeds,
    );
  }
}
