/**
 * Executor port: how the agent runs one execution. The Docker implementation is docker-executor.ts;
 * tests of the scheduler alone may use a fake. Implementations never throw for a job's own failure
 * (bad image, OOM, timeout, non-zero exit): they return it classified.
 */
import type { FailureReason } from '../core/index.js';
import type { Limits, Resources, Usage } from '../protocol/index.js';

export interface ExecutionRequest {
  executionId: string;
  /** Fencing token of the lease the execution runs under; written on the container so an orphan can be reported. */
  fencingToken: number;
  image: string;
  command: string[];
  /** Environment of the container's process (already includes DEQO_* variables). */
  env: Record<string, string>;
  resources: Resources;
  limits: Limits;
  /** Host directory mounted read-only at /inputs (may be empty). */
  hostInputsDir: string;
  /** Host directory mounted read-write at `outputDir`; the executor makes it writable for the container user. */
  hostOutputDir: string;
  /** Absolute path of the output directory inside the container. */
  outputDir: string;
  /** Host files the executor writes stdout and stderr to (capped at limits.*Bytes). */
  stdoutPath: string;
  stderrPath: string;
  /** Give the container a network (only when the job asks and the provider allows). */
  network: boolean;
  /** Aborting stops the container; the result is then `cancelled`. */
  signal?: AbortSignal;
  /**
   * Called with the container id once the container exists and before it starts, so the caller can record it
   * (a crash after this point leaves a container the caller knows about). A throw aborts the run (the
   * container is removed) and is rethrown.
   */
  onCreated?: (containerId: string) => Promise<void>;
  /**
   * Called with the outcome once the container ended and its logs are flushed, before the container is removed, so
   * the caller can record it (a crash after the removal then loses nothing). A throw is rethrown after removal.
   */
  onEnded?: (outcome: ExecutionOutcome) => Promise<void>;
}

/**
 * Failure reasons of an execution's outcome. `agent_restarted`: the agent cannot vouch for a run it reattached to;
 * `requirements_unavailable`: not from an executor, but from a script job's requirement check (script.ts).
 */
export type ExecutorFailureReason = Extract<
  FailureReason,
  | 'out_of_memory'
  | 'timeout'
  | 'image_not_found'
  | 'output_too_large'
  | 'outputs_unpackageable'
  | 'agent_error'
  | 'agent_restarted'
  | 'cancelled'
  | 'requirements_unavailable'
>;

/** How an execution ended. `exited`: the process exited by itself with `exitCode` (0 or not). */
export type ExecutionOutcome =
  | { kind: 'exited'; exitCode: number; usage: Usage; stdoutTruncated: boolean; stderrTruncated: boolean }
  | {
      kind: 'failed';
      reason: ExecutorFailureReason;
      message: string;
      usage: Usage;
      stdoutTruncated: boolean;
      stderrTruncated: boolean;
    };

/**
 * A container of this agent found on the engine. `executionId` and `fencingToken` come from its labels
 * (absent on containers an older agent or someone else created with only the agent label).
 */
export interface OwnContainer {
  containerId: string;
  executionId?: string;
  fencingToken?: number;
  /** Engine state: created, running, paused, restarting, removing, exited or dead. */
  state: string;
}

export interface Executor {
  /** Engine version string, e.g. "20.10.24"; throws ExecutorUnavailableError if no engine answers. */
  version(): Promise<string>;
  /** Runs one execution to its end and removes its container. Throws only for the agent's own faults (e.g. cannot write a log file). */
  run(req: ExecutionRequest): Promise<ExecutionOutcome>;
  /**
   * Takes over a container an earlier run of this agent created for `req` (after an agent restart): starts it if
   * it never started, else follows it (running or already exited), rewrites `req.stdoutPath`/`stderrPath` from
   * the engine's record of its output (capped like run), classifies how it ended like run, and removes it.
   * Throws only for the agent's own faults.
   */
  attach(containerId: string, req: ExecutionRequest): Promise<ExecutionOutcome>;
  /** Containers labelled with this agent (any state). Throws on engine errors. */
  containers(): Promise<OwnContainer[]>;
  /** Stops and removes a container; nothing when it is already gone. Throws on other engine errors. */
  remove(containerId: string): Promise<void>;
  /**
   * Cumulative CPU time used by the containers this executor has supervised since it was created, ms; never
   * decreases. Lets the owner-load sampler tell the owner's load from the jobs' (owner-load.ts).
   */
  jobCpuMs?(): number;
}

/** No container engine is reachable (Docker daemon down, socket missing or not permitted). */
export class ExecutorUnavailableError extends Error {
  override readonly name = 'ExecutorUnavailableError';
}
