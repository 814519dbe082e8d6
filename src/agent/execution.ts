/**
 * One execution's life inside the agent: record it, fetch its inputs, run (or, after a restart, reattach to)
 * its container, record the outcome, package and deliver the report, then forget it. Each step is written to
 * the state database before the step it protects (state.ts), so a crash anywhere loses nothing that recovery
 * (recovery.ts) cannot finish or honestly report as failed.
 */
import { chmod, mkdir } from 'node:fs/promises';
import type { Logger } from 'pino';
import { downloadBlob } from '../client/index.js';
import type { Assignment, ReportRequest } from '../protocol/index.js';
import type { ConnectionMonitor, Coordinators } from './connection.js';
import { LogTail } from './log-tail.js';
import type { BuildReport, Deliverer, ReportTarget } from './delivery.js';
import type { ExecutionOutcome, ExecutionRequest, Executor } from './executor.js';
import { placeInputs } from './inputs.js';
import type { RecoveryAction } from './recovery.js';
import { mountCappedOutputs } from './output-fs.js';
import { failureReport, packageResult, removeWorkDir, workDirs, type WorkDirs } from './report-body.js';
import { scriptOutcome, scriptRun, writeScript } from './script.js';
import type { AgentState, Phase } from './state.js';

/**
 * Why the agent stopped an execution it holds: the owner came back (reported `owner_returned`), the coordinator
 * said stop (not reported), no heartbeat succeeded for the grace period (dropped), or the agent is stopping
 * (container stopped; a queued report stays in the state database for the next start).
 */
export type StopReason =
  { kind: 'owner_returned'; why: string } | { kind: 'coordinator' } | { kind: 'grace' } | { kind: 'shutdown' };

/** An execution the agent holds, from claim (or recovery) until its report is settled. */
export interface Held {
  assignment: Assignment;
  /** `finished`: its container ended (its CPUs are free); the report may still be on its way. */
  phase: Phase;
  /** Aborting stops the container. */
  readonly run: AbortController;
  /** Aborting abandons the report delivery. */
  readonly delivery: AbortController;
  stop?: StopReason;
  /** When the agent took it, epoch ms (a recovered one: when the agent restarted). */
  readonly heldSince: number;
  /** Held by an earlier run of the agent (so its lease may have lapsed while the agent was down). */
  readonly recovered: boolean;
  /** Logger carrying executionId, jobId and taskIndex. */
  readonly log: Logger;
  /** Its outcome is in the state database. */
  outcomeRecorded?: boolean;
}

/** A new in-memory entry for an execution. */
export function newHeld(a: Assignment, log: Logger, opts: { recovered: boolean; phase: Phase; now: number }): Held {
  return {
    assignment: a,
    phase: opts.phase,
    run: new AbortController(),
    delivery: new AbortController(),
    heldSince: opts.now,
    recovered: opts.recovered,
    log: log.child({ executionId: a.executionId, jobId: a.jobId, taskIndex: a.taskIndex }),
  };
}

/** Stops a held execution's container. The first reason is kept, but grace and shutdown always abandon the delivery too. */
export function stopHeld(h: Held, reason: StopReason): void {
  if (reason.kind === 'grace' || reason.kind === 'shutdown') {
    h.stop = reason;
    h.delivery.abort();
  } else {
    h.stop ??= reason;
  }
  h.run.abort();
}

/** What the runner needs from the agent. */
export interface RunnerDeps {
  /** The coordinators: inputs, outputs, live output and reports go through the current one. */
  coordinators: Coordinators;
  executor: Executor;
  state: AgentState;
  deliverer: Deliverer;
  connection: () => ConnectionMonitor;
  dataDir: string;
  /** TEST ONLY: corrupt every result. */
  testCorruptOutputs: boolean;
  /** Called when an execution's container ended (its CPUs are free again). */
  onContainerEnded: () => void;
  /** This agent's id (for sending live output). */
  agentId: () => string;
}

/** Runs executions end to end; its methods never throw. */
export class ExecutionRunner {
  /** The warning that outputs are only polled was logged. */
  private warnedUncapped = false;

  constructor(private readonly d: RunnerDeps) {}

  /** A newly claimed execution: record, fetch inputs, run, report. */
  async runNew(h: Held): Promise<void> {
    const a = h.assignment;
    const dirs = workDirs(this.d.dataDir, a.executionId);
    try {
      this.write(h, (now) => this.d.state.record(a, now));
      try {
        await this.fetchInputs(a, dirs);
      } catch (err) {
        await this.settle(h, dirs, null, async () =>
          failureReport(a.fencingToken, 'input_unavailable', (err as Error).message),
        );
        return;
      }
      await this.capOutputs(h, dirs, true);
      const tail = new LogTail({ stdout: dirs.stdout, stderr: dirs.stderr }, (stream, offset, data) =>
        this.d.coordinators.current.sendLog(
          this.d.agentId(),
          a.executionId,
          { fencingToken: a.fencingToken, stream, offset, data },
          AbortSignal.timeout(10_000),
        ),
      );
      tail.start();
      let outcome: ExecutionOutcome;
      try {
        outcome = await this.d.executor.run(this.request(h, dirs));
      } finally {
        await tail.stop();
      }
      await this.ended(h, dirs, outcome);
    } catch (err) {
      await this.agentError(h, dirs, err);
    }
  }

  /** An execution granted while the owner is back: handed straight back as `owner_returned`. */
  async handBack(h: Held, why: string): Promise<void> {
    this.write(h, (now) => this.d.state.record(h.assignment, now));
    await this.settle(h, workDirs(this.d.dataDir, h.assignment.executionId), null, async () =>
      failureReport(h.assignment.fencingToken, 'owner_returned', `stopped by the provider's idle policy: ${why}`),
    );
  }

  /** Finishes an execution recorded by an earlier run of the agent (recovery.ts decided what to do). */
  async resume(h: Held, action: RecoveryAction): Promise<void> {
    const a = h.assignment;
    const dirs = workDirs(this.d.dataDir, a.executionId);
    try {
      switch (action.kind) {
        case 'resend':
          await this.settle(h, dirs, action.report, async () => action.report);
          return;
        case 'package':
          await this.capOutputs(h, dirs, false);
          await this.settle(h, dirs, null, (client) =>
            packageResult(client, a.fencingToken, action.outcome, dirs, this.d.testCorruptOutputs),
          );
          return;
        case 'gone':
          await this.settle(h, dirs, null, async () =>
            failureReport(a.fencingToken, 'agent_restarted', action.message),
          );
          return;
        case 'reattach':
          await this.capOutputs(h, dirs, false);
          if (action.record.containerId === null)
            this.write(h, (now) => this.d.state.containerCreated(a.executionId, action.container.containerId, now));
          await this.ended(h, dirs, await this.d.executor.attach(action.container.containerId, this.request(h, dirs)));
      }
    } catch (err) {
      await this.agentError(h, dirs, err);
    }
  }

  /** Reports an orphan container's execution (unknown to the state) as failed; nothing is recorded. */
  async reportOrphan(executionId: string, fencingToken: number, log: Logger, signal: AbortSignal): Promise<void> {
    const t: ReportTarget = { executionId, fencingToken, log, signal, leaseMayHaveLapsed: () => true };
    await this.d.deliverer.deliver(
      t,
      null,
      async () =>
        failureReport(
          fencingToken,
          'agent_restarted',
          "the agent restarted and found this execution's container without a record of it (its local state was lost); the container was stopped and removed",
        ),
      false,
    );
  }

  private request(h: Held, dirs: WorkDirs): ExecutionRequest {
    const a = h.assignment;
    const { command, env } = scriptRun(a);
    return {
      executionId: a.executionId,
      fencingToken: a.fencingToken,
      image: a.image,
      command,
      env,
      resources: a.resources,
      limits: a.limits,
      hostInputsDir: dirs.inputs,
      hostOutputDir: dirs.outputs,
      outputDir: a.outputDir,
      stdoutPath: dirs.stdout,
      stderrPath: dirs.stderr,
      network: a.network,
      signal: h.run.signal,
      onCreated: async (containerId) => {
        this.write(h, (now) => this.d.state.containerCreated(a.executionId, containerId, now));
      },
      onEnded: async (outcome) => {
        if (!h.run.signal.aborted) this.recordOutcome(h, await scriptOutcome(a, outcome, dirs.stderr));
      },
    };
  }

  /** Downloads the inputs into the work directory (once per blob, inputs.ts). Throws on any problem. */
  private async fetchInputs(a: Assignment, dirs: WorkDirs): Promise<void> {
    await mkdir(dirs.inputs, { recursive: true });
    await mkdir(dirs.outputs, { recursive: true });
    await placeInputs(a.inputs, dirs.inputs, async (blob, dest) => {
      await this.d.coordinators.call((client) => downloadBlob(client, blob, dest));
    });
    await writeScript(a, dirs.inputs);
    await chmod(dirs.inputs, 0o755);
  }

  /** Caps the output directory at the write (output-fs.ts); `create: false` only mounts an image left by an earlier run. */
  private async capOutputs(h: Held, dirs: WorkDirs, create: boolean): Promise<void> {
    const r = await mountCappedOutputs(dirs.outputs, h.assignment.limits.outputBytes, { create });
    if (!r.capped && create && !this.warnedUncapped) {
      this.warnedUncapped = true;
      h.log.warn({ why: r.why }, 'outputs are not capped at the write, only polled once a second');
    }
  }

  /** The container ended: report it (recording the outcome first), or drop it when the agent stopped it. */
  private async ended(h: Held, dirs: WorkDirs, raw: ExecutionOutcome): Promise<void> {
    const outcome = await scriptOutcome(h.assignment, raw, dirs.stderr);
    h.phase = 'finished';
    this.d.onContainerEnded();
    if (h.run.signal.aborted) {
      const s = h.stop;
      if (s?.kind === 'owner_returned') {
        await this.settle(h, dirs, null, async () =>
          failureReport(
            h.assignment.fencingToken,
            'owner_returned',
            `stopped by the provider's idle policy: ${s.why}`,
            outcome.usage,
          ),
        );
        return;
      }
      h.log.info({ stoppedBecause: s?.kind }, 'execution stopped');
      await this.forget(h, dirs);
      return;
    }
    this.recordOutcome(h, outcome); // normally done already, before the container was removed
    await this.settle(h, dirs, null, (client) =>
      packageResult(client, h.assignment.fencingToken, outcome, dirs, this.d.testCorruptOutputs),
    );
  }

  private async agentError(h: Held, dirs: WorkDirs, err: unknown): Promise<void> {
    h.log.error({ err }, 'execution failed inside the agent');
    h.phase = 'finished';
    this.d.onContainerEnded();
    await this.settle(h, dirs, null, async () =>
      failureReport(h.assignment.fencingToken, 'agent_error', `agent error: ${(err as Error).message}`),
    );
  }

  /** Delivers the report, then forgets the execution — unless the agent is stopping, when it stays queued for the next start. */
  private async settle(h: Held, dirs: WorkDirs, stored: ReportRequest | null, build: BuildReport): Promise<void> {
    h.phase = 'finished';
    const t: ReportTarget = {
      executionId: h.assignment.executionId,
      fencingToken: h.assignment.fencingToken,
      log: h.log,
      signal: h.delivery.signal,
      leaseMayHaveLapsed: () => h.recovered || this.d.connection().disconnectedSince(h.heldSince),
    };
    const result = await this.d.deliverer.deliver(t, stored, build, true);
    if (result === 'abandoned' && h.stop?.kind === 'shutdown') {
      h.log.info('agent stopping: the report stays queued in the state database and is sent at the next start');
      return;
    }
    await this.forget(h, dirs);
  }

  private async forget(h: Held, dirs: WorkDirs): Promise<void> {
    this.write(h, () => this.d.state.remove(h.assignment.executionId));
    await removeWorkDir(dirs).catch(() => undefined);
  }

  /** Records how the execution ended (once). */
  private recordOutcome(h: Held, outcome: ExecutionOutcome): void {
    if (h.outcomeRecorded) return;
    h.outcomeRecorded = true;
    this.write(h, (now) => this.d.state.finished(h.assignment.executionId, outcome, now));
  }

  /** A state write; a failure is logged (the execution goes on without crash safety), never thrown. */
  private write(h: Held, fn: (now: number) => void): void {
    try {
      fn(Date.now());
    } catch (err) {
      h.log.error({ err }, 'cannot write the agent state database');
    }
  }
}
