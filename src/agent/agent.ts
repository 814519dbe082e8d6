/**
 * The provider agent: registers with the coordinator (outbound connections only) with its offer, claims
 * executions under leases with long-polling, runs them (execution.ts), heartbeats its leases and its
 * availability, stops what the coordinator says to stop, and reports results. It claims only while available
 * (availability.ts: windows, idle policy); when the idle policy says the owner came back it stops its running
 * executions and reports them as `owner_returned`.
 *
 * Faults: it records what it holds in `<dataDir>/state.db` (state.ts) and, after a restart, reattaches to its
 * containers or reports what it cannot finish (recovery.ts). It may know several coordinators of one network
 * (they share a database): it talks to one at a time and moves on to the next when one is out of reach
 * (connection.ts `Coordinators`). When no coordinator answers at start it retries the registration with capped
 * backoff until one does (or it is stopped), then takes over what the previous run left. When heartbeats fail it
 * keeps its executions running and queues their reports for the grace period (connection.ts); past it, it stops
 * them and drops them. When the coordinator answers "unknown agent" (its database was reset) it registers again.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { ApiError, type DeqoClient } from '../client/index.js';
import { DEFAULT_AGENT_GRACE_MS, outputFsPlan, retryDelayMs, type RetryBackoff } from '../core/index.js';
import type { Assignment, Availability, Capacity, Offer, RegisterAgentResponse } from '../protocol/index.js';
import { AvailabilityMonitor, type AvailabilityEvaluation } from './availability.js';
import { ConnectionMonitor, Coordinators } from './connection.js';
import { Deliverer, isTransient } from './delivery.js';
import { ExecutionRunner, newHeld, stopHeld, type Held } from './execution.js';
import type { Executor } from './executor.js';
import { loadOrCreateIdentity, signRegistration, type AgentIdentity } from './identity.js';
import { CpuLoadSampler, type LoadSampler } from './owner-load.js';
import { AgentState } from './state.js';
import { takeOver } from './takeover.js';

/** A claim long-poll gets this much longer than the wait it asks for before it is abandoned, ms. */
const CLAIM_SLACK_MS = 10_000;
/** During an outage, a failed heartbeat is logged at most this often, ms. */
const FAILURE_LOG_EVERY_MS = 30_000;
/** Registration request timeout, ms. */
const REGISTER_TIMEOUT_MS = 30_000;
/** Registration retries while no coordinator answers: 1 s, doubling, at most 30 s apart (core's retryDelayMs). */
export const REGISTER_BACKOFF: Readonly<RetryBackoff> = Object.freeze({ baseMs: 1_000, maxMs: 30_000 });

/** Agent settings (parsed once from flags/config by the CLI). */
export interface AgentConfig {
  /** Folder for the identity key, the state database and per-execution work directories. */
  dataDir: string;
  name: string;
  /** What the agent publishes (prices, disk, labels, windows, idle policy). */
  offer: Offer;
  /** Executions keep running this long while no heartbeat succeeds, ms (default core's DEFAULT_AGENT_GRACE_MS). */
  gracePeriodMs?: number;
  /** TEST ONLY: corrupt every result (to prove verification outvotes a cheater). */
  testCorruptOutputs: boolean;
}

export class Agent {
  private identity!: AgentIdentity;
  private reg: RegisterAgentResponse | undefined;
  private readonly coordinators: Coordinators;
  /** start() while it runs (stop() waits for it). */
  private starting: Promise<void> | null = null;
  private state!: AgentState;
  private runner!: ExecutionRunner;
  private deliverer!: Deliverer;
  private connection!: ConnectionMonitor;
  private readonly held = new Map<string, Held>();
  /** Everything started in the background (executions, orphan reports), awaited by stop(). */
  private readonly tasks = new Set<Promise<void>>();
  private readonly shutdown = new AbortController();
  private stopped = false;
  private loop: Promise<void> | null = null;
  private heartbeatTimer: NodeJS.Timeout | null = null;
  private readonly claimAbort = new AbortController();
  /** Aborts the claim in flight when the agent moved on to another coordinator (it long-polls the old one). */
  private claimMoved: AbortController | null = null;
  private wakeLoop: (() => void) | null = null;
  private readonly monitor: AvailabilityMonitor;
  private availability: Availability = { state: 'available' };
  private windingDown = false;
  private ticking = false;
  /** When a failed heartbeat was last logged (failures are logged at most every FAILURE_LOG_EVERY_MS). */
  private failureLoggedAt = 0;

  /**
   * `clients`: one per coordinator URL of the network, in the order to try them (at least one; RangeError
   * otherwise). `ownerLoad` samples the owner's CPU load for the idle policy (default: /proc/stat minus this
   * agent's containers, owner-load.ts). Throws InvalidWindowError for a bad window in the offer.
   */
  constructor(
    clients: readonly DeqoClient[],
    private readonly executor: Executor,
    private readonly capacity: Capacity,
    private readonly config: AgentConfig,
    private readonly log: Logger,
    ownerLoad?: LoadSampler,
  ) {
    this.coordinators = new Coordinators(clients, log, () => this.claimMoved?.abort());
    this.monitor = new AvailabilityMonitor(
      config.offer,
      ownerLoad ?? new CpuLoadSampler({ jobCpuMs: () => executor.jobCpuMs?.() ?? 0 }),
    );
  }

  /** What the agent last published about taking work (valid after start()). */
  get currentAvailability(): Availability {
    return this.availability;
  }

  /** The agent id (its public key, base64url); valid after start(). */
  get id(): string {
    return this.identity.agentId;
  }

  /** Whether the agent registered and started working (false before start() resolved, or when stopped first). */
  get running(): boolean {
    return this.heartbeatTimer !== null;
  }

  /**
   * Loads the identity and state, registers, takes over what an earlier run left (reattach, resend, report
   * orphans), and starts working. While no coordinator answers (unreachable, 5xx) it retries the registration
   * with capped backoff (REGISTER_BACKOFF), logging each failure with the next attempt's delay, for as long as it
   * takes; stop() ends the wait, and start() then resolves without working (`running` false). Throws when a
   * coordinator refuses the registration (ApiError: bad key, invalid offer) or the engine cannot list containers.
   */
  start(): Promise<void> {
    this.starting ??= this.startUp();
    return this.starting;
  }

  private async startUp(): Promise<void> {
    this.identity = await loadOrCreateIdentity(this.config.dataDir);
    this.state = AgentState.open(this.config.dataDir);
    this.deliverer = new Deliverer(this.coordinators, this.state, () => this.identity.agentId);
    this.runner = new ExecutionRunner({
      coordinators: this.coordinators,
      executor: this.executor,
      state: this.state,
      deliverer: this.deliverer,
      connection: () => this.connection,
      dataDir: this.config.dataDir,
      testCorruptOutputs: this.config.testCorruptOutputs,
      onContainerEnded: () => this.wake(),
      agentId: () => this.identity.agentId,
    });
    try {
      this.apply(await this.monitor.evaluate(Date.now(), false));
      if (!(await this.registerUntilAnswered())) return; // stopped while waiting: stop() closes the state
      this.connection = new ConnectionMonitor(this.config.gracePeriodMs ?? DEFAULT_AGENT_GRACE_MS, Date.now());
      await takeOver({
        state: this.state,
        executor: this.executor,
        runner: this.runner,
        log: this.log,
        dataDir: this.config.dataDir,
        shutdown: this.shutdown.signal,
        hold: (h, work) => this.hold(h, work),
        track: (work) => this.track(work),
      });
    } catch (err) {
      // Refused or broken: stop what was taken over (reports stay queued) and close the state, then say why.
      this.halt();
      await this.windDown();
      throw err;
    }
    if (this.stopped) return; // stop() was called while taking over: it stops what was taken over
    this.heartbeatTimer = setInterval(() => {
      void this.heartbeat();
    }, this.reg!.heartbeatIntervalMs);
    if (this.held.size > 0) void this.heartbeat(); // renew recovered leases now, not one interval later
    this.loop = this.claimLoop();
  }

  /**
   * Stops claiming, tells the coordinator it is draining (best effort, 2 s at most), stops running containers
   * (their leases expire and the scheduler runs them elsewhere), leaves reports not yet delivered queued in the
   * state database for the next start, and waits for everything to wind down.
   */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.halt();
    // A start() waiting for a coordinator ends at once; one taking over finishes that first. A start() that
    // failed has wound down already.
    const started = await this.starting?.then(
      () => true,
      () => false,
    );
    if (!started) return;
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = null;
    if (this.reg) {
      this.apply(await this.monitor.evaluate(Date.now(), true));
      await Promise.race([
        this.coordinators.current
          .heartbeat(this.identity.agentId, this.leases(), this.availability)
          .catch(() => undefined),
        new Promise((r) => setTimeout(r, 2_000).unref()),
      ]);
    }
    await this.windDown();
  }

  /** Stops claiming, ends every wait for a coordinator and abandons report deliveries in progress. */
  private halt(): void {
    this.stopped = true;
    this.claimAbort.abort();
    this.shutdown.abort();
  }

  /** Stops held containers (queued reports stay in the state database), waits for all work, closes the state. */
  private async windDown(): Promise<void> {
    for (const h of this.held.values()) stopHeld(h, { kind: 'shutdown' });
    this.wake();
    await this.loop;
    await Promise.all([...this.tasks]);
    this.state?.close();
  }

  /** Registers with the first coordinator that answers (each tried once). Throws the last ApiError, or AbortError when stopped. */
  private async register(): Promise<void> {
    const { reg, via } = await this.coordinators.call(async (client) => {
      const timestamp = Date.now();
      const r = await client.registerAgent(
        {
          publicKey: this.identity.publicKey,
          name: this.config.name,
          timestamp,
          signature: signRegistration(this.identity, timestamp),
          capacity: this.capacity,
          offer: this.config.offer,
          availability: this.availability,
        },
        AbortSignal.any([this.shutdown.signal, AbortSignal.timeout(REGISTER_TIMEOUT_MS)]),
      );
      return { reg: r, via: client.baseUrl };
    });
    this.reg = reg;
    this.log.info(
      { agentId: reg.agentId, coordinator: via, capacity: this.capacity, availability: this.availability },
      'agent registered',
    );
  }

  /**
   * Registers, retrying while no coordinator answers (REGISTER_BACKOFF). Resolves true once registered, false
   * when stopped first; throws the ApiError of a coordinator that refused the registration.
   */
  private async registerUntilAnswered(): Promise<boolean> {
    for (let attempt = 1; !this.stopped; attempt++) {
      try {
        await this.register();
        return true;
      } catch (err) {
        if (this.stopped) break;
        if (!isTransient(err)) throw err;
        const delay = retryDelayMs(attempt, REGISTER_BACKOFF);
        this.log.warn(
          { err: (err as Error).message, coordinators: this.coordinators.urls, attempt, retryInMs: delay },
          `cannot register: no coordinator answers; next attempt in ${delay / 1000} s`,
        );
        await sleep(delay, undefined, { signal: this.shutdown.signal }).catch(() => undefined);
      }
    }
    return false;
  }

  private freeCpus(): number {
    let used = 0;
    for (const h of this.held.values()) if (h.phase !== 'finished') used += h.assignment.resources.cpus;
    return this.capacity.cpus - used;
  }

  /**
   * MiB of the offer's disk not promised to the executions held (their output filesystems, core/disk.ts; their files
   * stay until the report is settled). The coordinator places by it too, with the inputs (core/matching.ts); this is
   * the backstop.
   */
  private freeDiskMb(): number {
    let used = 0;
    for (const h of this.held.values()) used += outputFsPlan(h.assignment.limits.outputBytes).bytes / (1024 * 1024);
    return this.config.offer.diskMb - used;
  }

  private wake(): void {
    this.wakeLoop?.();
    this.wakeLoop = null;
  }

  private track(p: Promise<void>): void {
    this.tasks.add(p);
    void p.finally(() => this.tasks.delete(p));
  }

  private hold(h: Held, work: Promise<void>): void {
    this.held.set(h.assignment.executionId, h);
    this.track(
      work.finally(() => {
        this.held.delete(h.assignment.executionId);
        this.wake();
      }),
    );
  }

  private async claimLoop(): Promise<void> {
    let backoff = 500;
    while (!this.stopped) {
      if (this.freeCpus() <= 0 || this.freeDiskMb() <= 0 || this.availability.state !== 'available') {
        await new Promise<void>((r) => {
          this.wakeLoop = r;
        });
        continue;
      }
      const moved = new AbortController();
      this.claimMoved = moved;
      try {
        const waitMs = 20_000;
        const got = await this.coordinators.call((client) =>
          client.claim(
            this.identity.agentId,
            16,
            waitMs,
            AbortSignal.any([this.claimAbort.signal, moved.signal, AbortSignal.timeout(waitMs + CLAIM_SLACK_MS)]),
          ),
        );
        backoff = 500;
        for (const a of got) this.take(a);
      } catch (err) {
        if (this.stopped) break;
        if (moved.signal.aborted) continue; // long-polling a coordinator the agent left: claim from the new one
        this.log.warn({ err: (err as Error).message }, 'claim failed; retrying');
        await sleep(backoff, undefined, { signal: this.claimAbort.signal }).catch(() => undefined); // stop() ends it
        backoff = Math.min(backoff * 2, 10_000);
      }
    }
  }

  private take(a: Assignment): void {
    const h = newHeld(a, this.log, { recovered: false, phase: 'preparing', now: Date.now() });
    if (this.windingDown) {
      // Granted while the owner came back (the long poll raced the heartbeat): hand it straight back.
      this.hold(h, this.runner.handBack(h, this.availability.message ?? 'the owner is using the machine'));
      return;
    }
    h.log.info({ image: a.image }, 'execution started');
    this.hold(h, this.runner.runNew(h));
  }

  /** The leases to renew: every execution held, including those whose report is still on its way. */
  private leases(): Array<{ executionId: string; fencingToken: number }> {
    return [...this.held.values()].map((h) => ({
      executionId: h.assignment.executionId,
      fencingToken: h.assignment.fencingToken,
    }));
  }

  /** Takes an availability evaluation: logs a change, winds down when the owner came back, wakes the claim loop when available. */
  private apply(ev: AvailabilityEvaluation): void {
    const was = this.availability;
    this.availability = ev.availability;
    this.windingDown = ev.windDown;
    if (was.state !== ev.availability.state)
      this.log.info(
        { availability: ev.availability, ownerLoad: ev.ownerLoad },
        `availability: ${ev.availability.state}`,
      );
    if (ev.windDown) {
      const why = ev.availability.message ?? 'the owner is using the machine';
      for (const h of this.held.values()) {
        if (h.phase === 'finished' || h.stop) continue;
        h.log.info('owner came back: stopping execution');
        stopHeld(h, { kind: 'owner_returned', why });
      }
    }
    if (ev.availability.state === 'available' && was.state !== 'available') this.wake();
  }

  /**
   * Every heartbeat tick: re-evaluates availability (sampling the owner load), then renews leases and publishes
   * it. A success after failures sends the queued reports at once; "unknown agent" registers again; failures
   * for longer than the grace period stop and drop every held execution.
   */
  private async heartbeat(): Promise<void> {
    if (this.stopped || this.ticking) return; // a slow tick is not overlapped by the next one
    this.ticking = true;
    try {
      this.apply(await this.monitor.evaluate(Date.now(), false));
      const res = await this.coordinators.call((client) =>
        client.heartbeat(
          this.identity.agentId,
          this.leases(),
          this.availability,
          AbortSignal.timeout(this.heartbeatTimeoutMs()),
        ),
      );
      this.connected();
      for (const id of res.stop) {
        const h = this.held.get(id);
        if (!h || h.phase === 'finished' || h.stop) continue; // a queued report learns its fate when it is sent
        h.log.info('coordinator asked to stop execution');
        stopHeld(h, { kind: 'coordinator' });
      }
    } catch (err) {
      if (err instanceof ApiError && err.status === 404 && !this.stopped) await this.reregister();
      else this.disconnected(err);
    } finally {
      this.ticking = false;
    }
  }

  /**
   * How long one heartbeat request may take, ms: two intervals with a single coordinator; one with several, so a
   * coordinator that hangs (paused, overloaded) leaves time to renew through the next before the leases end.
   */
  private heartbeatTimeoutMs(): number {
    const every = this.reg!.heartbeatIntervalMs;
    return Math.max(this.coordinators.clients.length > 1 ? every : 2 * every, 1_000);
  }

  private connected(): void {
    const outageMs = this.connection.succeeded(Date.now());
    if (outageMs === undefined) return;
    const queued = [...this.held.values()].filter((h) => h.phase === 'finished').length;
    this.log.info({ outageMs, queuedReports: queued }, 'coordinator reachable again; sending queued reports');
    this.deliverer.wakeAll();
  }

  private async reregister(): Promise<void> {
    this.log.warn('the coordinator does not know this agent (was its database reset?): registering again');
    try {
      await this.register();
      this.connected();
    } catch (err) {
      this.disconnected(err);
    }
  }

  private disconnected(err: unknown): void {
    const now = Date.now();
    const f = this.connection.failed(now);
    const graceS = Math.round(this.connection.gracePeriodMs / 1000);
    const fields = {
      err: (err as Error).message,
      sinceLastHeartbeatMs: f.sinceOkMs,
      gracePeriodS: graceS,
      held: this.held.size,
    };
    if (f.first || now - this.failureLoggedAt >= FAILURE_LOG_EVERY_MS) {
      this.failureLoggedAt = now;
      this.log.warn(
        fields,
        f.first
          ? 'heartbeat failed: keeping executions running and queueing their reports during the grace period'
          : 'heartbeat still failing',
      );
    }
    if (!f.graceExceeded) return;
    for (const h of this.held.values()) {
      if (h.stop?.kind === 'grace') continue;
      h.log.error(
        { sinceLastHeartbeatMs: f.sinceOkMs, gracePeriodS: graceS },
        `no heartbeat reached the coordinator for longer than the grace period (${graceS} s): it has certainly given this lease away; ` +
          'stopping the execution and dropping its result',
      );
      stopHeld(h, { kind: 'grace' });
    }
  }
}
