/**
 * The engine: the coordinator's services over core + store, as stage systems sharing one resources object
 * (resources.ts): submission, scheduling + the plan applier, leases and reaping, reports + verification,
 * settlement, and accounts. This class wires them, runs the periodic tick (stall grace, reap, schedule, settle) and is what the
 * routes and the CLI call to change state. Observers (metrics, the live stream) subscribe to `engine.events`.
 */
import type { Logger } from 'pino';
import {
  coordinatorStallMs,
  DEFAULT_ACCOUNT_LIMITS,
  DEFAULT_CREDIBILITY,
  DEFAULT_QUOTA,
  type AccountLimits,
} from '../core/index.js';
import type { Assignment, Availability, JobSpec, ReportRequest } from '../protocol/index.js';
import type { Store } from '../store/index.js';
import { AccountSystem, type AgentRegistration } from './accounts.js';
import { BlobSystem } from './blobs.js';
import { DEFAULT_ENGINE_CONFIG, type EngineConfig } from './config.js';
import { Effects } from './effects.js';
import { EngineEvents } from './events.js';
import { LeaseSystem } from './leases.js';
import { ReportSystem } from './reports.js';
import type { BlobReader, Clock, EngineResources, MarketPolicy } from './resources.js';
import { SchedulingSystem } from './scheduling.js';
import { SettlementSystem } from './settlement.js';
import { SpotCheckSystem } from './spotchecks.js';
import { SubmissionSystem } from './submission.js';
import { VerificationSystem, type VerifyOutcome } from './verification.js';

/** Market settings when none are given: no platform fee, the default reputation quota. */
export const DEFAULT_MARKET_POLICY: Readonly<MarketPolicy> = Object.freeze({
  feeBps: 0,
  quota: DEFAULT_QUOTA,
  credibility: DEFAULT_CREDIBILITY,
});

/** How to build an engine beyond its store: its blobs, timings, market policy, log, clock and random source. */
export interface EngineOptions {
  /** Where blob bytes are read (the coordinator's BlobStore): every completed report's outputs are checked there. */
  blobs: BlobReader;
  config?: EngineConfig;
  policy?: MarketPolicy;
  /** Per-account limits (core/limits.ts); DEFAULT_ACCOUNT_LIMITS when not given. */
  limits?: AccountLimits;
  log: Logger;
  now?: Clock;
  random?: () => number;
}

export class Engine {
  readonly store: Store;
  readonly blobs: BlobReader;
  readonly config: EngineConfig;
  readonly policy: MarketPolicy;
  readonly limits: AccountLimits;
  readonly now: Clock;
  /** Dispatches, task decisions, settlements and credit movements, for observers (events.ts). */
  readonly events: EngineEvents;
  readonly settlement: SettlementSystem;
  readonly spotChecks: SpotCheckSystem;
  readonly verification: VerificationSystem;
  readonly scheduling: SchedulingSystem;
  readonly leases: LeaseSystem;
  readonly reports: ReportSystem;
  readonly submission: SubmissionSystem;
  readonly accounts: AccountSystem;
  readonly blobSystem: BlobSystem;
  private readonly log: Logger;
  private timer: NodeJS.Timeout | null = null;
  /** When the latest tick whose reap completed started, epoch ms (null: none yet); the stall rule's reference. */
  private lastReapAt: number | null = null;
  private unsubscribe: (() => void) | null = null;

  constructor(store: Store, o: EngineOptions) {
    this.store = store;
    this.blobs = o.blobs;
    this.config = o.config ?? DEFAULT_ENGINE_CONFIG;
    this.policy = o.policy ?? DEFAULT_MARKET_POLICY;
    this.limits = o.limits ?? DEFAULT_ACCOUNT_LIMITS;
    this.now = o.now ?? Date.now;
    this.log = o.log;
    this.events = new EngineEvents((err, event) => this.log.error({ err, event }, 'engine event listener failed'));
    const r: EngineResources = {
      store,
      blobs: o.blobs,
      config: this.config,
      policy: this.policy,
      limits: this.limits,
      log: o.log,
      now: this.now,
      random: o.random ?? Math.random,
      events: this.events,
    };
    this.settlement = new SettlementSystem(r);
    this.spotChecks = new SpotCheckSystem(r);
    this.verification = new VerificationSystem(r, this.settlement, this.spotChecks);
    this.scheduling = new SchedulingSystem(r, this.verification, this.spotChecks);
    this.leases = new LeaseSystem(r, this.scheduling, this.verification, this.settlement);
    this.reports = new ReportSystem(r, this.verification, this.settlement);
    this.submission = new SubmissionSystem(r, this.settlement);
    this.accounts = new AccountSystem(r, () => this.scheduling.request());
    this.blobSystem = new BlobSystem(r);
  }

  /** Recovery at coordinator start: running leases get the restart grace (leases.ts). */
  recover(): Promise<void> {
    return this.leases.recover();
  }

  /** Starts the periodic tick, and wakes agents other coordinators gave work to. */
  start(): void {
    if (this.timer) return;
    this.unsubscribe = this.store.notifier.subscribe(
      (agentIds) => {
        for (const id of agentIds) this.scheduling.wake(id);
      },
      (err) =>
        this.log.warn({ err }, 'not hearing other coordinators; agents they give work to wait for their next claim'),
    );
    this.lastReapAt ??= this.now();
    this.timer = setInterval(() => void this.tick(), this.config.tickMs);
    this.timer.unref();
  }

  /** Stops the tick and wakes every long-polling claim so HTTP requests can finish. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.unsubscribe?.();
    this.unsubscribe = null;
    this.scheduling.wakeAll();
    await this.scheduling.idle();
  }

  /**
   * One round: reap leases and queues, schedule, settle what is left, delete expired blobs when due. Errors are logged, never thrown.
   * When the previous round that reaped started longer ago than core's stall threshold (the coordinator stalled:
   * event loop blocked, VM paused, store unreachable), running leases first get the restart grace
   * (LeaseSystem.graceAfterStall), so the stall is not charged to the agents as missed heartbeats.
   */
  async tick(): Promise<void> {
    const started = this.now();
    try {
      const stalledMs = coordinatorStallMs(this.lastReapAt, started, this.config);
      if (stalledMs > 0) await this.leases.graceAfterStall(stalledMs);
      await this.leases.reap();
      this.lastReapAt = Math.max(this.lastReapAt ?? started, started);
      await this.scheduling.schedule();
      await this.settlement.sweep();
      await this.blobSystem.sweepIfDue();
    } catch (err) {
      this.log.error({ err }, 'engine tick failed');
    }
  }

  /** Submits a parsed spec for a buyer and schedules (submission.ts for what it checks and throws). */
  async submitJob(buyerId: string, spec: JobSpec): Promise<{ jobId: string; tasks: number; escrow: number }> {
    const r = await this.submission.submit(buyerId, spec);
    this.scheduling.request();
    return r;
  }

  /** Cancels a job; false when it had already ended. */
  cancelJob(jobId: string): Promise<boolean> {
    return this.submission.cancel(jobId);
  }

  /** Registers (or refreshes) an agent and schedules work for it. */
  registerAgent(a: AgentRegistration): Promise<void> {
    return this.accounts.registerAgent(a);
  }

  /** Claims up to `max` executions for an agent, long-polling up to `waitMs` while the engine runs. */
  claim(agentId: string, max: number, waitMs: number): Promise<Assignment[]> {
    return this.leases.claim(agentId, max, waitMs, this.timer !== null);
  }

  /** Renews the agent's leases; returns executions it must stop. */
  heartbeat(
    agentId: string,
    held: Array<{ executionId: string; fencingToken: number }>,
    availability?: Availability,
  ): Promise<{ stop: string[]; leaseExpiresAt: number }> {
    return this.leases.heartbeat(agentId, held, availability);
  }

  /**
   * Records an agent's report, verifying and settling its task (reports.ts), then schedules — also after a report
   * refused for the provider's fault, whose execution was ended so that its task goes to another provider.
   */
  async report(agentId: string, executionId: string, r: ReportRequest): Promise<VerifyOutcome> {
    try {
      return await this.reports.report(agentId, executionId, r);
    } finally {
      this.scheduling.request();
    }
  }

  /** Verifies one task in its own transaction (decides it, or grades results reported after its decision). */
  async verifyTask(taskId: string): Promise<VerifyOutcome> {
    const fx = new Effects();
    const outcome = await this.store.transaction((tx) => this.verification.task(tx, taskId, this.now(), fx));
    fx.emit(this.events);
    return outcome;
  }

  /** Expires leases, times out queued tasks and re-verifies stuck ones (leases.ts). */
  reap(): Promise<void> {
    return this.leases.reap();
  }

  /** Runs a scheduling round and waits for it. */
  schedule(): Promise<void> {
    return this.scheduling.schedule();
  }

  /** Requests a scheduling round without waiting. */
  requestSchedule(): void {
    this.scheduling.request();
  }

  /** Settles whatever ended and is still unsettled. */
  settle(): Promise<void> {
    return this.settlement.sweep();
  }
}
