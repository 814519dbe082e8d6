/**
 * Spot-checks and backtracking (core/spotchecks.ts for the rules, Sarmenta FGCS 2002 §4.2, §5.3):
 *
 * - plant: with probability q, an agent that just got work also gets a spot-check — a replay of a canary (a verified
 *   task whose buyer allows it) it never ran, as an ordinary execution of a platform job. The platform pays for it.
 * - caught: a provider that answers a spot-check wrongly is blacklisted, and every verified task that rested on it is
 *   re-verified by a platform job replaying it on other providers; its buyer reads so in the job's history.
 * - backtracking also follows any other proof of a wrong result — outvoted by an accepted group, or overturned by a
 *   re-verification — without blacklisting (an honest machine can be outvoted on a nondeterministic task); each
 *   task is re-verified at most once.
 * - audited: when a re-verification ends, its verdict is compared with the task's. A wrong result is replaced (the
 *   overturned executions become invalid, their providers' records say so, and what they were paid is taken back
 *   for the buyer as far as their balance allows); a confirmed one stays.
 */
import {
  accountLedger,
  applyOutcome,
  AUDIT_POLICY,
  canonicalExecution,
  clawbackTxn,
  drawsSpotCheck,
  escrowHoldTxn,
  executionMaxCost,
  formatCredits,
  grantTxn,
  ISSUER,
  lowestBalance,
  rejections,
  restedOn,
  type BacktrackCause,
  type Decision,
  type Placement,
  type SchedAgent,
  type SchedTask,
} from '../core/index.js';
import type { Price } from '../protocol/index.js';
import type { Canary, Repositories, TaskForVerification } from '../store/index.js';
import type { Effects } from './effects.js';
import type { EngineResources } from './resources.js';

/** The account that owns the platform's spot-checks and re-verifications (no key; funded by the issuer). */
export const PLATFORM_ACCOUNT = 'deqo-platform';

/** Canaries read per spot-check draw (a random sample; the first the agent can run is used). */
const CANARY_SAMPLE = 8;

export class SpotCheckSystem {
  constructor(private readonly r: EngineResources) {}

  /**
   * After a plan was applied: each agent that got work draws a spot-check with probability q and, if it has room left
   * and there is a canary it can run that its provider never ran, gets one (its own transaction). Returns the agents
   * that got a spot-check. Errors are logged, never thrown: a spot-check is never worth failing a round for.
   */
  async plant(
    plan: readonly Placement[],
    snap: {
      now: number;
      tasks: readonly SchedTask[];
      agents: readonly SchedAgent[];
      prices: ReadonlyMap<string, Price>;
    },
  ): Promise<Set<string>> {
    const planted = new Set<string>();
    const rate = this.r.policy.credibility.spotCheckRate;
    if (rate <= 0 || plan.length === 0) return planted;
    // What the plan just took of each agent: a spot-check goes only where there is room left.
    const demandOf = new Map(snap.tasks.map((t) => [t.taskId, t.demand]));
    const used = new Map<string, { cpus: number; memoryMb: number; gpus: number; diskMb: number }>();
    for (const p of plan) {
      const d = demandOf.get(p.taskId);
      const u = used.get(p.agentId) ?? { cpus: 0, memoryMb: 0, gpus: 0, diskMb: 0 };
      if (d) {
        u.cpus += d.cpus;
        u.memoryMb += d.memoryMb;
        u.gpus += d.gpus;
        u.diskMb += d.diskMb ?? 0;
      }
      used.set(p.agentId, u);
    }
    for (const agent of snap.agents) {
      const u = used.get(agent.agentId);
      if (!u || !drawsSpotCheck(this.r.random(), rate)) continue;
      try {
        const room: SchedAgent = {
          ...agent,
          freeCpus: agent.freeCpus - u.cpus,
          freeMemoryMb: agent.freeMemoryMb - u.memoryMb,
          freeGpus: agent.freeGpus - u.gpus,
          freeDiskMb: agent.freeDiskMb - u.diskMb,
        };
        // The original buyer's pick of providers does not bind a replay; what the task needs of a machine does.
        const canary = (await this.r.store.tasks.canariesFor(agent.providerId, CANARY_SAMPLE)).find(
          (c) => rejections({ ...c.demand, providers: undefined }, room).length === 0,
        );
        if (!canary) continue;
        await this.r.store.transaction((tx) =>
          this.replay(tx, canary, agent, snap.prices.get(agent.agentId) ?? agent.prices, snap.now),
        );
        planted.add(agent.agentId);
      } catch (err) {
        this.r.log.error({ err, agentId: agent.agentId }, 'planting a spot-check failed');
      }
    }
    return planted;
  }

  /** Creates a platform spot-check job replaying `canary`, with its one execution assigned to `agent`. */
  private async replay(tx: Repositories, canary: Canary, agent: SchedAgent, price: Price, now: number): Promise<void> {
    const platform = await this.platformAccount(tx, now);
    const cost = executionMaxCost(canary.spec);
    const jobId = await tx.jobs.insert(
      {
        buyerId: platform,
        spec: { ...canary.spec, constraints: { ...canary.spec.constraints, providers: undefined } },
        demand: { ...canary.demand, providers: undefined },
        tasks: [{ index: canary.index, params: canary.params }],
        policy: { replicas: 1, quorum: 1, maxExecutions: 1, maxErrors: 1, maxError: null },
        fundedPerTask: 1,
        executionMaxCost: cost,
        kind: 'spot_check',
        replay: { of: canary.taskId, taskCount: canary.taskCount, expectedVerdict: canary.verdict },
      },
      now,
    );
    await tx.blobs.reference(
      jobId,
      canary.spec.inputs.map((i) => i.blob),
    );
    await this.fund(tx, platform, jobId, cost, 'spot-check', now);
    const task = (await tx.tasks.ofJob(jobId))[0]!;
    await tx.tasks.write(task.id, task.revision, now, {}, 'running');
    await tx.executions.insert(
      [{ taskId: task.id, jobId, agentId: agent.agentId, providerId: agent.providerId, price }],
      now,
    );
    await tx.jobs.setState(jobId, 'running', now);
  }

  /**
   * A provider caught lying (a failed spot-check), inside the judging transaction: it is blacklisted, and every
   * verified task that rested on it is re-verified (`backtrack`).
   */
  async caught(tx: Repositories, providerId: string, now: number, fx: Effects): Promise<void> {
    const { quota } = this.r.policy;
    const rec = await tx.reputation.lock(providerId, quota, now);
    const outcome = { kind: 'caught', at: now } as const;
    await tx.reputation.save(
      providerId,
      applyOutcome(rec, outcome, quota),
      { outcome, executionId: null, jobId: null },
      now,
    );
    this.r.log.warn(
      { providerId },
      'provider caught returning a wrong answer to a spot-check: blacklisted, backtracking',
    );
    await this.backtrack(tx, providerId, 'caught', 'caught returning a wrong answer to a spot-check', now, fx);
  }

  /**
   * Backtracking (Sarmenta §5.3), inside the transaction that found `providerId` returning a wrong result (`cause`
   * caught: a failed spot-check; outvoted: by an accepted group, or overturned by a re-verification): every verified
   * task that rested on it (core restedOn, caught providers discounted) and was not re-verified yet gets a
   * re-verification job (core AUDIT_POLICY); its buyer reads `why` in the job's history. Returns the number started.
   */
  async backtrack(
    tx: Repositories,
    providerId: string,
    cause: BacktrackCause,
    why: string,
    now: number,
    fx: Effects,
  ): Promise<number> {
    const { quota } = this.r.policy;
    const candidates = await tx.tasks.verifiedWith(providerId);
    if (candidates.length === 0) return 0;
    const providers = [...new Set(candidates.flatMap((c) => c.validProviders))];
    const records = await tx.reputation.records(providers, now, quota);
    const caught = new Set(providers.filter((p) => records.get(p)?.reputation.caughtAt !== null));
    caught.add(providerId);
    let started = 0;
    for (const c of candidates) {
      if (!restedOn(c, providerId, caught, cause)) continue;
      if (await this.audit(tx, c.taskId, c.jobId, c.index, c.revision, providerId, why, now, fx)) started++;
    }
    return started;
  }

  /** Starts a re-verification of task `taskId` (of `jobId`, index `index`) that rested on `providerId`. */
  private async audit(
    tx: Repositories,
    taskId: string,
    jobId: string,
    index: number,
    revision: number,
    providerId: string,
    why: string,
    now: number,
    fx: Effects,
  ): Promise<boolean> {
    // The buyer's pick of providers does not bind a re-verification: it must run on other providers.
    const picked = await tx.jobs.spec(jobId);
    const spec = picked && { ...picked, constraints: { ...picked.constraints, providers: undefined } };
    const stored = await tx.jobs.demand(jobId);
    const demand = stored && { ...stored, providers: undefined };
    const counts = await tx.jobs.taskCounts(jobId);
    const params = await tx.tasks.paramsOf(taskId);
    if (!spec || !demand || !counts || !params) return false;
    const cost = executionMaxCost(spec);
    // The platform issues what it pays; at the ledger's circulation bound it cannot, and the task stays as decided
    // (a refused grant here would refuse the report being verified).
    if ((await tx.ledger.balance(ISSUER)) - cost * AUDIT_POLICY.replicas < lowestBalance(ISSUER)) {
      this.r.log.warn({ taskId, providerId }, "re-verification skipped: the ledger's circulation bound is reached");
      return false;
    }
    if (!(await tx.tasks.write(taskId, revision, now, { audit: 'pending' }))) return false;
    const platform = await this.platformAccount(tx, now);
    const total = Object.values(counts.counts).reduce((a, b) => a + b, 0);
    const auditJob = await tx.jobs.insert(
      {
        buyerId: platform,
        spec,
        demand,
        tasks: [{ index, params }],
        policy: AUDIT_POLICY,
        fundedPerTask: AUDIT_POLICY.replicas,
        executionMaxCost: cost,
        kind: 'audit',
        replay: { of: taskId, taskCount: total, expectedVerdict: null },
      },
      now,
    );
    await tx.blobs.reference(
      auditJob,
      spec.inputs.map((i) => i.blob),
    );
    await this.fund(tx, platform, auditJob, cost * AUDIT_POLICY.replicas, 're-verification', now);
    const name = (await tx.accounts.findAccount(providerId))?.name ?? providerId;
    await tx.jobs.addHistory(
      jobId,
      now,
      'reverifying',
      index,
      `task ${index}: its result rested on provider ${name}, since ${why}; re-verifying it on other providers (the platform pays)`,
    );
    fx.touch(jobId, 'reported');
    fx.touch(auditJob, 'submitted');
    return true;
  }

  /**
   * A re-verification task was decided (`d`): confirms the task it replays, or replaces its result and takes back
   * what the overturned providers were paid for it (as far as their balance allows). Inside the deciding transaction.
   */
  async audited(tx: Repositories, audit: TaskForVerification, d: Decision, now: number, fx: Effects): Promise<void> {
    if (d.kind === 'pending' || !audit.replayOf) return;
    const original = await tx.tasks.forVerification(audit.replayOf);
    if (!original) return;
    const say = (kind: string, message: string) =>
      tx.jobs.addHistory(original.jobId, now, kind, original.index, message);
    fx.touch(original.jobId, 'reported');
    if (d.kind === 'failed') {
      await tx.tasks.write(original.id, original.revision, now, { audit: 'inconclusive' });
      return say(
        'reverified',
        `task ${original.index}: the re-verification was inconclusive (${d.failure.reason}); the result stands`,
      );
    }
    if (d.verdict === original.verdict) {
      await tx.tasks.write(original.id, original.revision, now, { audit: 'confirmed' });
      return say(
        'reverified',
        `task ${original.index}: re-verified: ${d.valid.length} other providers agree; the result stands`,
      );
    }
    const replaced = await tx.executions.validOf(audit.id);
    const canonical = canonicalExecution(replaced.map((e) => ({ ...e, reportedAt: e.finishedAt ?? 0 })));
    if (!canonical) return;
    await tx.tasks.write(original.id, original.revision, now, {
      audit: 'changed',
      verdict: d.verdict,
      resultExecutionId: canonical.id,
      // A replaced verdict is no spot-check answer: it rests on the re-verification's providers alone.
      canary: false,
    });
    await tx.accounts.grantBlobAccess(
      [canonical.outputsBlob, canonical.stdoutBlob, canonical.stderrBlob].filter((b): b is string => b !== null),
      original.buyerId,
    );
    const overturned = (await tx.executions.validOf(original.id)).filter((e) => e.verdict !== d.verdict);
    await tx.executions.move(
      overturned.map((e) => e.id),
      'invalid',
      now,
    );
    let returned = 0;
    for (const e of overturned) {
      const quota = this.r.policy.quota;
      const rec = await tx.reputation.lock(e.providerId, quota, now);
      const outcome = { kind: 'invalid', turnaroundMs: null } as const;
      await tx.reputation.save(
        e.providerId,
        applyOutcome(rec, outcome, quota),
        { outcome, executionId: e.id, jobId: original.jobId },
        now,
      );
      const amount = Math.min(e.paid ?? 0, await tx.ledger.balance(accountLedger(e.providerId)));
      if (amount > 0) {
        await tx.ledger.post(clawbackTxn(e.providerId, original.buyerId, original.jobId, e.id, amount), now);
        returned += amount;
      }
    }
    await say(
      'reverified',
      `task ${original.index}: re-verification found its result wrong: ${d.valid.length} other providers agree on another ` +
        `(result hash ${d.verdict.slice(0, 12)}), which replaces it; ${overturned.length} execution(s) graded invalid` +
        (returned > 0 ? `, ${formatCredits(returned)} taken back from them and returned to you` : ''),
    );
    for (const p of new Set(overturned.map((e) => e.providerId)))
      await this.backtrack(tx, p, 'outvoted', 'a re-verification found another of its results wrong', now, fx);
  }

  /** The platform account (created on first use, without a key). */
  private async platformAccount(tx: Repositories, now: number): Promise<string> {
    const found = await tx.accounts.findAccount(PLATFORM_ACCOUNT);
    return found?.id ?? tx.accounts.createAccount(PLATFORM_ACCOUNT, ['buyer'], now);
  }

  /** Holds `amount` in a platform job's escrow, issued for the purpose (spot-checks are the platform's cost). */
  private async fund(
    tx: Repositories,
    platform: string,
    jobId: string,
    amount: number,
    why: string,
    now: number,
  ): Promise<void> {
    if (amount <= 0) return;
    await tx.ledger.post(grantTxn(platform, amount, `issued for a ${why}`), now);
    await tx.ledger.post(escrowHoldTxn(platform, jobId, amount, `escrow for a ${why}`), now);
  }
}
