/**
 * The provider agent: registers with the coordinator (outbound connections only) with its offer, claims
 * executions under leases with long-polling, runs them through the executor, heartbeats its leases and its
 * availability, stops what the coordinator says to stop, and reports results (uploading outputs, stdout and
 * stderr as blobs). It claims only while available (availability.ts: windows, idle policy); when the idle
 * policy says the owner came back it stops its running executions and reports them as `owner_returned`.
 */
import { access, chmod, mkdir, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Logger } from 'pino';
import { ApiError, type DeqoClient } from '../client/index.js';
import type { Assignment, Availability, Capacity, Offer, RegisterAgentResponse, ReportRequest } from '../protocol/index.js';
import { AvailabilityMonitor, type AvailabilityEvaluation } from './availability.js';
import type { ExecutionOutcome, Executor } from './executor.js';
import { loadOrCreateIdentity, signRegistration, type AgentIdentity } from './identity.js';
import { CpuLoadSampler, type LoadSampler } from './owner-load.js';
import { buildManifest, corruptOutputs, resultHash, sha256File, tarOutputs } from './results.js';

/** Agent settings (parsed once from flags/config by the CLI). */
export interface AgentConfig {
  /** Folder for the identity key and per-execution work directories. */
  dataDir: string;
  name: string;
  /** What the agent publishes (prices, disk, labels, windows, idle policy). */
  offer: Offer;
  /** TEST ONLY: corrupt every result (to prove verification outvotes a cheater). */
  testCorruptOutputs: boolean;
}

/** `ownerReturned`: why the idle policy stopped it (then it is reported as owner_returned). */
interface Running { assignment: Assignment; abort: AbortController; ownerReturned?: string }

export class Agent {
  private identity!: AgentIdentity;
  private reg!: RegisterAgentResponse;
  private readonly running = new Map<string, Running>();
  private stopped = false;
  private loop: Promise<void> | null = null;
  private heartbeatTimer: NodeJS.Timeout | null = null;
  private readonly claimAbort = new AbortController();
  private wakeLoop: (() => void) | null = null;
  private readonly monitor: AvailabilityMonitor;
  private availability: Availability = { state: 'available' };
  private windingDown = false;
  private ticking = false;

  /**
   * `ownerLoad` samples the owner's CPU load for the idle policy (default: /proc/stat minus this agent's
   * containers, owner-load.ts). Throws InvalidWindowError for a bad window in the offer.
   */
  constructor(private readonly client: DeqoClient, private readonly executor: Executor, private readonly capacity: Capacity,
    private readonly config: AgentConfig, private readonly log: Logger, ownerLoad?: LoadSampler) {
    this.monitor = new AvailabilityMonitor(config.offer, ownerLoad ?? new CpuLoadSampler({ jobCpuMs: () => executor.jobCpuMs?.() ?? 0 }));
  }

  /** What the agent last published about taking work (valid after start()). */
  get currentAvailability(): Availability { return this.availability; }

  /** The agent id (its public key, base64url); valid after start(). */
  get id(): string { return this.identity.agentId; }

  /** Loads the identity, removes containers orphaned by an earlier run, registers, and starts working. */
  async start(): Promise<void> {
    this.identity = await loadOrCreateIdentity(this.config.dataDir);
    const orphans = await this.executor.removeOrphans(this.identity.agentId);
    if (orphans.length > 0) this.log.warn({ orphans }, 'removed containers left by an earlier run');
    await rm(join(this.config.dataDir, 'work'), { recursive: true, force: true });
    this.apply(await this.monitor.evaluate(Date.now(), false));
    const timestamp = Date.now();
    this.reg = await this.client.registerAgent({ publicKey: this.identity.publicKey, name: this.config.name, timestamp,
      signature: signRegistration(this.identity, timestamp), capacity: this.capacity, offer: this.config.offer, availability: this.availability });
    this.log.info({ agentId: this.reg.agentId, capacity: this.capacity, availability: this.availability }, 'agent registered');
    this.heartbeatTimer = setInterval(() => { void this.heartbeat(); }, this.reg.heartbeatIntervalMs);
    this.loop = this.claimLoop();
  }

  /**
   * Stops claiming, tells the coordinator it is draining (best effort, 2 s at most), stops running containers
   * (their leases expire and the scheduler runs them elsewhere), and waits for the loop to end.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    this.claimAbort.abort();
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    if (this.reg) {
      this.apply(await this.monitor.evaluate(Date.now(), true));
      await Promise.race([this.client.heartbeat(this.reg.agentId, this.held(), this.availability).catch(() => undefined),
        new Promise((r) => setTimeout(r, 2_000).unref())]);
    }
    for (const r of this.running.values()) r.abort.abort();
    this.wakeLoop?.();
    await this.loop;
  }

  private freeCpus(): number {
    let used = 0;
    for (const r of this.running.values()) used += r.assignment.resources.cpus;
    return this.capacity.cpus - used;
  }

  private async claimLoop(): Promise<void> {
    let backoff = 500;
    while (!this.stopped) {
      if (this.freeCpus() <= 0 || this.availability.state !== 'available') { await new Promise<void>((r) => { this.wakeLoop = r; }); continue; }
      try {
        const got = await this.client.claim(this.reg.agentId, 16, 20_000, this.claimAbort.signal);
        backoff = 500;
        for (const a of got) {
          // Granted while the owner came back (the long poll raced the heartbeat): hand it straight back.
          if (this.windingDown) void this.report(a, ownerReturned(a, this.availability.message ?? 'the owner is using the machine'));
          else this.launch(a);
        }
      } catch (err) {
        if (this.stopped) break;
        this.log.warn({ err: (err as Error).message }, 'claim failed; retrying');
        await new Promise((r) => setTimeout(r, backoff));
        backoff = Math.min(backoff * 2, 10_000);
      }
    }
  }

  private launch(a: Assignment): void {
    const abort = new AbortController();
    const entry: Running = { assignment: a, abort };
    this.running.set(a.executionId, entry);
    this.log.info({ executionId: a.executionId, jobId: a.jobId, taskIndex: a.taskIndex, image: a.image }, 'execution started');
    void this.execute(a, abort.signal, () => entry.ownerReturned).finally(() => {
      this.running.delete(a.executionId);
      this.wakeLoop?.();
      this.wakeLoop = null;
    });
  }

  private held(): Array<{ executionId: string; fencingToken: number }> {
    return [...this.running.values()].map((r) => ({ executionId: r.assignment.executionId, fencingToken: r.assignment.fencingToken }));
  }

  /** Takes an availability evaluation: logs a change, winds down when the owner came back, wakes the claim loop when available. */
  private apply(ev: AvailabilityEvaluation): void {
    const was = this.availability;
    this.availability = ev.availability;
    this.windingDown = ev.windDown;
    if (was.state !== ev.availability.state) this.log.info({ availability: ev.availability, ownerLoad: ev.ownerLoad }, `availability: ${ev.availability.state}`);
    if (ev.windDown) {
      for (const r of this.running.values()) {
        if (r.ownerReturned !== undefined) continue;
        r.ownerReturned = ev.availability.message ?? 'the owner is using the machine';
        this.log.info({ executionId: r.assignment.executionId, jobId: r.assignment.jobId }, 'owner came back: stopping execution');
        r.abort.abort();
      }
    }
    if (ev.availability.state === 'available' && was.state !== 'available') { this.wakeLoop?.(); this.wakeLoop = null; }
  }

  /** Every heartbeat tick: re-evaluates availability (sampling the owner load), then renews leases and publishes it. */
  private async heartbeat(): Promise<void> {
    if (this.stopped || this.ticking) return; // a slow tick is not overlapped by the next one
    this.ticking = true;
    try {
      this.apply(await this.monitor.evaluate(Date.now(), false));
      const res = await this.client.heartbeat(this.reg.agentId, this.held(), this.availability);
      for (const id of res.stop) {
        const r = this.running.get(id);
        if (r) { this.log.info({ executionId: id, jobId: r.assignment.jobId }, 'coordinator asked to stop execution'); r.abort.abort(); }
      }
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'heartbeat failed');
    } finally {
      this.ticking = false;
    }
  }

  /** Runs one execution end to end and reports it. Never throws. */
  private async execute(a: Assignment, signal: AbortSignal, stoppedBecause: () => string | undefined): Promise<void> {
    const work = join(this.config.dataDir, 'work', a.executionId);
    const dirs = { inputs: join(work, 'inputs'), outputs: join(work, 'outputs'), stdout: join(work, 'stdout'), stderr: join(work, 'stderr') };
    try {
      await mkdir(dirs.inputs, { recursive: true });
      await mkdir(dirs.outputs, { recursive: true });
      try {
        for (const input of a.inputs) {
          const dest = join(dirs.inputs, input.path);
          await mkdir(dirname(dest), { recursive: true });
          await this.client.downloadBlob(input.blob, dest);
          if ((await sha256File(dest)) !== input.blob) throw new Error(`input ${input.path} does not match its SHA-256`);
          await chmod(dest, 0o644);
        }
        await chmod(dirs.inputs, 0o755);
      } catch (err) {
        await this.report(a, { outcome: 'failed', fencingToken: a.fencingToken, reason: 'input_unavailable', message: (err as Error).message });
        return;
      }
      const outcome = await this.executor.run({ executionId: a.executionId, image: a.image, command: a.command, env: a.env,
        resources: a.resources, limits: a.limits, hostInputsDir: dirs.inputs, hostOutputDir: dirs.outputs, outputDir: a.outputDir,
        stdoutPath: dirs.stdout, stderrPath: dirs.stderr, network: a.network, signal });
      if (signal.aborted) {
        const why = stoppedBecause();
        if (why !== undefined) await this.report(a, { ...ownerReturned(a, why), usage: outcome.usage });
        else this.log.info({ executionId: a.executionId, jobId: a.jobId }, 'execution stopped');
        return;
      }
      await this.report(a, await this.package(a, outcome, dirs, work));
    } catch (err) {
      this.log.error({ err, executionId: a.executionId, jobId: a.jobId }, 'execution failed inside the agent');
      await this.report(a, { outcome: 'failed', fencingToken: a.fencingToken, reason: 'agent_error', message: `agent error: ${(err as Error).message}` });
    } finally {
      await rm(work, { recursive: true, force: true }).catch(() => undefined);
    }
  }

  private async package(a: Assignment, outcome: ExecutionOutcome, dirs: Record<'outputs' | 'stdout' | 'stderr', string>, work: string): Promise<ReportRequest> {
    if (outcome.kind === 'failed') {
      // Logs exist only when a container was created (not for an unknown image, say).
      const stdoutBlob = await this.uploadIfPresent(dirs.stdout);
      const stderrBlob = await this.uploadIfPresent(dirs.stderr);
      return { outcome: 'failed', fencingToken: a.fencingToken, reason: outcome.reason, message: outcome.message, stdoutBlob, stderrBlob, usage: outcome.usage };
    }
    const stdoutBlob = (await this.client.uploadFile(dirs.stdout)).sha256;
    const stderrBlob = (await this.client.uploadFile(dirs.stderr)).sha256;
    if (this.config.testCorruptOutputs) await corruptOutputs(dirs.outputs);
    const manifest = await buildManifest(dirs.outputs, outcome.exitCode, dirs.stdout);
    const tarball = join(work, 'outputs.tar.gz');
    await tarOutputs(dirs.outputs, tarball);
    const outputsBlob = (await this.client.uploadFile(tarball)).sha256;
    return { outcome: 'completed', fencingToken: a.fencingToken, manifest, resultHash: resultHash(manifest), outputsBlob, stdoutBlob, stderrBlob, usage: outcome.usage };
  }

  private async uploadIfPresent(path: string): Promise<string | undefined> {
    try { await access(path); } catch { return undefined; }
    return (await this.client.uploadFile(path)).sha256;
  }

  /** Sends a report, retrying while the coordinator is unreachable; a stale lease is logged and dropped. */
  private async report(a: Assignment, body: ReportRequest): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await this.client.report(this.reg.agentId, a.executionId, body);
        this.log.info({ executionId: a.executionId, jobId: a.jobId, outcome: body.outcome, reason: body.outcome === 'failed' ? body.reason : undefined }, 'execution reported');
        return;
      } catch (err) {
        const retryable = err instanceof ApiError && err.retryable && attempt < 8 && !this.stopped;
        if (!retryable) { this.log.warn({ executionId: a.executionId, jobId: a.jobId, err: (err as Error).message }, 'report refused'); return; }
        await new Promise((r) => setTimeout(r, Math.min(500 * 2 ** attempt, 15_000)));
      }
    }
  }
}

/** The report of an execution the idle policy stopped because the owner came back (provider-side, not charged). */
function ownerReturned(a: Assignment, why: string): Extract<ReportRequest, { outcome: 'failed' }> {
  return { outcome: 'failed', fencingToken: a.fencingToken, reason: 'owner_returned',
    message: `stopped by the provider's idle policy: ${why}`.slice(0, 4096) };
}
