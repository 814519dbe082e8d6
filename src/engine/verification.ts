/**
 * Verification: deciding a task from its executions' votes (core/verification.ts) and applying the decision in the
 * caller's transaction — the task's verdict, its executions graded valid / invalid / cancelled, an escrow top-up
 * when more replicas are needed, the job's roll-up, and the settlement of what the decision ended.
 */
import {
  accountLedger,
  credibility,
  decideTask,
  isCanary,
  isEstablished,
  judgeSpotCheck,
  type ExecutionVote,
  escrowHoldTxn,
  failureOf,
  formatCredits,
  gradeLateResult,
  OPEN_TASK_STATES,
  rollUpJobState,
  topUpCost,
  type Decision,
} from '../core/index.js';
import type { JobState } from '../protocol/index.js';
import type { Repositories, TaskForVerification } from '../store/index.js';
import type { Effects } from './effects.js';
import { ProbeSystem } from './probe.js';
import type { EngineResources } from './resources.js';
import type { SettlementSystem } from './settlement.js';
import type { SpotCheckSystem } from './spotchecks.js';

/** What verifying a task did: decided it, raised its target (pending), graded late results (closed), or nothing. */
export type VerifyOutcome = 'verified' | 'failed' | 'pending' | 'closed' | 'unchanged';

export class VerificationSystem {
  private readonly probes: ProbeSystem;

  constructor(
    private readonly r: EngineResources,
    private readonly settlement: SettlementSystem,
    private readonly spotChecks: SpotCheckSystem,
  ) {
    this.probes = new ProbeSystem(r, settlement, (tx, jobId, now, fx) => this.rollUp(tx, jobId, now, fx));
  }

  /**
   * Decides task `taskId` inside `tx` and applies the decision. A decided task instead grades the results reported
   * after its decision against its verdict. Re-reads and re-decides (up to 20 times) when another coordinator
   * changed the task meanwhile. Throws when the task does not exist or keeps changing.
   */
  async task(tx: Repositories, taskId: string, now: number, fx: Effects): Promise<VerifyOutcome> {
    for (let attempt = 0; attempt < 20; attempt++) {
      const task = await tx.tasks.forVerification(taskId);
      if (!task) throw new Error(`task ${taskId} does not exist`);
      if (!OPEN_TASK_STATES.includes(task.state)) {
        await this.gradeLate(tx, task, now, fx);
        return 'closed';
      }
      // A job's tasks wait for its determinism probe (probe.ts), which task 0's probe executions decide.
      if (task.probe === 'pending') return task.index === 0 ? this.probes.decide(tx, task, now, fx) : 'unchanged';
      const { credibility: cfg } = this.r.policy;
      const votes = task.votes.map(({ standing, ...v }) => ({
        ...v,
        credibility: credibility(standing, cfg),
        established: isEstablished(standing, cfg),
      }));
      const decision =
        task.expectedVerdict !== null ? judged(task, votes) : decideTask(task.policy, task.target, votes);
      if (decision.kind === 'pending' && decision.target === task.target) return 'unchanged';
      const applied = await this.apply(tx, task, decision, now, fx, votes);
      if (!applied) continue;
      if (decision.kind !== 'pending') {
        if (task.jobKind === 'audit') await this.spotChecks.audited(tx, task, decision, now, fx);
        if (
          task.expectedVerdict !== null &&
          decision.kind === 'failed' &&
          decision.failure.reason === 'spot_check_failed'
        ) {
          const liar = votes.find((v) => decision.invalid.includes(v.id));
          if (liar) await this.spotChecks.caught(tx, liar.providerId, now, fx);
        } else {
          const outvoted = votes.filter((v) => decision.invalid.includes(v.id)).map((v) => v.providerId);
          await this.backtrack(tx, outvoted, now, fx);
        }
      }
      return applied;
    }
    throw new Error(`task ${taskId} kept changing while being verified`);
  }

  /** Applies `d` to `task` (read at its revision); null when the task changed since. */
  private async apply(
    tx: Repositories,
    task: TaskForVerification,
    d: Decision,
    now: number,
    fx: Effects,
    votes: readonly ExecutionVote[],
  ): Promise<VerifyOutcome | null> {
    if (d.kind === 'pending') {
      const topUp = topUpCost(task.funded, d.target, task.executionMaxCost);
      if (topUp > 0) {
        const available = await tx.ledger.balance(accountLedger(task.buyerId));
        if (available < topUp) return this.apply(tx, task, this.unfunded(task, topUp, available), now, fx, votes);
      }
      const funded = Math.max(task.funded, d.target);
      if (!(await tx.tasks.write(task.id, task.revision, now, { target: d.target, funded }))) return null;
      if (topUp > 0) {
        await tx.ledger.post(
          escrowHoldTxn(task.buyerId, task.jobId, topUp, `escrow top-up: task needs ${d.target} executions`),
          now,
        );
        fx.credits.push({ kind: 'escrow_hold', jobId: task.jobId, micro: topUp });
      }
      return 'pending';
    }
    const to = d.kind === 'verified' ? 'verified' : 'failed';
    const failure = d.kind === 'failed' ? d.failure : null;
    // A buyer's verified task its buyer lets be replayed becomes a canary when it is a safe one (core isCanary).
    const graded = votes
      .filter((v) => d.valid.includes(v.id) || d.invalid.includes(v.id))
      .map((v) => ({
        state: d.valid.includes(v.id) ? ('valid' as const) : ('invalid' as const),
        established: v.established,
        exitCode: v.exitCode,
      }));
    const canary =
      d.kind === 'verified' &&
      task.jobKind === 'buyer' &&
      isCanary({ allowed: task.spotChecks, tolerant: task.tolerant, graded });
    if (!(await tx.tasks.write(task.id, task.revision, now, { verdict: d.verdict, failure, canary }, to))) return null;
    const ended = [
      ...(await tx.executions.move(d.valid, 'valid', now)),
      ...(await tx.executions.move(d.invalid, 'invalid', now)),
      ...(await tx.executions.move(
        d.ungraded,
        'cancelled',
        now,
        failureOf('cancelled', 'the task ended without a verdict: paid for the work, not graded'),
      )),
      ...(await tx.executions.move(
        d.stop,
        'cancelled',
        now,
        failureOf('cancelled', 'stopped: the task was decided while it ran'),
      )),
      ...(await tx.executions.move(
        d.cancel,
        'cancelled',
        now,
        failureOf('superseded', 'no longer needed: the task was decided before it started'),
      )),
    ];
    fx.decided.push({ taskId: task.id, jobId: task.jobId, outcome: d.kind, reason: failure?.reason ?? null });
    this.r.log.info({ taskId: task.id, jobId: task.jobId, outcome: d.kind, reason: failure?.reason }, 'task decided');
    await this.settlement.executions(tx, ended, now, fx, new Set(d.confirmed));
    await this.rollUp(tx, task.jobId, now, fx);
    return d.kind;
  }

  /**
   * The decision when the buyer cannot fund another replica: the task fails; its reported results end ungraded (paid
   * for the work from what escrow holds), its unstarted executions are superseded and running ones stopped.
   */
  private unfunded(task: TaskForVerification, needed: number, available: number): Decision {
    const of = (...states: string[]) => task.votes.filter((v) => states.includes(v.state)).map((v) => v.id);
    return {
      kind: 'failed',
      verdict: null,
      valid: [],
      invalid: [],
      confirmed: [],
      ungraded: of('reported'),
      cancel: of('assigned'),
      stop: of('running'),
      failure: failureOf(
        'insufficient_funds',
        `results disagree and another replica is needed, but the buyer cannot fund it: it needs ${formatCredits(needed)} ` +
          `in escrow and has ${formatCredits(available)}`,
      ),
    };
  }

  /** Grades results reported after their task was decided against its verdict, and settles them. */
  private async gradeLate(tx: Repositories, task: TaskForVerification, now: number, fx: Effects): Promise<void> {
    const late = await tx.executions.ungraded(task.id);
    if (late.length === 0) return;
    const verdict = task.state === 'cancelled' ? null : task.verdict;
    const graded = (g: 'valid' | 'invalid') =>
      late.filter((e) => gradeLateResult(verdict, e.verdict ?? '') === g).map((e) => e.id);
    const valid = await tx.executions.move(graded('valid'), 'valid', now);
    const invalid = await tx.executions.move(graded('invalid'), 'invalid', now);
    // A late result that agrees with the verdict is confirmed by the group that decided it, independently of it.
    await this.settlement.executions(tx, [...valid, ...invalid], now, fx, new Set(valid));
    await this.settlement.job(tx, task.jobId, now, fx);
    if (verdict !== null) {
      const wrong = new Set(invalid);
      await this.backtrack(
        tx,
        late.filter((e) => wrong.has(e.id)).map((e) => e.providerId),
        now,
        fx,
      );
    }
  }

  /**
   * Providers whose result an accepted group just outvoted are known to have returned a wrong result: whatever
   * verified task rested on one of them alone is re-verified (backtracking, engine/spotchecks.ts). Spot-check and
   * platform replays are judged elsewhere.
   */
  private async backtrack(tx: Repositories, providers: readonly string[], now: number, fx: Effects): Promise<void> {
    for (const p of new Set(providers))
      await this.spotChecks.backtrack(
        tx,
        p,
        'outvoted',
        'found returning a wrong result on another task (outvoted)',
        now,
        fx,
      );
  }

  /**
   * Moves the job to the state its task counts imply (core rollUpJobState) and, when it ended, settles it if all
   * its executions are settled. Returns the job's state.
   */
  async rollUp(tx: Repositories, jobId: string, now: number, fx: Effects): Promise<JobState | null> {
    const cur = await tx.jobs.taskCounts(jobId);
    if (!cur) return null;
    const to = rollUpJobState(cur.counts);
    if (to !== cur.state && (await tx.jobs.setState(jobId, to, now))) fx.touch(jobId, 'reported');
    await this.settlement.job(tx, jobId, now, fx);
    return to;
  }
}

/**
 * The decision on a spot-check task (a replay whose answer is known, core/spotchecks.ts judgeSpotCheck): the known
 * answer verifies it and confirms its provider; a different one fails it as spot_check_failed with the execution
 * invalid (the caller then blacklists the provider and backtracks); a job-caused failure says nothing (ungraded).
 * Without a report yet it is decided like any task (a provider-side error ends it: maxErrors 1).
 */
function judged(task: TaskForVerification, votes: readonly ExecutionVote[]): Decision {
  const reported = votes.find((v) => v.state === 'reported');
  if (!reported || task.expectedVerdict === null) return decideTask(task.policy, task.target, votes);
  const none = { valid: [], invalid: [], confirmed: [], ungraded: [], cancel: [], stop: [] };
  switch (judgeSpotCheck(task.expectedVerdict, reported)) {
    case 'passed':
      return {
        kind: 'verified',
        verdict: task.expectedVerdict,
        ...none,
        valid: [reported.id],
        confirmed: [reported.id],
      };
    case 'caught':
      return {
        kind: 'failed',
        verdict: null,
        ...none,
        invalid: [reported.id],
        failure: failureOf(
          'spot_check_failed',
          `expected result ${task.expectedVerdict.slice(0, 12)}, got ${(reported.verdict ?? 'none').slice(0, 24)}`,
        ),
      };
    case 'inconclusive':
      return {
        kind: 'failed',
        verdict: null,
        ...none,
        ungraded: [reported.id],
        failure: reported.failure ?? failureOf('no_quorum', 'the spot-check ended without a comparable result'),
      };
  }
}
