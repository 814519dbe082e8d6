/**
 * Executor port: how the agent runs one execution. The Docker implementation is docker-executor.ts;
 * tests of the scheduler alone may use a fake. Implementations never throw for a job's own failure
 * (bad image, OOM, timeout, non-zero exit): they return it classified.
 */
import type { FailureReason, Limits, Resources, Usage } from '../protocol/index.js';

export interface ExecutionRequest {
  executionId: string;
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
}

/** How an execution ended. `exited`: the process exited by itself with `exitCode` (0 or not). */
export type ExecutionOutcome =
  | { kind: 'exited'; exitCode: number; usage: Usage; stdoutTruncated: boolean; stderrTruncated: boolean }
  | { kind: 'failed'; reason: Extract<FailureReason, 'out_of_memory' | 'timeout' | 'image_not_found' | 'output_too_large' | 'agent_error' | 'cancelled'>;
      message: string; usage: Usage; stdoutTruncated: boolean; stderrTruncated: boolean };

export interface Executor {
  /** Engine version string, e.g. "20.10.24"; throws ExecutorUnavailableError if no engine answers. */
  version(): Promise<string>;
  /** Runs one execution to its end. Throws only for the agent's own faults (e.g. cannot write a log file). */
  run(req: ExecutionRequest): Promise<ExecutionOutcome>;
  /** Stops and removes containers left by an earlier run of this agent (label deqo.agent=agentId). Returns their execution ids. */
  removeOrphans(agentId: string): Promise<string[]>;
  /**
   * Cumulative CPU time used by the containers this executor has run since it was created, ms; never
   * decreases. Lets the owner-load sampler tell the owner's load from the jobs' (owner-load.ts).
   */
  jobCpuMs?(): number;
}

/** No container engine is reachable (Docker daemon down, socket missing or not permitted). */
export class ExecutorUnavailableError extends Error {
  override readonly name = 'ExecutorUnavailableError';
}
