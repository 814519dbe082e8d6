/**
 * The engine: coordinator services over core + store. It submits jobs, runs the scheduler (pure plan, then a
 * conditional apply), hands executions to agents under leases (with long-poll), takes reports and verifies,
 * and reaps expired leases. Loops run on a timer and on events (submit, report, register).
 */
import type { Logger } from 'pino';
import { buildPredictor, defaultMaxExecutions, DeqoError, errors, expandTasks, planExecutions, taskEnv, type Predictor } from '../core/index.js';
import type { Assignment, Availability, Capacity, JobSpec, Offer, ReportRequest } from '../protocol/index.js';
import type { Store } from '../store/index.js';
import { DEFAULT_ENGINE_CONFIG, type EngineConfig } from './config.js';
import { classifyReport, verifyTask } from './verifier.js';

/** Time source in epoch ms (injected so tests and simulations control it). */
export type Clock = () => number;

export class Engine {
  private readonly waiters = new Map<string, Set<() => void>>();
  private timer: NodeJS.Timeout | null = null;
  private scheduling: Promise<void> | null = null;
  private rescheduleRequested = false;
  private predictor: { build: number; predict: Predictor } | null = null;
  private settling: Promise<void> | null = null;

  constructor(
    readonly store: Store,
    readonly config: EngineConfig = DEFAULT_ENGINE_CONFIG,
    private readonly log: Logger,
    readonly now: Clock = Date.now,
    /** Random draws in [0, 1) for adaptive replication (injected so tests can decide them). */
    private readonly random: () => number = Math.random,
  ) {}

  /** Starts the periodic scheduler + reaper loop. */
  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => { void this.tick(); }, this.config.tickMs);
    this.timer.unref();
  }

  /** Stops the loop and wakes every long-polling claim so HTTP requests can finish. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    for (const set of this.waiters.values()) for (const wake of set) wake();
    await this.scheduling;
  }

  /** One round: expire leases, then schedule. Errors are logged, never thrown (the loop must survive). */
  async tick(): Promise<void> {
    try {
      await this.reap();
      await this.schedule();
      await this.settle();
    } catch (err) {
      this.log.error({ err }, 'engine tick failed');
    }
  }

  /**
   * Validates nothing (the caller parsed the spec); expands tasks, stores the job with its maximum cost held
   * in escrow, and schedules. Throws DeqoError validation_failed when the array expands too far,
   * insufficient_funds (with the shortfall) when the buyer cannot afford the escrow.
   */
  async submitJob(buyerId: string, spec: JobSpec): Promise<{ jobId: string; tasks: number; escrow: number }> {
    let tasks;
    try { tasks = expandTasks(spec); } catch (err) { throw new DeqoError('validation_failed', (err as Error).message, [{ path: 'array', message: (err as Error).message }]); }
    const v = spec.verification;
    const { jobId, escrow } = await this.store.jobs.createJob({ buyerId, spec, tasks, policy: { replicas: v.replicas, quorum: v.quorum,
      maxExecutions: v.maxExecutions ?? defaultMaxExecutions(v.replicas), maxErrors: v.maxErrors } }, this.now());
    this.log.info({ jobId, tasks: tasks.length, image: spec.image, escrow }, 'job submitted');
    this.requestSchedule();
    return { jobId, tasks: tasks.length, escrow };
  }

  /** Cancels a job (open tasks and their executions); false when it had already ended. Settles what it can. */
  async cancelJob(jobId: string): Promise<boolean> {
    const cancelled = await this.store.jobs.cancelJob(jobId, this.now());
    if (cancelled) this.log.info({ jobId }, 'job cancelled');
    await this.settle();
    return cancelled;
  }

  /**
   * Settles what has ended: pays valid executions, records reputation outcomes, refunds ended jobs' unused
   * escrow. Exactly once per execution and job (store/settlement.ts); concurrent calls share one run.
   * Errors are logged, never thrown.
   */
  async settle(): Promise<void> {
    if (this.settling) return this.settling;
    this.settling = (async () => {
      try {
        await this.store.settlement.settleExecutions(await this.store.settlement.unsettledExecutions(1_000), this.now());
        for (const jobId of await this.store.settlement.unsettledJobs(1_000)) {
          const refunded = await this.store.settlement.settleJob(jobId, this.now());
          if (refunded !== null) this.log.info({ jobId, refunded }, 'job settled');
        }
      } catch (err) {
        this.log.error({ err }, 'settlement failed');
      }
    })().finally(() => { this.settling = null; });
    return this.settling;
  }

  /** The runtime predictor, rebuilt from recent valid executions every predictorRefreshMs. */
  async predictorNow(): Promise<Predictor> {
    const now = this.now();
    if (!this.predictor || now - this.predictor.build >= this.config.predictorRefreshMs) {
      this.predictor = { build: now, predict: buildPredictor(await this.store.snapshot.runtimeSamples(2_000)) };
    }
    return this.predictor.predict;
  }

  /** Runs the scheduler now, or once more after the running round if one is in progress. */
  requestSchedule(): void {
    if (this.scheduling) { this.rescheduleRequested = true; return; }
    this.scheduling = (async () => {
      do {
        this.rescheduleRequested = false;
        try { await this.scheduleOnce(); } catch (err) { this.log.error({ err }, 'scheduling failed'); }
      } while (this.rescheduleRequested);
    })().finally(() => { this.scheduling = null; });
  }

  /** Schedules and waits for the round to finish. */
  async schedule(): Promise<void> {
    this.requestSchedule();
    await this.scheduling;
  }

  private async scheduleOnce(): Promise<void> {
    const now = this.now();
    const { tasks, revisions } = await this.store.snapshot.wantingTasks(5_000);
    if (tasks.length === 0) return;
    const { agents, prices } = await this.store.snapshot.agents(now, now - this.config.agentTtlMs, false);
    if (agents.length === 0) return;
    const plan = planExecutions(tasks, agents, { random: this.random, predict: await this.predictorNow() });
    if (plan.length === 0) return;
    const touched = await this.store.executions.applyPlan(plan, revisions, prices, now);
    this.log.debug({ placements: plan.length, agents: touched.size }, 'plan applied');
    for (const agentId of touched) this.wake(agentId);
  }

  private wake(agentId: string): void {
    const set = this.waiters.get(agentId);
    if (!set) return;
    this.waiters.delete(agentId);
    for (const w of set) w();
  }

  /** Registers (or refreshes) an agent and schedules work for it. */
  async registerAgent(a: { id: string; providerId: string; name: string; publicKey: string; capacity: Capacity; offer: Offer; availability: Availability }): Promise<void> {
    await this.store.accounts.registerAgent(a, this.now());
    this.log.info({ agentId: a.id, name: a.name, cpus: a.capacity.cpus, memoryMb: a.capacity.memoryMb, prices: a.offer.prices, availability: a.availability.state }, 'agent registered');
    this.requestSchedule();
  }

  /**
   * Claims up to `max` executions for an agent, waiting up to `waitMs` for one to be assigned.
   * Throws DeqoError not_found for an unknown agent.
   */
  async claim(agentId: string, max: number, waitMs: number): Promise<Assignment[]> {
    if (!(await this.store.accounts.touchAgent(agentId, this.now()))) throw errors.notFound('agent', agentId);
    let claimed = await this.store.executions.claim(agentId, max, this.now(), this.config.leaseTtlMs);
    if (claimed.length === 0 && waitMs > 0 && this.timer) {
      await new Promise<void>((resolve) => {
        const set = this.waiters.get(agentId) ?? new Set();
        const done = () => { clearTimeout(t); set.delete(done); resolve(); };
        const t = setTimeout(done, waitMs);
        set.add(done);
        this.waiters.set(agentId, set);
        this.requestSchedule();
      });
      claimed = await this.store.executions.claim(agentId, max, this.now(), this.config.leaseTtlMs);
    }
    if (claimed.length > 0) {
      const agent = await this.store.accounts.getAgent(agentId);
      if (agent) await this.store.accounts.grantBlobAccess(claimed.flatMap((c) => c.spec.inputs.map((i) => i.blob)), agent.providerId);
    }
    return claimed.map((c) => ({
      executionId: c.executionId, fencingToken: c.fencingToken, leaseExpiresAt: c.leaseExpiresAt, jobId: c.jobId,
      taskIndex: c.taskIndex, image: c.spec.image, command: c.spec.command,
      env: taskEnv(c.spec, { index: c.taskIndex, params: c.params }, c.taskCount),
      resources: c.spec.resources, limits: c.spec.limits, inputs: c.spec.inputs, outputDir: c.spec.outputDir, network: c.spec.network,
    }));
  }

  /** Renews the agent's leases; returns executions it must stop. Throws not_found for an unknown agent. */
  async heartbeat(agentId: string, held: Array<{ executionId: string; fencingToken: number }>, availability?: Availability): Promise<{ stop: string[]; leaseExpiresAt: number }> {
    const now = this.now();
    if (!(await this.store.accounts.touchAgent(agentId, now, availability))) throw errors.notFound('agent', agentId);
    const stop = await this.store.executions.renewLeases(agentId, held, now, this.config.leaseTtlMs);
    return { stop, leaseExpiresAt: now + this.config.leaseTtlMs };
  }

  /**
   * Records an agent's report and verifies the task. Throws DeqoError not_found when the execution is not the
   * agent's, stale_lease when the agent no longer holds the lease (expired, cancelled, already reported, wrong
   * token), digest_mismatch for an inconsistent result, validation_failed for a blob the provider cannot read.
   */
  async report(agentId: string, executionId: string, r: ReportRequest): Promise<void> {
    const lease = await this.store.executions.leaseOf(executionId);
    // Another agent's execution answers like a missing one: nothing about it is revealed.
    if (!lease || lease.agentId !== agentId) throw errors.notFound('execution', executionId);
    if (lease.state !== 'running' || lease.fencingToken !== r.fencingToken) throw errors.staleLease(executionId);
    const end = await classifyReport(this.store, r, lease.providerId);
    const taskId = await this.store.executions.recordEnd(executionId, agentId, r.fencingToken, end, this.now());
    if (!taskId) throw errors.staleLease(executionId);
    const buyer = await this.store.executions.buyerOf(executionId);
    if (buyer) await this.store.accounts.grantBlobAccess([end.stdoutBlob, end.stderrBlob, end.state === 'reported' ? end.outputsBlob : null]
      .filter((b): b is string => b !== null), buyer);
    const outcome = await verifyTask(this.store, taskId, this.now);
    this.log.info({ executionId, agentId, taskId, state: end.state, reason: end.failure?.reason, task: outcome }, 'execution reported');
    this.requestSchedule();
    await this.settle();
  }

  /**
   * Expires leases and re-verifies the tasks they belonged to; then re-verifies open tasks with nothing in
   * flight, whose decision may have been lost (a coordinator stopped between recording a report and verifying).
   */
  async reap(): Promise<void> {
    const tasks = await this.store.executions.expireLeases(this.now(), this.config.claimTimeoutMs);
    for (const taskId of tasks) {
      const outcome = await verifyTask(this.store, taskId, this.now);
      this.log.warn({ taskId, task: outcome }, 'lease expired; execution lost');
    }
    for (const jobId of await this.store.executions.expireQueuedTasks(this.now(), 1_000)) {
      this.log.warn({ jobId }, 'tasks failed: no provider took them within the queue timeout');
    }
    for (const taskId of await this.store.executions.tasksAwaitingDecision(1_000)) {
      try {
        const outcome = await verifyTask(this.store, taskId, this.now);
        if (outcome !== 'pending') this.log.warn({ taskId, task: outcome }, 'task decided on re-verification');
      } catch (err) {
        this.log.error({ err, taskId }, 're-verification failed');
      }
    }
  }
}
