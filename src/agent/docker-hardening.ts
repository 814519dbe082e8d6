/**
 * Pure helpers of the Docker executor: the hardened container-create options (CIS Docker Benchmark
 * v1.6 §5, "Container Runtime") and the classification of how a container ended. No I/O here, so
 * both are unit-tested without a Docker engine.
 */
import type { ContainerCreateOptions } from 'dockerode';
import { INPUTS_DIR, outputDirProblem, TMP_DIR } from '../protocol/index.js';
import type { ExecutionOutcome, ExecutionRequest } from './executor.js';

/** uid:gid every job runs as: `nobody:nogroup`, never root (CIS Docker §4.1 / §5.x least privilege). */
export const CONTAINER_USER = '65534:65534';
/** Numeric uid of {@link CONTAINER_USER}, used to chown the host output directory. */
export const CONTAINER_UID = 65534;
/** Numeric gid of {@link CONTAINER_USER}. */
export const CONTAINER_GID = 65534;
/**
 * Options of the writable, size-capped `/tmp` (64 MiB, sticky, no setuid binaries, no device files;
 * Docker adds `noexec`). Owned by the container user because runc re-applies the mode of the image's
 * own /tmp after mounting (an image whose /tmp is 0755 would otherwise leave it unwritable).
 */
export const TMPFS_OPTIONS = 'rw,nosuid,nodev,size=64m,mode=1777,uid=65534,gid=65534';
/** Label naming the agent that owns a container (used to find orphans after a crash). */
export const LABEL_AGENT = 'deqo.agent';
/** Label naming the execution a container runs. */
export const LABEL_EXECUTION = 'deqo.execution';
/** Label holding the fencing token of the lease the container runs under (to report an orphan after a restart). */
export const LABEL_FENCING_TOKEN = 'deqo.fencing-token';
/** Paths that must never be bind-mounted into a job container (CIS Docker §5.31). */
const FORBIDDEN_HOST_PATHS = ['/var/run/docker.sock', '/run/docker.sock'];

/** Container name of an execution: `deqo-<executionId>`. */
export function containerName(executionId: string): string {
  return `deqo-${executionId}`;
}

/**
 * Size in bytes at which the engine's json-file log of a container is cut (max-file 1): eight times the
 * stdout + stderr caps (JSON framing costs about 60 bytes a line), at least 16 MiB, at most 1 GiB. The log is
 * only read when the agent reattaches after a restart; the cap bounds the provider's disk for chatty jobs.
 */
export function logMaxBytes(limits: { stdoutBytes: number; stderrBytes: number }): number {
  return Math.min(Math.max(8 * (limits.stdoutBytes + limits.stderrBytes), 16 * 1024 * 1024), 1024 ** 3);
}

/** Bytes in `mb` MiB. */
export function mibToBytes(mb: number): number {
  return Math.round(mb * 1024 * 1024);
}

/**
 * Builds the `docker create` body of one execution, hardened along CIS Docker Benchmark §5:
 * - §5.3 all capabilities dropped (`CapDrop: ['ALL']`); §5.4 not privileged;
 * - §5.10 memory limit (MiB → bytes) with `MemorySwap` equal to it, i.e. no swap;
 * - §5.11 CPU limit as `NanoCpus` (cores × 1e9); §5.28 `PidsLimit` against fork bombs;
 * - §5.12 read-only root filesystem, writable only `/tmp` (tmpfs, 64 MiB) and the output bind;
 * - §5.9/§5.16/§5.17/§5.21/§5.31 no host network/PID/IPC/UTS/user namespace, never the Docker socket;
 * - §5.25 `no-new-privileges` (setuid binaries cannot gain privileges); default seccomp profile kept (§5.22);
 * - network `none` unless the request asks for one: then `jobNetwork` (job-network.ts: the fenced `deqo-jobs`, or
 *   Docker's default `bridge` when the provider allows private networks), never `host`;
 * - runs as uid/gid 65534 with `HOME=/tmp` and working directory `/tmp`;
 * - stdout/stderr are read live through attach and capped by the executor; the engine also keeps a json-file
 *   log cut at {@link logMaxBytes} (one file), read only to reattach after an agent restart, so a chatty job
 *   cannot fill the provider's disk;
 * - labels name the agent, the execution and its lease's fencing token (orphans are found and reported by them).
 * `AutoRemove` is false: the executor inspects the exited container (OOMKilled) and then removes it.
 * Throws Error if a bind source is the Docker socket, a request path is not absolute, or the output directory is not
 * one the job spec allows (protocol outputDirProblem: reserved or not normalized).
 */
export function buildCreateOptions(
  req: ExecutionRequest,
  agentId: string,
  jobNetwork = 'bridge',
): ContainerCreateOptions {
  if (jobNetwork === 'host') throw new Error('refusing to run a job on the host network');
  for (const [what, p] of [
    ['hostInputsDir', req.hostInputsDir],
    ['hostOutputDir', req.hostOutputDir],
    ['outputDir', req.outputDir],
  ] as const) {
    if (!p.startsWith('/')) throw new Error(`${what} must be an absolute path, got ${JSON.stringify(p)}`);
    if (p.includes(':') || p.includes(','))
      throw new Error(`${what} must not contain ':' or ',' (got ${JSON.stringify(p)})`);
  }
  for (const p of [req.hostInputsDir, req.hostOutputDir]) {
    const norm = p.replace(/\/+$/, '');
    if (FORBIDDEN_HOST_PATHS.includes(norm) || norm === '' || norm === '/var/run' || norm === '/run') {
      throw new Error(`refusing to mount ${p} into a job container (Docker socket / host root)`);
    }
  }
  const problem = outputDirProblem(req.outputDir);
  if (problem) throw new Error(`outputDir ${req.outputDir}: ${problem}`);
  const memory = mibToBytes(req.resources.memoryMb);
  const env = { ...req.env, HOME: TMP_DIR };
  return {
    name: containerName(req.executionId),
    Image: req.image,
    Cmd: req.command,
    Entrypoint: [],
    Env: Object.entries(env).map(([k, v]) => `${k}=${v}`),
    User: CONTAINER_USER,
    WorkingDir: TMP_DIR,
    Labels: {
      [LABEL_AGENT]: agentId,
      [LABEL_EXECUTION]: req.executionId,
      [LABEL_FENCING_TOKEN]: String(req.fencingToken),
    },
    Tty: false,
    OpenStdin: false,
    AttachStdin: false,
    AttachStdout: true,
    AttachStderr: true,
    HostConfig: {
      NetworkMode: req.network ? jobNetwork : 'none',
      ReadonlyRootfs: true,
      Tmpfs: { [TMP_DIR]: TMPFS_OPTIONS },
      Binds: [`${req.hostInputsDir}:${INPUTS_DIR}:ro`, `${req.hostOutputDir}:${req.outputDir}:rw`],
      CapDrop: ['ALL'],
      CapAdd: [],
      SecurityOpt: ['no-new-privileges'],
      Privileged: false,
      PidsLimit: req.resources.pids,
      Memory: memory,
      MemorySwap: memory,
      NanoCpus: Math.round(req.resources.cpus * 1e9),
      IpcMode: 'private',
      PidMode: '',
      UTSMode: '',
      UsernsMode: '',
      AutoRemove: false,
      RestartPolicy: { Name: 'no' },
      LogConfig: { Type: 'json-file', Config: { 'max-size': String(logMaxBytes(req.limits)), 'max-file': '1' } },
    },
  };
}

/** Why the executor itself stopped a container (first cause wins); undefined when it exited by itself. */
export type KillCause = 'timeout' | 'output_too_large' | 'cancelled';

/** Facts gathered about a finished container, input of {@link classifyExit}. */
export interface ExitFacts {
  /** Exit code from wait/inspect. */
  exitCode: number;
  /** Inspect's State.OOMKilled (cgroup OOM event seen by the engine). */
  oomKilled: boolean;
  /** Set when the executor killed the container. */
  killedBy?: KillCause | undefined;
  /** Memory limit in MiB (for the message). */
  memoryMb: number;
  /** Wall-clock limit in seconds (for the message). */
  timeoutSeconds: number;
  /** Output cap in bytes and the last measured size of the output directory, bytes. */
  outputBytes: number;
  outputSize: number;
  /** The first output entry beyond what a report carries (results.ts outputEntryProblem), when one was seen. */
  outputBeyond?: string | null;
}

type Classified =
  | { kind: 'exited'; exitCode: number }
  | { kind: 'failed'; reason: Extract<ExecutionOutcome, { kind: 'failed' }>['reason']; message: string };

/**
 * Classifies a finished container. Precedence: our own kill cause (timeout, output_too_large,
 * cancelled), then out-of-memory (OOMKilled, or exit code 137 = SIGKILL that we did not send),
 * then an output directory found beyond what a report carries or over the cap after exit, else a normal exit.
 */
export function classifyExit(f: ExitFacts): Classified {
  if (f.killedBy === 'timeout') {
    return {
      kind: 'failed',
      reason: 'timeout',
      message: `execution exceeded its wall-clock limit of ${f.timeoutSeconds} s and was killed`,
    };
  }
  if (f.killedBy === 'output_too_large' && f.outputBeyond) {
    return { kind: 'failed', reason: 'outputs_unpackageable', message: `${f.outputBeyond}; the execution was killed` };
  }
  if (f.killedBy === 'output_too_large') {
    return {
      kind: 'failed',
      reason: 'output_too_large',
      message: `output directory grew beyond its limit of ${f.outputBytes} bytes (at least ${f.outputSize} bytes) and the execution was killed`,
    };
  }
  if (f.killedBy === 'cancelled') {
    return { kind: 'failed', reason: 'cancelled', message: 'execution was cancelled and its container killed' };
  }
  if (f.oomKilled || f.exitCode === 137) {
    return {
      kind: 'failed',
      reason: 'out_of_memory',
      message: `execution ran out of memory: it exceeded its limit of ${f.memoryMb} MiB and was killed by the kernel (exit code ${f.exitCode})`,
    };
  }
  if (f.outputBeyond) return { kind: 'failed', reason: 'outputs_unpackageable', message: f.outputBeyond };
  if (f.outputSize > f.outputBytes) {
    return {
      kind: 'failed',
      reason: 'output_too_large',
      message: `output directory is ${f.outputSize} bytes, over its limit of ${f.outputBytes} bytes`,
    };
  }
  return { kind: 'exited', exitCode: f.exitCode };
}

/**
 * Exit code `docker run` would give when the engine cannot start the command (a job fault, not the
 * provider's): 127 when the executable is not found, 126 when it cannot be executed; undefined for
 * any other start error (which is then an agent_error).
 */
export function startFailureExitCode(engineMessage: string): 126 | 127 | undefined {
  if (/executable file not found|no such file or directory/i.test(engineMessage)) return 127;
  if (/permission denied|exec format error/i.test(engineMessage)) return 126;
  return undefined;
}

/**
 * Parses one line of the `docker stats` JSON stream: cumulative CPU time in nanoseconds
 * (cpu_stats.cpu_usage.total_usage) and memory in bytes (max of memory_stats.max_usage, which
 * cgroup v1 reports, and memory_stats.usage). Undefined for blank or malformed lines. Samples of a
 * stopped container are all zero, so callers keep maxima.
 */
export function parseStatsLine(line: string): { cpuNs: number; memoryBytes: number } | undefined {
  if (line.trim() === '') return undefined;
  try {
    const j = JSON.parse(line) as {
      cpu_stats?: { cpu_usage?: { total_usage?: unknown } };
      memory_stats?: { usage?: unknown; max_usage?: unknown };
    };
    const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) && v > 0 ? v : 0);
    return {
      cpuNs: num(j.cpu_stats?.cpu_usage?.total_usage),
      memoryBytes: Math.max(num(j.memory_stats?.max_usage), num(j.memory_stats?.usage)),
    };
  } catch {
    return undefined;
  }
}
