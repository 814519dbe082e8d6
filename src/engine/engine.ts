/**
 * The engine: coordinator services over core + store. It submits jobs, runs the scheduler (pure plan, then a
 * conditional apply), hands executions to agents under leases (with long-poll), takes reports and verifies,
 * and reaps expired leases. Loops run on a timer and on events (submit, report, register). Observers (metrics)
 * subscribe to `engine.events` (events.ts).
 */
import type { Logger } from 'pino';
import {
  buildPredictor,
  defaultMaxExecutions,
  DeqoError,
  errors,
  expandTasks,
  planExecutions,
  taskEnv,
  type Predictor,
} from '../core/index.js';
import type { Assignment, Availability, Capacity, JobSpec, Offer, ReportRequest } from '../protocol/index.js';
import type { Store } from '../store/index.js';
import { DEFAULT_ENGINE_CONFIG, type EngineConfig } from './config.js';
import { EngineEvents } from './events.js';
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
  /** Dispatches, task decisions, settlements and credit movements, for observers (events.ts). */
  readonly events = new EngineEvents((err, event) => this.log.error({ err, event }, 'engine event listener failed'));
  private unsubscribe: (() => void) | null = null;

  constructor(
    readonly store: Store,
    readonly config: EngineConfig = DEFAULT_ENGINE_CONFIG,
    private readonly log: Logger,
    readonly now: Clock = Date.now,
    /** Random draws in [0, 1) for adaptive replication (injected so tests can decide them). */
    private readonly random: () => number = Math.random,
  ) {
    this.events.on('taskDecided', (e) => this.log.info(e, 'task decided'));
  }

  /**
   * Recovery at coordinator start: extends running leases by the restart grace so agents that lost this
   * coordinator while it was down (or restarting after a crash) can reconnect and report, instead of the
   * reaper declaring all their work lost at once. Tells "the coordinator could not reach the agent" from
   * "the agent is dead": a dead agent still misses its renewals after the grace and its leases expire.
   */
  async recover(): Promise<void> {
    if (this.config.restartGraceMs <= 0) return;
    const extended = await this.store.executions.extendLeases(this.now() + this.config.restartGraceMs);
    if (extended > 0)
      this.log.info(
        { extended, graceMs: this.config.restartGraceMs },
        'coordinator started: running leases extended for agents to reconnect',
      );
  }

  /** Starts the periodic scheduler + reaper loop, and wakes agents other coordinators gave work to. */
  start(): void {
    if (this.timer) return;
    this.unsubscribe = this.store.notifier.subscribe(
      (agentIds) => {
        for (const id of agentIds) this.wake(id);
      },
      (err) =>
        this.log.warn({ err }, 'not hearing other coordinators; agents they give work to wait for their next claim'),
    );
    this.timer = setInterval(() => {
      void this.tick();
    }, this.config.tickMs);
    this.timer.unref();
  }

  /** Stops the loop and wakes every long-polling claim so HTTP requests can finish. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.unsubscribe?.();
    this.unsubscribe = null;
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
    try {
      tasks = expandTasks(spec);
    } catch (err) {
      throw new DeqoError('validation_failed', (err as Error).message, [
        { path: 'array', message: (err as Error).message },
      ]);
    }
    const v = spec.verification;
    const { jobId, escrow } = await this.store.jobs.createJob(
      {
        buyerId,
        spec,
        tasks,
        policy: {
          replicas: v.replicas,
          quorum: v.quorum,
          maxExecutions: v.maxExecutions ?? defaultMaxExecutions(v.replicas),
          maxErrors: v.maxErrors,
        },
      },
      this.now(),
    );
    this.log.info({ jobId, tasks: tasks.length, image: spec.image, escrow }, 'job submitted');
    this.events.credits('escrow_hold', jobId, escrow);
    this.events.notify('jobTouched', { jobId, cause: 'submitted' });
    this.requestSchedule();
    return { jobId, tasks: tasks.length, escrow };
  }

  /** Cancels a job (open tasks and their executions); false when it had already ended. Settles what it can. */
  async cancelJob(jobId: string): Promise<boolean> {
    const cancelled = await this.store.jobs.cancelJob(jobId, this.now());
    if (cancelled) {
      this.log.info({ jobId }, 'job cancelled');
      this.events.notify('jobTouched', { jobId, cause: 'cancelled' });
    }
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
        const settled = await this.store.settlement.settleExecutions(
          await this.store.settlement.unsettledExecutions(1_000),
          this.now(),
        );
        for (const s of settled) this.events.executionSettled(s);
        for (const jobId of await this.store.settlement.unsettledJobs(1_000)) {
          const s = await this.store.settlement.settleJob(jobId, this.now());
          if (s) {
            this.log.info({ jobId, state: s.state, refunded: s.refunded }, 'job settled');
            this.events.jobSettled(s);
          }
        }
      } catch (err) {
        this.log.error({ err }, 'settlement failed');
      }
    })().finally(() => {
      this.settling = null;
    });
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
    if (this.scheduling) {
      this.rescheduleRequested = true;
      return;
    }
    this.scheduling = (async () => {
      do {
        this.rescheduleRequested = false;
        try {
          await this.scheduleOnce();
        } catch (err) {
          this.log.error({ err }, 'scheduling failed');
        }
      } while (this.rescheduleRequested);
    })().finally(() => {
      this.scheduling = null;
    });
  }

  /** Schedules and waits for the round to finish. */
  async schedule(): Promise<void> {
    this.requestSchedule();
    await this.scheduling;
  }

  /** One round, run by one coordinator at a time on a shared database (store.exclusive). */
  private scheduleOnce(): Promise<void> {
    return this.store.exclusive('schedule', () => this.scheduleRound());
  }

  private async scheduleRound(): Promise<void> {
    const now = this.now();
    const { tasks, revisions } = await this.store.snapshot.wantingTasks(5_000, undefined, {
      now,
      backoff: { baseMs: this.config.retryBackoffMs, maxMs: this.config.retryBackoffMaxMs },
    });
    if (tasks.length === 0) return;
    const { agents, prices } = await this.store.snapshot.agents(now, now - this.config.agentTtlMs, false);
    if (agents.length === 0) return;
    const plan = planExecutions(tasks, agents, { random: this.random, predict: await this.predictorNow() });
    if (plan.length === 0) return;
    const touched = await this.store.executions.applyPlan(plan, revisions, prices, now);
    this.log.debug({ placements: plan.length, agents: touched.size }, 'plan applied');
    const placedTasks = new Set(plan.map((p) => p.taskId));
    for (const jobId of new Set(tasks.filter((t) => placedTasks.has(t.taskId)).map((t) => t.jobId)))
      this.events.notify('jobTouched', { jobId, cause: 'placed' });
    for (const agentId of touched) this.wake(agentId);
    await this.store.notifier.publish([...touched]);
  }

  private wake(agentId: string): void {
    const set = this.waiters.get(agentId);
    if (!set) return;
    this.waiters.delete(agentId);
    for (const w of set) w();
  }

  /** Registers (or refreshes) an agent and schedules work for it. */
  async registerAgent(a: {
    id: string;
    providerId: string;
    name: string;
    publicKey: string;
    capacity: Capacity;
    offer: Offer;
    availability: Availability;
  }): Promise<void> {
    await this.store.accounts.registerAgent(a, this.now());
    this.log.info(
      {
        agentId: a.id,
        name: a.name,
        cpus: a.capacity.cpus,
        memoryMb: a.capacity.memoryMb,
        prices: a.offer.prices,
        availability: a.availability.state,
      },
      'agent registered',
    );
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
        const done = () => {
          clearTimeout(t);
          set.delete(done);
          resolve();
        };
        const t = setTimeout(done, waitMs);
        set.add(done);
        this.waiters.set(agentId, set);
        this.requestSchedule();
      });
      claimed = await this.store.executions.claim(agentId, max, this.now(), this.config.leaseTtlMs);
    }
    if (claimed.length > 0) {
      const agent = await this.store.accounts.getAgent(agentId);
      if (agent)
        await this.store.accounts.grantBlobAccess(
          claimed.flatMap((c) => c.spec.inputs.map((i) => i.blob)),
          agent.providerId,
        );
    }
    for (const c of claimed) {
      const e = {
        executionId: c.executionId,
        jobId: c.jobId,
        taskId: c.taskId,
        agentId,
        latencyMs: Math.max(0, this.now() - c.assignedAt),
      };
      this.log.info(e, 'execution claimed');
      this.events.notify('dispatched', e);
    }
    return claimed.map((c) => ({
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
  }

  /** Renews the agent's leases; returns executions it must stop. Throws not_found for an unknown agent. */
  async heartbeat(
    agentId: string,
    held: Array<{ executionId: string; fencingToken: number }>,
    availability?: Availability,
  ): Promise<{ stop: string[]; leaseExpiresAt: number }> {
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
    if (buyer)
      await this.store.accounts.grantBlobAccess(
        [end.stdoutBlob, end.stderrBlob, end.state === 'reported' ? end.outputsBlob : null].filter(
          (b): b is string => b !== null,
        ),
        buyer,
      );
    const outcome = await verifyTask(this.store, taskId, this.now, this.events);
    this.log.info(
      {
        executionId,
        jobId: lease.jobId,
        taskId,
        agentId,
        state: end.state,
        reason: end.failure?.reason,
        task: outcome,
      },
      'execution reported',
    );
    this.events.notify('jobTouched', { jobId: lease.jobId, cause: 'reported' });
    this.requestSchedule();
    await this.settle();
  }

  /**
   * Expires leases and re-verifies the tasks they belonged to; then re-verifies open tasks with nothing in
   * flight, whose decision may have been lost (a coordinator stopped between recording a report and verifying).
   */
  async reap(): Promise<void> {
    const lost = await this.store.executions.expireLeases(this.now(), this.config.claimTimeoutMs);
    for (const l of lost) this.log.warn(l, 'execution lost');
    for (const jobId of new Set(lost.map((l) => l.jobId))) this.events.notify('jobTouched', { jobId, cause: 'lost' });
    for (const [taskId, jobId] of new Map(lost.map((l) => [l.taskId, l.jobId]))) {
      const outcome = await verifyTask(this.store, taskId, this.now, this.events);
      this.log.info({ taskId, jobId, task: outcome }, 'task re-verified after a lost execution');
    }
    for (const jobId of await this.store.executions.expireQueuedTasks(this.now(), 1_000)) {
      this.log.warn({ jobId }, 'tasks failed: no provider took them within the queue timeout');
      this.events.notify('jobTouched', { jobId, cause: 'expired' });
    }
    for (const { taskId, jobId } of await this.store.executions.tasksAwaitingDecision(1_000)) {
      try {
        const outcome = await verifyTask(this.store, taskId, this.now, this.events);
        if (outcome !== 'pending') this.log.warn({ taskId, jobId, task: outcome }, 'task decided on re-verification');
      } catch (err) {
        this.log.error({ err, taskId, jobId }, 're-verification failed');
      }
    }
  }
}
