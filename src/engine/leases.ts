/**
 * Leases and reaping: agents claim their executions (long-poll), renew the leases with heartbeats, and lose them
 * when they go silent; tasks that waited past their queue timeout end; tasks whose decision was interrupted are
 * decided again; after a restart or a stall of the coordinator, running leases get a grace first. Every change is a conditional write in one transaction per task, with its verification and
 * settlement.
 */
import { emptyClaimWantsRound, errors, failureOf, taskEnv } from '../core/index.js';
import type { Assignment, Availability, Failure } from '../protocol/index.js';
import type { ExpiredLease } from '../store/index.js';
import { Effects } from './effects.js';
import type { EngineResources } from './resources.js';
import type { SchedulingSystem } from './scheduling.js';
import type { SettlementSystem } from './settlement.js';
import type { VerificationSystem } from './verification.js';

export class LeaseSystem {
  constructor(
    private readonly r: EngineResources,
    private readonly scheduling: SchedulingSystem,
    private readonly verification: VerificationSystem,
    private readonly settlement: SettlementSystem,
  ) {}

  /**
   * Recovery at coordinator start: extends running leases by the restart grace so agents that lost this
   * coordinator while it was down (or restarting after a crash) can reconnect and report, instead of the reaper
   * declaring all their work lost at once. A dead agent still misses its renewals after the grace.
   */
  async recover(): Promise<void> {
    const extended = await this.extendRunning();
    if (extended > 0)
      this.r.log.info(
        { extended, graceMs: this.r.config.restartGraceMs },
        'coordinator started: running leases extended for agents to reconnect',
      );
  }

  /**
   * After a coordinator stall of `stalledMs` (core's coordinatorStallMs: event loop blocked, VM paused, store
   * unreachable), before the next reap: running leases get the restart grace, because the renewals they missed
   * were the coordinator's silence, not their agents'. A dead agent still misses its renewals after the grace.
   * Throws what the store throws (the caller reaps only after this succeeded).
   */
  async graceAfterStall(stalledMs: number): Promise<void> {
    const extended = await this.extendRunning();
    this.r.log.warn(
      { stalledMs, extended, graceMs: this.r.config.restartGraceMs },
      extended > 0
        ? `coordinator stalled for ${stalledMs} ms: running leases extended for agents to reach it`
        : `coordinator stalled for ${stalledMs} ms`,
    );
  }

  /** Extends every running lease to at least now + the restart grace (none when it is 0); returns how many. */
  private async extendRunning(): Promise<number> {
    const { config, store } = this.r;
    if (config.restartGraceMs <= 0) return 0;
    const until = this.r.now() + config.restartGraceMs;
    return store.transaction((tx) => tx.leases.extendAll(until));
  }

  /**
   * Claims up to `max` executions for an agent, waiting up to `waitMs` for one to be assigned (only while the
   * engine runs: `longPoll`). The agent waits for work before it looks for some, so a placement committed (here or
   * on another coordinator) between the look and the wait still wakes it: otherwise the claim slept through the
   * whole long poll and the execution was lost as `not_claimed`, blamed on an honest provider. Throws DeqoError
   * not_found for an unknown agent.
   */
  async claim(agentId: string, max: number, waitMs: number, longPoll: boolean): Promise<Assignment[]> {
    if (waitMs <= 0 || !longPoll) return (await this.claimNow(agentId, max)).claimed;
    let woken = false;
    let wake = () => {
      woken = true;
    };
    const stop = this.scheduling.waitForWork(agentId, () => wake());
    try {
      const { claimed, lastSeenAt, now } = await this.claimNow(agentId, max);
      if (claimed.length > 0) return claimed;
      if (!woken)
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, waitMs);
          wake = () => {
            clearTimeout(t);
            resolve();
          };
          if (emptyClaimWantsRound(lastSeenAt, now, this.r.config.agentTtlMs)) this.scheduling.request();
        });
      return (await this.claimNow(agentId, max)).claimed;
    } finally {
      stop();
    }
  }

  /** Claims what is assigned to the agent now; also returns when it was last seen before this claim, and now (ms). */
  private async claimNow(
    agentId: string,
    max: number,
  ): Promise<{ claimed: Assignment[]; lastSeenAt: number; now: number }> {
    const { store, config, log, events } = this.r;
    const agent = await store.accounts.getAgent(agentId);
    if (!agent) throw errors.notFound('agent', agentId);
    const now = this.r.now();
    const claimed = await store.transaction(async (tx) => {
      if (!(await tx.accounts.touchAgent(agentId, now))) throw errors.notFound('agent', agentId);
      const c = await tx.leases.claim(agentId, max, now, config.leaseTtlMs, config.deadlineGraceMs);
      // The provider may read the inputs of what it runs.
      await tx.accounts.grantBlobAccess(
        c.flatMap((x) => x.spec.inputs.map((i) => i.blob)),
        agent.providerId,
      );
      return c;
    });
    for (const c of claimed) {
      const e = {
        executionId: c.executionId,
        jobId: c.jobId,
        taskId: c.taskId,
        agentId,
        latencyMs: Math.max(0, now - c.assignedAt),
      };
      log.info(e, 'execution claimed');
      events.notify('dispatched', e);
    }
    const assignments = claimed.map((c) => ({
      executionId: c.executionId,
      fencingToken: c.fencingToken,
      leaseExpiresAt: c.leaseExpiresAt,
      jobId: c.jobId,
      taskIndex: c.taskIndex,
      image: c.spec.image,
      command: c.spec.command,
      env: taskEnv(c.spec, { index: c.taskIndex, params: c.params }, c.taskCount),
      resources: c.spec.resources,
      limits: c.spec.limits,
      inputs: c.spec.inputs,
      outputDir: c.spec.outputDir,
      network: c.spec.network,
      ...(c.spec.script ? { script: c.spec.script } : {}),
    }));
    return { claimed: assignments, lastSeenAt: agent.lastSeenAt, now };
  }

  /** Renews the agent's leases; returns executions it must stop. Throws DeqoError not_found for an unknown agent. */
  async heartbeat(
    agentId: string,
    held: Array<{ executionId: string; fencingToken: number }>,
    availability?: Availability,
  ): Promise<{ stop: string[]; leaseExpiresAt: number }> {
    const now = this.r.now();
    const until = now + this.r.config.leaseTtlMs;
    const stop = await this.r.store.transaction(async (tx) => {
      if (!(await tx.accounts.touchAgent(agentId, now, availability))) throw errors.notFound('agent', agentId);
      return tx.leases.renew(agentId, held, now, until);
    });
    return { stop, leaseExpiresAt: until };
  }

  /**
   * Ends leases that ran out (re-verifying and settling their tasks), fails tasks that waited past their queue
   * timeout, and re-verifies open tasks with nothing in flight whose decision may have been lost (a coordinator
   * stopped between recording a report and deciding).
   */
  async reap(): Promise<void> {
    const { store, config, log } = this.r;
    const now = this.r.now();
    for (const e of await store.leases.expired(now, now - config.claimTimeoutMs, 1_000)) {
      const failure = lossOf(e);
      if (await this.expire(e, failure)) log.warn({ ...e, reason: failure.reason }, 'execution lost');
    }
    for (const t of await store.tasks.queueTimedOut(now, 1_000)) {
      if (await this.queueTimeout(t))
        log.warn({ jobId: t.jobId, taskId: t.taskId }, 'task failed: no provider took it within the queue timeout');
    }
    for (const { taskId, jobId } of await store.tasks.awaitingDecision(1_000)) {
      try {
        const fx = new Effects();
        const outcome = await store.transaction((tx) => this.verification.task(tx, taskId, this.r.now(), fx));
        fx.emit(this.r.events);
        if (outcome !== 'unchanged') log.warn({ taskId, jobId, task: outcome }, 'task decided on re-verification');
      } catch (err) {
        log.error({ err, taskId, jobId }, 're-verification failed');
      }
    }
  }

  /** Ends one lease as lost and re-verifies its task; false when the agent reported or renewed meanwhile. */
  private async expire(e: ExpiredLease, failure: Failure): Promise<boolean> {
    const fx = await this.r.store.transaction(async (tx) => {
      const f = new Effects();
      const now = this.r.now();
      await tx.jobs.lock([e.jobId]);
      if (!(await tx.leases.expire(e, now, failure))) return null;
      await tx.tasks.touch([e.taskId], now);
      f.touch(e.jobId, 'lost');
      await this.settlement.executions(tx, [e.executionId], now, f);
      await this.verification.task(tx, e.taskId, now, f);
      return f;
    });
    fx?.emit(this.r.events);
    return fx !== null;
  }

  /**
   * Fails a task that no provider took within its job's queue timeout. Results it holds that wait for a quorum no
   * remaining provider can complete are cancelled, unpaid like a cancelled job's, since nothing could cross-check
   * them. A pending determinism probe that no agent took (`probe`: the task is its task 0) fails the whole job: its
   * held tasks cannot run before it. False when the task changed meanwhile.
   */
  private async queueTimeout(t: {
    taskId: string;
    jobId: string;
    revision: number;
    queueTimeoutMs: number;
    probe: boolean;
  }): Promise<boolean> {
    const what = t.probe ? 'the determinism probe (task 0 twice at once on one agent)' : 'this task';
    const failure = failureOf(
      'queue_timeout',
      `no provider took ${what} within the queue timeout (${Math.round(t.queueTimeoutMs / 1000)} s); \`deqo explain ${t.jobId}\` shows why`,
    );
    const fx = await this.r.store.transaction(async (tx) => {
      const f = new Effects();
      const now = this.r.now();
      await tx.jobs.lock([t.jobId]);
      if (!(await tx.tasks.write(t.taskId, t.revision, now, { failure }, 'failed'))) return null;
      const waiting = await tx.executions.ofTask(t.taskId, ['reported']);
      const cancelled = await tx.executions.move(
        waiting,
        'cancelled',
        now,
        failureOf('cancelled', 'the task timed out waiting for more replicas to cross-check this result'),
      );
      if (t.probe && (await tx.jobs.setProbe(t.jobId, 'pending', 'failed')))
        cancelled.push(...(await tx.jobs.cancelOpenWork(t.jobId, failure, now, 'failed')));
      f.touch(t.jobId, 'expired');
      await this.settlement.executions(tx, cancelled, now, f);
      await this.verification.rollUp(tx, t.jobId, now, f);
      return f;
    });
    fx?.emit(this.r.events);
    return fx !== null;
  }
}

/** Why an expired lease was lost: never claimed, held past its deadline (squatting), or not renewed (silent agent). */
function lossOf(e: ExpiredLease): Failure {
  if (e.state === 'assigned') return failureOf('not_claimed', 'the agent did not claim the execution in time');
  return e.pastDeadline
    ? failureOf('deadline_exceeded', "it held the execution past the job's timeout and the grace without reporting")
    : failureOf('lease_expired', 'the agent stopped renewing its lease (missed heartbeats)');
}
