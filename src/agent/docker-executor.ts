/**
 * Docker implementation of the executor port (executor.ts), on dockerode. Each execution runs in a
 * fresh, hardened container (see docker-hardening.ts, CIS Docker Benchmark §5) that is always
 * force-removed at the end — by `run`, or by `attach` when an agent that restarted takes it over.
 * Both share the supervision (docker-supervise.ts). Job-caused problems are returned classified, never thrown.
 */
import { chmod, chown, mkdir, readFile } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import Docker from 'dockerode';
import type { Usage } from '../protocol/index.js';
import {
  buildCreateOptions,
  CONTAINER_GID,
  CONTAINER_UID,
  LABEL_AGENT,
  LABEL_EXECUTION,
  LABEL_FENCING_TOKEN,
} from './docker-hardening.js';
import { CpuAccount, messageOf, openLogSinks, statusOf, type LogSinks } from './docker-streams.js';
import { supervise, type Bare, type Begin } from './docker-supervise.js';
import {
  ExecutorUnavailableError,
  type ExecutionOutcome,
  type ExecutionRequest,
  type Executor,
  type OwnContainer,
} from './executor.js';
import { prepareJobNetwork, type JobNetworkOptions } from './job-network.js';

/** Default Docker engine socket. */
export const DEFAULT_DOCKER_SOCKET = '/var/run/docker.sock';
/** Upper bound of an image pull, milliseconds. */
const PULL_TIMEOUT_MS = 120_000;

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

/**
 * Executor that runs each execution in a hardened Docker container (CIS Docker Benchmark §5).
 * Constructing it does not contact the engine; call {@link DockerExecutor.version} to check it.
 */
export class DockerExecutor implements Executor {
  private readonly docker: Docker;
  private readonly agentId: string;
  private readonly socketPath: string;
  private readonly pullMissing: boolean;
  /** CPU time of the containers this executor supervised (for jobCpuMs). */
  private readonly cpu = new CpuAccount();
  /** The Docker network of jobs that ask for one (prepareNetwork); `bridge` until then. */
  private jobNetwork = 'bridge';

  constructor(opts: DockerExecutorOptions) {
    this.agentId = opts.agentId;
    this.socketPath = opts.socketPath ?? DEFAULT_DOCKER_SOCKET;
    this.pullMissing = opts.pullMissing ?? false;
    this.docker = new Docker({ socketPath: this.socketPath });
  }

  /**
   * Makes the network that jobs asking for one run on (job-network.ts): the fenced `deqo-jobs`, or Docker's
   * `bridge` with allowPrivateNetwork. Returns its name. Throws NetworkFenceError saying how to fix it.
   */
  async prepareNetwork(opts: JobNetworkOptions): Promise<string> {
    this.jobNetwork = await prepareJobNetwork(this.docker, opts);
    return this.jobNetwork;
  }

  /** Engine version, e.g. "20.10.24+dfsg1". Throws ExecutorUnavailableError (with a fix) if no engine answers. */
  async version(): Promise<string> {
    try {
      const v = await this.docker.version();
      return v.Version;
    } catch (e) {
      const code = (e as { code?: unknown } | null)?.code;
      const hint =
        code === 'EACCES'
          ? `permission denied on ${this.socketPath}: run the agent as root or add its user to the "docker" group`
          : `no Docker engine reachable at ${this.socketPath}: start dockerd (e.g. \`dockerd &\` or \`systemctl start docker\`) or install Debian's docker.io`;
      throw new ExecutorUnavailableError(`${hint} (${messageOf(e)})`);
    }
  }

  /** Cumulative CPU time of every container this executor supervised, ms (monotonic; from `docker stats`, about 1 s behind). */
  jobCpuMs(): number {
    return this.cpu.ms();
  }

  /** Containers labelled deqo.agent=<this agent>, with their execution and fencing-token labels. Throws on engine errors. */
  async containers(): Promise<OwnContainer[]> {
    const list = await this.docker.listContainers({
      all: true,
      filters: { label: [`${LABEL_AGENT}=${this.agentId}`] },
    });
    return list.map((c) => {
      const token = Number(c.Labels?.[LABEL_FENCING_TOKEN]);
      const executionId = c.Labels?.[LABEL_EXECUTION];
      return {
        containerId: c.Id,
        state: c.State,
        ...(executionId !== undefined ? { executionId } : {}),
        ...(Number.isInteger(token) ? { fencingToken: token } : {}),
      };
    });
  }

  /** Force-removes a container (killing it if it runs); nothing when it is already gone. Throws on other engine errors. */
  async remove(containerId: string): Promise<void> {
    await this.docker
      .getContainer(containerId)
      .remove({ force: true })
      .catch((e: unknown) => {
        if (statusOf(e) !== 404) throw e;
      });
  }

  /**
   * Runs one execution to its end in a hardened container and classifies the result. Resolves only
   * after stdout/stderr are flushed to their files and the container is removed. Throws only for the
   * agent's own faults (cannot create the log files or prepare the output directory, `onCreated`/`onEnded` threw).
   */
  async run(req: ExecutionRequest): Promise<ExecutionOutcome> {
    const noUsage: Usage = { wallMs: 0, cpuMs: 0, maxMemoryBytes: 0 };
    const early = (reason: Failed['reason'], message: string): Failed => ({
      kind: 'failed',
      reason,
      message,
      usage: noUsage,
      stdoutTruncated: false,
      stderrTruncated: false,
    });
    if (req.signal?.aborted) return early('cancelled', 'execution was cancelled before it started');

    let createOpts: Docker.ContainerCreateOptions;
    try {
      createOpts = buildCreateOptions(req, this.agentId, this.jobNetwork);
    } catch (e) {
      return early('agent_error', messageOf(e));
    }

    const imageProblem = await this.ensureImage(req.image);
    if (imageProblem) return early(imageProblem.reason, imageProblem.message);

    await mkdir(req.hostInputsDir, { recursive: true });
    await prepareOutputDir(req.hostOutputDir);
    const sinks = await openLogSinks(req);
    let container: Docker.Container | undefined;
    try {
      try {
        container = await this.create(createOpts);
      } catch (e) {
        if (statusOf(e) === 404)
          return early('image_not_found', `image ${req.image} is not present on this provider (${messageOf(e)})`);
        return early('agent_error', `cannot create container: ${messageOf(e)}`);
      }
      await req.onCreated?.(container.id);
      return await this.ended(req, await this.finish(container, req, sinks, { mode: 'start' }));
    } finally {
      if (container)
        await container.remove({ force: true }).catch(() => {
          /* already gone */
        });
      await Promise.all([sinks.out.close(), sinks.err.close()]);
    }
  }

  /**
   * Takes over a container an earlier run of this agent created for `req` (executor.ts). Output the earlier run
   * captured live must be a prefix of what the engine's log replays; when it is not (the log was cut while the
   * agent was down, or held bytes the json-file log cannot represent), the result is `agent_restarted`: the
   * agent cannot vouch for it. The container is removed at the end. Throws only for the agent's own faults.
   */
  async attach(containerId: string, req: ExecutionRequest): Promise<ExecutionOutcome> {
    const container = this.docker.getContainer(containerId);
    const noUsage: Usage = { wallMs: 0, cpuMs: 0, maxMemoryBytes: 0 };
    let info: Docker.ContainerInspectInfo;
    try {
      info = await container.inspect();
    } catch (e) {
      const why = statusOf(e) === 404 ? 'it no longer exists' : messageOf(e);
      return {
        kind: 'failed',
        reason: 'agent_restarted',
        message: `cannot take over container ${containerId.slice(0, 12)} after an agent restart: ${why}`,
        usage: noUsage,
        stdoutTruncated: false,
        stderrTruncated: false,
      };
    }
    const begin: Begin =
      info.State.Status === 'created'
        ? { mode: 'start' }
        : { mode: 'follow', startedAtMs: Date.parse(info.State.StartedAt) || Date.now() };
    const before =
      begin.mode === 'follow'
        ? await Promise.all([readFile(req.stdoutPath).catch(() => null), readFile(req.stderrPath).catch(() => null)])
        : [null, null];
    const sinks = await openLogSinks(req);
    try {
      const outcome = await this.finish(container, req, sinks, begin);
      const lost = await Promise.all([lostBytes(before[0], req.stdoutPath), lostBytes(before[1], req.stderrPath)]);
      if (!lost[0] && !lost[1]) return await this.ended(req, outcome);
      return await this.ended(req, {
        ...outcome,
        kind: 'failed',
        reason: 'agent_restarted',
        message:
          `the engine's log of the container's ${lost[0] ? 'stdout' : 'stderr'} does not start with what the agent captured before it restarted ` +
          '(the log was cut while the agent was down, or held bytes it cannot represent): the result cannot be vouched for',
      });
    } finally {
      await container.remove({ force: true }).catch(() => {
        /* already gone */
      });
      await Promise.all([sinks.out.close(), sinks.err.close()]);
    }
  }

  /** Supervises the container and flushes the log files; the outcome with the truncation flags. */
  private async finish(
    container: Docker.Container,
    req: ExecutionRequest,
    sinks: LogSinks,
    begin: Begin,
  ): Promise<ExecutionOutcome> {
    const result: Bare = await supervise({ docker: this.docker, cpu: this.cpu }, container, req, sinks, begin);
    await Promise.all([sinks.out.close(), sinks.err.close()]);
    const flags = { stdoutTruncated: sinks.out.truncated, stderrTruncated: sinks.err.truncated };
    return result.kind === 'exited' ? { ...result, ...flags } : { ...result, ...flags };
  }

  /** The outcome, after telling `req.onEnded` (the caller removes the container next). */
  private async ended(req: ExecutionRequest, outcome: ExecutionOutcome): Promise<ExecutionOutcome> {
    await req.onEnded?.(outcome);
    return outcome;
  }

  /** Returns undefined if `image` is present (pulling it when allowed), else the failure to report. */
  private async ensureImage(
    image: string,
  ): Promise<{ reason: 'image_not_found' | 'agent_error'; message: string } | undefined> {
    const present = async (): Promise<boolean> => {
      try {
        await this.docker.getImage(image).inspect();
        return true;
      } catch (e) {
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
      try {
        if (await present()) return undefined;
      } catch {
        /* fall through */
      }
    }
    return { reason: 'image_not_found', message: `image ${image} is not present on this provider (${detail})` };
  }

  /** `docker pull image`, bounded to PULL_TIMEOUT_MS; returns a description of how it ended. */
  private async pull(image: string): Promise<string> {
    const ac = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<string>((resolve) => {
      timer = setTimeout(() => {
        ac.abort();
        resolve(`pull timed out after ${PULL_TIMEOUT_MS / 1000} s`);
      }, PULL_TIMEOUT_MS);
    });
    const attempt = (async (): Promise<string> => {
      const stream = await this.docker.pull(image, { abortSignal: ac.signal });
      (stream as unknown as Readable).on('error', () => {
        /* reported via followProgress */
      });
      const events = await new Promise<Array<{ error?: string }>>((resolve, reject) => {
        this.docker.modem.followProgress(stream, (e: Error | null, o: Array<{ error?: string }>) =>
          e ? reject(e) : resolve(o),
        );
      });
      const bad = events.find((ev) => typeof ev.error === 'string');
      return bad ? `pull failed: ${bad.error}` : 'pulled';
    })().catch((e: unknown) => `pull failed: ${messageOf(e)}`);
    try {
      return await Promise.race([attempt, timeout]);
    } finally {
      clearTimeout(timer);
    }
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
}

/** True when `before` (bytes captured before a restart; null: none) is not a prefix of the file at `path` now. */
async function lostBytes(before: Buffer | null, path: string): Promise<boolean> {
  if (!before || before.length === 0) return false;
  const now = await readFile(path).catch(() => Buffer.alloc(0));
  return now.length < before.length || !now.subarray(0, before.length).equals(before);
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
