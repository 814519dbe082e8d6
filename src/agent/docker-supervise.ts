/**
 * Watching one container to its end, shared by the Docker executor's run path (start a fresh container,
 * stdout/stderr live through attach) and its reattach path (follow a container an earlier agent run started,
 * stdout/stderr replayed from the engine's json-file log). Enforces the wall-clock and output limits and
 * classifies how the container ended (docker-hardening.ts classifyExit).
 */
import type { Readable } from 'node:stream';
import type Docker from 'dockerode';
import type { Usage } from '../protocol/index.js';
import { classifyExit, containerName, startFailureExitCode, type KillCause } from './docker-hardening.js';
import { dirSize, messageOf, StatsSampler, statusOf, type CpuAccount, type LogSinks } from './docker-streams.js';
import type { ExecutionOutcome, ExecutionRequest } from './executor.js';

/** Interval between two measurements of the output directory, milliseconds. */
const OUTPUT_POLL_MS = 1_000;
/** How long to wait for the live attach stream to drain after the container exited, milliseconds. */
const ATTACH_DRAIN_MS = 5_000;
/** How long to wait for a replayed log (up to logMaxBytes of JSON) to be read after the container exited, milliseconds. */
const REPLAY_DRAIN_MS = 60_000;

type Failed = Extract<ExecutionOutcome, { kind: 'failed' }>;
/** An outcome before the truncation flags of the logs are known. */
export type Bare =
  Omit<Failed, 'stdoutTruncated' | 'stderrTruncated'> | { kind: 'exited'; exitCode: number; usage: Usage };

/**
 * How supervision begins: `start` a created container with stdout/stderr attached live, or `follow` one that
 * already started at `startedAtMs` (epoch ms), replaying its output from the engine's log.
 */
export type Begin = { mode: 'start' } | { mode: 'follow'; startedAtMs: number };

/** What supervision needs from the executor. */
export interface SuperviseContext {
  docker: Docker;
  cpu: CpuAccount;
}

const NO_USAGE: Usage = { wallMs: 0, cpuMs: 0, maxMemoryBytes: 0 };

/** Opens the multiplexed stdout/stderr stream of the container (attach before start, or the log from its beginning). */
async function openOutput(container: Docker.Container, begin: Begin): Promise<Readable> {
  const s =
    begin.mode === 'start'
      ? await container.attach({ stream: true, stdout: true, stderr: true })
      : await container.logs({ follow: true, stdout: true, stderr: true });
  return s as unknown as Readable;
}

/** Wall time from the engine's StartedAt/FinishedAt (RFC 3339), ms; undefined when either is missing. */
function engineWallMs(state: { StartedAt?: string; FinishedAt?: string }): number | undefined {
  const a = Date.parse(state.StartedAt ?? '');
  const b = Date.parse(state.FinishedAt ?? '');
  return Number.isFinite(a) && Number.isFinite(b) && a > 0 && b >= a ? b - a : undefined;
}

/**
 * Starts or follows `container` until it exits, writing its stdout/stderr into `sinks`, killing it at its
 * wall-clock limit (counted from its start), when the output directory grows over its cap, or when
 * `req.signal` aborts. Never throws: engine errors become `agent_error` outcomes.
 */
export async function supervise(
  ctx: SuperviseContext,
  container: Docker.Container,
  req: ExecutionRequest,
  sinks: LogSinks,
  begin: Begin,
): Promise<Bare> {
  let output: Readable;
  try {
    output = await openOutput(container, begin);
  } catch (e) {
    return {
      kind: 'failed',
      reason: 'agent_error',
      message: `cannot read the container's output: ${messageOf(e)}`,
      usage: NO_USAGE,
    };
  }
  const drained = new Promise<void>((resolve) => {
    output.once('end', resolve);
    output.once('close', resolve);
    output.once('error', () => resolve());
  });
  ctx.docker.modem.demuxStream(output, sinks.out, sinks.err);

  if (begin.mode === 'start') {
    try {
      await container.start();
    } catch (e) {
      output.destroy();
      const msg = messageOf(e);
      const exitCode = startFailureExitCode(msg);
      if (exitCode !== undefined) {
        sinks.err.write(Buffer.from(`deqo: cannot execute ${JSON.stringify(req.command[0] ?? '')}: ${msg}\n`));
        return { kind: 'exited', exitCode, usage: NO_USAGE };
      }
      return { kind: 'failed', reason: 'agent_error', message: `cannot start container: ${msg}`, usage: NO_USAGE };
    }
  }
  const t0 = begin.mode === 'start' ? Date.now() : begin.startedAtMs;

  let exited = false;
  let killedBy: KillCause | undefined;
  const kill = (cause: KillCause): void => {
    if (exited || killedBy) return;
    killedBy = cause;
    container.kill({ signal: 'SIGKILL' }).catch(() => {
      /* already exited */
    });
  };

  const stats = new StatsSampler(begin.mode === 'start');
  stats.start(container);
  ctx.cpu.add(stats);
  const timer = setTimeout(() => kill('timeout'), Math.max(0, req.resources.timeoutSeconds * 1000 - (Date.now() - t0)));
  const onAbort = (): void => kill('cancelled');
  req.signal?.addEventListener('abort', onAbort, { once: true });
  if (req.signal?.aborted) onAbort();
  let outputSize = 0;
  let outputBeyond: string | null = null;
  let polling = false;
  const poller = setInterval(() => {
    if (polling || exited || killedBy) return;
    polling = true;
    dirSize(req.hostOutputDir, req.limits.outputBytes)
      .then(
        (r) => {
          outputSize = r.bytes;
          outputBeyond = r.beyond;
          if (r.bytes > req.limits.outputBytes || r.beyond) kill('output_too_large');
        },
        () => {
          /* unreadable: checked again after exit */
        },
      )
      .finally(() => {
        polling = false;
      });
  }, OUTPUT_POLL_MS);

  let waitError: unknown;
  let waitStatus = -1;
  try {
    const w = (await container.wait()) as { StatusCode?: number };
    waitStatus = typeof w.StatusCode === 'number' ? w.StatusCode : -1;
  } catch (e) {
    waitError = e;
  } finally {
    exited = true;
    clearTimeout(timer);
    clearInterval(poller);
    req.signal?.removeEventListener('abort', onAbort);
  }
  const measuredWallMs = Date.now() - t0;

  // Let the last stdout/stderr bytes arrive, then stop sampling.
  let drainTimer: NodeJS.Timeout | undefined;
  await Promise.race([
    drained,
    new Promise<void>((r) => {
      drainTimer = setTimeout(r, begin.mode === 'start' ? ATTACH_DRAIN_MS : REPLAY_DRAIN_MS);
    }),
  ]);
  clearTimeout(drainTimer);
  output.destroy();
  ctx.cpu.end(stats);
  const usage = (wallMs: number): Usage => ({
    wallMs: Math.max(0, Math.round(wallMs)),
    cpuMs: Math.round(stats.cpuNs / 1e6),
    maxMemoryBytes: stats.maxMemoryBytes,
  });

  const gone = `container ${containerName(req.executionId)} was removed while running`;
  if (waitError !== undefined) {
    return {
      kind: 'failed',
      reason: 'agent_error',
      message: `lost the container while waiting for it: ${messageOf(waitError)}`,
      usage: usage(measuredWallMs),
    };
  }
  let info: Docker.ContainerInspectInfo;
  try {
    info = await container.inspect();
  } catch (e) {
    const why = statusOf(e) === 404 ? gone : messageOf(e);
    return {
      kind: 'failed',
      reason: 'agent_error',
      message: `cannot inspect the exited container: ${why}`,
      usage: usage(measuredWallMs),
    };
  }
  // A followed container ran partly unwatched: only the engine knows its run time.
  const used = usage(begin.mode === 'follow' ? (engineWallMs(info.State) ?? measuredWallMs) : measuredWallMs);
  if (info.State.Status === 'removing') return { kind: 'failed', reason: 'agent_error', message: gone, usage: used };
  const exitCode = typeof info.State.ExitCode === 'number' ? info.State.ExitCode : waitStatus;
  if (!killedBy)
    ({ bytes: outputSize, beyond: outputBeyond } = await dirSize(req.hostOutputDir, req.limits.outputBytes));

  const c = classifyExit({
    exitCode,
    oomKilled: info.State.OOMKilled === true,
    killedBy,
    memoryMb: req.resources.memoryMb,
    timeoutSeconds: req.resources.timeoutSeconds,
    outputBytes: req.limits.outputBytes,
    outputSize,
    outputBeyond,
  });
  return c.kind === 'exited' ? { kind: 'exited', exitCode: c.exitCode, usage: used } : { ...c, usage: used };
}
