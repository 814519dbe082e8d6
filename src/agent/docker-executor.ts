/**
 * Docker implementation of the executor port (executor.ts), on dockerode. Each execution runs in a
 * fresh, hardened container (see docker-hardening.ts, CIS Docker Benchmark §5) that is always
 * force-removed at the end. Job-caused problems are returned classified, never thrown.
 */
import { chmod, chown, lstat, mkdir, open, readdir, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable, type Readable } from 'node:stream';
import Docker from 'dockerode';
import type { Usage } from '../protocol/index.js';
import {
  buildCreateOptions, classifyExit, containerName, CONTAINER_GID, CONTAINER_UID, LABEL_AGENT, LABEL_EXECUTION,
  parseStatsLine, startFailureExitCode, type KillCause,
} from './docker-hardening.js';
import { ExecutorUnavailableError, type ExecutionOutcome, type ExecutionRequest, type Executor } from './executor.js';

/** Default Docker engine socket. */
export const DEFAULT_DOCKER_SOCKET = '/var/run/docker.sock';
/** Upper bound of an image pull, milliseconds. */
const PULL_TIMEOUT_MS = 120_000;
/** Interval between two measurements of the output directory, milliseconds. */
const OUTPUT_POLL_MS = 1_000;
/** How long to wait for the attach stream to drain after the container exited, milliseconds. */
const ATTACH_DRAIN_MS = 5_000;

/** Options of {@link DockerExecutor}. */
export interface DockerExecutorOptions {
  /** Id of this agent; written as label `deqo.agent` on every container it creates. */
  agentId: string;
  /** Unix socket of the Docker engine; default /var/run/docker.sock. */
  socketPath?: string;
  /** Try `docker pull` (bounded to 120 s) when an image is not present locally; default false. */
  pullMissing?: boolean;
}

type Failed = Extract<ExecutionOutcome, { kind: 'failed' }>;
/** An outcome before the truncation flags of the logs are known. */
type Bare = Omit<Failed, 'stdoutTruncated' | 'stderrTruncated'> | { kind: 'exited'; exitCode: number; usage: Usage };

/** HTTP status of a dockerode error, if any. */
function statusOf(e: unknown): number | undefined {
  const s = (e as { statusCode?: unknown } | null)?.statusCode;
  return typeof s === 'number' ? s : undefined;
}

/** Human message of a dockerode error: the engine's JSON message when present. */
function messageOf(e: unknown): string {
  const j = (e as { json?: { message?: unknown } } | null)?.json;
  if (j && typeof j.message === 'string') return j.message;
  return e instanceof Error ? e.message : String(e);
}

/**
 * Writable that copies at most `cap` bytes into a file and drops the rest, remembering whether it
 * dropped anything. Write errors of the file are kept and rethrown by {@link CappedFileSink.close}.
 */
class CappedFileSink extends Writable {
  written = 0;
  truncated = false;
  private error: Error | undefined;
  private closing: Promise<void> | undefined;

  private constructor(private readonly fh: FileHandle, private readonly cap: number) {
    super();
    this.on('error', (e) => { this.error ??= e; });
  }

  /** Creates (truncates) the file at `path`; throws if it cannot be opened. */
  static async open(path: string, cap: number): Promise<CappedFileSink> {
    return new CappedFileSink(await open(path, 'w', 0o644), cap);
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    const room = this.cap - this.written;
    if (chunk.length > room) this.truncated = true;
    if (room <= 0) { cb(); return; }
    const part = chunk.length > room ? chunk.subarray(0, room) : chunk;
    this.written += part.length;
    this.fh.write(part).then(() => cb(), (e: Error) => { this.error ??= e; cb(); });
  }

  /** Flushes pending writes and closes the file (idempotent); throws the first write error. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      if (!this.writableFinished) {
        await new Promise<void>((resolve) => {
          this.once('finish', resolve);
          this.once('close', resolve);
          this.end();
        });
      }
      await this.fh.close().catch((e: Error) => { this.error ??= e; });
    })();
    return this.closing.then(() => { if (this.error) throw this.error; });
  }
}

/**
 * Apparent size in bytes of all regular files under `dir` (recursive, symlinks not followed).
 * Stops early once the total exceeds `stopAbove`. Entries that vanish or cannot be read are skipped.
 */
export async function dirSize(dir: string, stopAbove = Number.POSITIVE_INFINITY): Promise<number> {
  let total = 0;
  const stack = [dir];
  while (stack.length > 0 && total <= stopAbove) {
    const d = stack.pop() as string;
    let entries;
    try { entries = await readdir(d, { withFileTypes: true }); } catch { continue; }
    for (const ent of entries) {
      const p = join(d, ent.name);
      if (ent.isDirectory()) { stack.push(p); continue; }
      try { total += (await lstat(p)).size; } catch { /* vanished */ }
      if (total > stopAbove) break;
    }
  }
  return total;
}

/** Samples `docker stats` (stream) of a running container: cumulative CPU time and peak memory. */
class StatsSampler {
  cpuNs = 0;
  maxMemoryBytes = 0;
  private stream: Readable | undefined;
  private stopped = false;

  start(container: Docker.Container): void {
    container.stats({ stream: true }).then((s) => {
      const stream = s as unknown as Readable;
      stream.on('error', () => { /* best effort */ });
      if (this.stopped) { stream.destroy(); return; }
      this.stream = stream;
      let buf = '';
      stream.on('data', (chunk: Buffer) => {
        buf += chunk.toString('utf8');
        let i: number;
        while ((i = buf.indexOf('\n')) >= 0) { this.take(buf.slice(0, i)); buf = buf.slice(i + 1); }
      });
    }, () => { /* container already gone: no samples */ });
  }

  private take(line: string): void {
    const s = parseStatsLine(line);
    if (!s) return;
    this.cpuNs = Math.max(this.cpuNs, s.cpuNs);
    this.maxMemoryBytes = Math.max(this.maxMemoryBytes, s.memoryBytes);
  }

  stop(): void {
    this.stopped = true;
    this.stream?.destroy();
  }
}

/**
 * Executor that runs each execution in a hardened Docker container (CIS Docker Benchmark §5).
 * Constructing it does not contact the engine; call {@link DockerExecutor.version} to check it.
 */
export class DockerExecutor implements Executor {
  private readonly docker: Docker;
  private readonly agentId: string;
  private readonly socketPath: string;
  private readonly pullMissing: boolean;
  /** CPU time of containers that ended, ns, plus the live samplers of running ones (for jobCpuMs). */
  private endedCpuNs = 0;
  private readonly liveStats = new Set<StatsSampler>();

  constructor(opts: DockerExecutorOptions) {
    this.agentId = opts.agentId;
    this.socketPath = opts.socketPath ?? DEFAULT_DOCKER_SOCKET;
    this.pullMissing = opts.pullMissing ?? false;
    this.docker = new Docker({ socketPath: this.socketPath });
  }

  /** Engine version, e.g. "20.10.24+dfsg1". Throws ExecutorUnavailableError (with a fix) if no engine answers. */
  async version(): Promise<string> {
    try {
      const v = await this.docker.version();
      return v.Version;
    } catch (e) {
      const code = (e as { code?: unknown } | null)?.code;
      const hint = code === 'EACCES'
        ? `permission denied on ${this.socketPath}: run the agent as root or add its user to the "docker" group`
        : `no Docker engine reachable at ${this.socketPath}: start dockerd (e.g. \`dockerd &\` or \`systemctl start docker\`) or install Debian's docker.io`;
      throw new ExecutorUnavailableError(`${hint} (${messageOf(e)})`);
    }
  }

  /** Cumulative CPU time of every container this executor ran, ms (monotonic; from `docker stats`, about 1 s behind). */
  jobCpuMs(): number {
    let ns = this.endedCpuNs;
    for (const s of this.liveStats) ns += s.cpuNs;
    return ns / 1e6;
  }

  /** Force-removes every container labelled deqo.agent=`agentId`; returns their deqo.execution labels. Throws on engine errors. */
  async removeOrphans(agentId: string): Promise<string[]> {
    const list = await this.docker.listContainers({ all: true, filters: { label: [`${LABEL_AGENT}=${agentId}`] } });
    const ids: string[] = [];
    for (const c of list) {
      await this.docker.getContainer(c.Id).remove({ force: true }).catch((e: unknown) => {
        if (statusOf(e) !== 404) throw e;
      });
      const exec = c.Labels?.[LABEL_EXECUTION];
      if (exec !== undefined) ids.push(exec);
    }
    return ids;
  }

  /**
   * Runs one execution to its end in a hardened container and classifies the result. Resolves only
   * after stdout/stderr are flushed to their files and the container is removed. Throws only for the
   * agent's own faults (cannot create the log files or prepare the output directory).
   */
  async run(req: ExecutionRequest): Promise<ExecutionOutcome> {
    const noUsage: Usage = { wallMs: 0, cpuMs: 0, maxMemoryBytes: 0 };
    const early = (reason: Failed['reason'], message: string): Failed =>
      ({ kind: 'failed', reason, message, usage: noUsage, stdoutTruncated: false, stderrTruncated: false });
    if (req.signal?.aborted) return early('cancelled', 'execution was cancelled before it started');

    let createOpts: Docker.ContainerCreateOptions;
    try { createOpts = buildCreateOptions(req, this.agentId); } catch (e) { return early('agent_error', messageOf(e)); }

    const imageProblem = await this.ensureImage(req.image);
    if (imageProblem) return early(imageProblem.reason, imageProblem.message);

    await mkdir(req.hostInputsDir, { recursive: true });
    await prepareOutputDir(req.hostOutputDir);
    const out = await CappedFileSink.open(req.stdoutPath, req.limits.stdoutBytes);
    const err = await CappedFileSink.open(req.stderrPath, req.limits.stderrBytes).catch(async (e: unknown) => {
      await out.close().catch(() => {}); throw e;
    });

    let container: Docker.Container | undefined;
    try {
      try {
        container = await this.create(createOpts);
      } catch (e) {
        if (statusOf(e) === 404) return early('image_not_found', `image ${req.image} is not present on this provider (${messageOf(e)})`);
        return early('agent_error', `cannot create container: ${messageOf(e)}`);
      }
      const result = await this.supervise(container, req, out, err);
      await Promise.all([out.close(), err.close()]);
      const flags = { stdoutTruncated: out.truncated, stderrTruncated: err.truncated };
      return result.kind === 'exited' ? { ...result, ...flags } : { ...result, ...flags };
    } finally {
      if (container) await container.remove({ force: true }).catch(() => { /* already gone */ });
      await Promise.all([out.close(), err.close()]);
    }
  }

  /** Returns undefined if `image` is present (pulling it when allowed), else the failure to report. */
  private async ensureImage(image: string): Promise<{ reason: 'image_not_found' | 'agent_error'; message: string } | undefined> {
    const present = async (): Promise<boolean> => {
      try { await this.docker.getImage(image).inspect(); return true; } catch (e) {
        if (statusOf(e) === 404) return false;
        throw e;
      }
    };
    try {
      if (await present()) return undefined;
    } catch (e) {
      return { reason: 'agent_error', message: `cannot inspect image ${image}: ${messageOf(e)}` };
    }
    let detail = 'pulling is disabled on this provider';
    if (this.pullMissing) {
      detail = await this.pull(image);
      try { if (await present()) return undefined; } catch { /* fall through */ }
    }
    return { reason: 'image_not_found', message: `image ${image} is not present on this provider (${detail})` };
  }

  /** `docker pull image`, bounded to PULL_TIMEOUT_MS; returns a description of how it ended. */
  private async pull(image: string): Promise<string> {
    const ac = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<string>((resolve) => {
      timer = setTimeout(() => { ac.abort(); resolve(`pull timed out after ${PULL_TIMEOUT_MS / 1000} s`); }, PULL_TIMEOUT_MS);
    });
    const attempt = (async (): Promise<string> => {
      const stream = await this.docker.pull(image, { abortSignal: ac.signal });
      (stream as unknown as Readable).on('error', () => { /* reported via followProgress */ });
      const events = await new Promise<Array<{ error?: string }>>((resolve, reject) => {
        this.docker.modem.followProgress(stream, (e: Error | null, o: Array<{ error?: string }>) => (e ? reject(e) : resolve(o)));
      });
      const bad = events.find((ev) => typeof ev.error === 'string');
      return bad ? `pull failed: ${bad.error}` : 'pulled';
    })().catch((e: unknown) => `pull failed: ${messageOf(e)}`);
    try { return await Promise.race([attempt, timeout]); } finally { clearTimeout(timer); }
  }

  /** Creates the container; replaces a stale container of the same name left by this agent. */
  private async create(opts: Docker.ContainerCreateOptions): Promise<Docker.Container> {
    try {
      return await this.docker.createContainer(opts);
    } catch (e) {
      if (statusOf(e) !== 409 || opts.name === undefined) throw e;
      const stale = this.docker.getContainer(opts.name);
      const info = await stale.inspect();
      if (info.Config.Labels?.[LABEL_AGENT] !== this.agentId) throw e;
      await stale.remove({ force: true });
      return await this.docker.createContainer(opts);
    }
  }

  /** Attaches, starts and watches the container until it exits; classifies how it ended. */
  private async supervise(container: Docker.Container, req: ExecutionRequest, out: CappedFileSink, err: CappedFileSink)
    : Promise<Bare> {
    const noUsage: Usage = { wallMs: 0, cpuMs: 0, maxMemoryBytes: 0 };
    let stream: NodeJS.ReadWriteStream;
    try {
      stream = await container.attach({ stream: true, stdout: true, stderr: true });
    } catch (e) {
      return { kind: 'failed', reason: 'agent_error', message: `cannot attach to container: ${messageOf(e)}`, usage: noUsage };
    }
    const attachStream = stream as unknown as Readable;
    const drained = new Promise<void>((resolve) => {
      attachStream.once('end', resolve);
      attachStream.once('close', resolve);
      attachStream.once('error', () => resolve());
    });
    this.docker.modem.demuxStream(stream, out, err);

    try {
      await container.start();
    } catch (e) {
      attachStream.destroy();
      const msg = messageOf(e);
      const exitCode = startFailureExitCode(msg);
      if (exitCode !== undefined) {
        err.write(Buffer.from(`deqo: cannot execute ${JSON.stringify(req.command[0] ?? '')}: ${msg}\n`));
        return { kind: 'exited', exitCode, usage: noUsage };
      }
      return { kind: 'failed', reason: 'agent_error', message: `cannot start container: ${msg}`, usage: noUsage };
    }
    const t0 = performance.now();

    let exited = false;
    let killedBy: KillCause | undefined;
    const kill = (cause: KillCause): void => {
      if (exited || killedBy) return;
      killedBy = cause;
      container.kill({ signal: 'SIGKILL' }).catch(() => { /* already exited */ });
    };

    const stats = new StatsSampler();
    stats.start(container);
    this.liveStats.add(stats);
    const timer = setTimeout(() => kill('timeout'), req.resources.timeoutSeconds * 1000);
    const onAbort = (): void => kill('cancelled');
    req.signal?.addEventListener('abort', onAbort, { once: true });
    if (req.signal?.aborted) onAbort();
    let outputSize = 0;
    let polling = false;
    const poller = setInterval(() => {
      if (polling || exited || killedBy) return;
      polling = true;
      dirSize(req.hostOutputDir, req.limits.outputBytes).then((n) => {
        outputSize = n;
        if (n > req.limits.outputBytes) kill('output_too_large');
      }, () => { /* unreadable: checked again after exit */ }).finally(() => { polling = false; });
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
    const wallMs = Math.round(performance.now() - t0);

    // Let the last stdout/stderr bytes arrive, then stop sampling.
    let drainTimer: NodeJS.Timeout | undefined;
    await Promise.race([drained, new Promise<void>((r) => { drainTimer = setTimeout(r, ATTACH_DRAIN_MS); })]);
    clearTimeout(drainTimer);
    attachStream.destroy();
    stats.stop();
    this.liveStats.delete(stats);
    this.endedCpuNs += stats.cpuNs;
    const usage: Usage = { wallMs, cpuMs: Math.round(stats.cpuNs / 1e6), maxMemoryBytes: stats.maxMemoryBytes };

    if (waitError !== undefined) {
      return { kind: 'failed', reason: 'agent_error', message: `lost the container while waiting for it: ${messageOf(waitError)}`, usage };
    }
    let oomKilled = false;
    let exitCode = waitStatus;
    try {
      const info = await container.inspect();
      if (info.State.Status === 'removing') {
        return { kind: 'failed', reason: 'agent_error', message: `container ${containerName(req.executionId)} was removed while running`, usage };
      }
      oomKilled = info.State.OOMKilled === true;
      if (typeof info.State.ExitCode === 'number') exitCode = info.State.ExitCode;
    } catch (e) {
      const why = statusOf(e) === 404 ? `container ${containerName(req.executionId)} was removed while running` : messageOf(e);
      return { kind: 'failed', reason: 'agent_error', message: `cannot inspect the exited container: ${why}`, usage };
    }
    if (!killedBy) outputSize = await dirSize(req.hostOutputDir, req.limits.outputBytes);

    const c = classifyExit({
      exitCode, oomKilled, killedBy, memoryMb: req.resources.memoryMb, timeoutSeconds: req.resources.timeoutSeconds,
      outputBytes: req.limits.outputBytes, outputSize,
    });
    return c.kind === 'exited' ? { kind: 'exited', exitCode: c.exitCode, usage } : { ...c, usage };
  }
}

/** Creates the host output directory and makes it writable by the container user (chown as root, else chmod 0777). */
async function prepareOutputDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  if (typeof process.getuid === 'function' && process.getuid() === 0) {
    await chown(dir, CONTAINER_UID, CONTAINER_GID);
    await chmod(dir, 0o755);
  } else {
    await chmod(dir, 0o777);
  }
}
