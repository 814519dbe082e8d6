/**
 * Container job overhead: K trivial busybox jobs (`deqo/busybox:test true`, replicas 1, quorum 1) submitted one
 * at a time to a real local network (coordinator in this process, one real `deqo agent` process with the
 * Docker executor), submit → verified, interleaved with K bare `docker run --rm` of the same image and command
 * — plain, and with the agent's hardening flags and bind mounts — and K direct runs of the agent's
 * DockerExecutor (the Docker API calls the agent makes, without the coordinator). Overhead = p50(deqo) −
 * p50(bare). The order rotates every round so no variant always runs first.
 *
 * Where the time goes is read from the job's own timestamps (all from the coordinator's clock except the
 * submit instant): submit → job stored → execution placed → claimed (lease) → reported → verified, and the
 * container's own wall time from the agent's usage report.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { DockerExecutor } from '../agent/index.js';
import { DeqoClient } from '../client/index.js';
import { startLocalNetwork } from '../cli/index.js';
import { LimitsSchema, type JobSpecInput, type JobView } from '../protocol/index.js';
import type { Skipped } from './dispatch.js';
import { jobPhases, phasesP50, type Phases } from './phases.js';
import { distribution, round, type Distribution } from './stats.js';

const exec = promisify(execFile);

/** The image every variant runs (built locally by scripts/build-images.sh; never pulled). */
export const BENCH_IMAGE = 'deqo/busybox:test';
/** The target: p50 overhead at most 100 ms. */
export const CONTAINER_TARGET_OVERHEAD_MS = 100;

/** The job: busybox `true`, one replica, quorum 1. */
const JOB: JobSpecInput = {
  image: BENCH_IMAGE,
  command: ['true'],
  resources: { cpus: 1, memoryMb: 64, timeoutSeconds: 60 },
  verification: { mode: 'replicate', replicas: 1, quorum: 1 },
};

/** Settings of a container run. */
export interface ContainerOptions {
  runs: number;
  warmup: number;
}

/** Results of a container run, ms. */
export interface ContainerResult {
  benchmark: 'container';
  runs: number;
  image: string;
  command: string[];
  deqoMs: Distribution;
  barePlainMs: Distribution;
  bareHardenedMs: Distribution;
  executorMs: Distribution;
  /** p50(deqo) − p50(bare hardened): the overhead the target is about. */
  overheadP50Ms: number;
  overheadP50VsPlainMs: number;
  overheadP99Ms: number;
  /** p50 of each phase of the deqo jobs (phases.ts). */
  phasesP50Ms: Phases | null;
  loadAverageAtStart: number;
  target: { overheadP50Ms: number; met: boolean };
}

/** Flags of `docker run` mirroring the agent's hardening (docker-hardening.ts buildCreateOptions). */
function hardenedFlags(inputs: string, outputs: string): string[] {
  return [
    '--network',
    'none',
    '--read-only',
    '--tmpfs',
    '/tmp:rw,nosuid,nodev,size=64m,mode=1777,uid=65534,gid=65534',
    '--cap-drop',
    'ALL',
    '--security-opt',
    'no-new-privileges',
    '--user',
    '65534:65534',
    '--workdir',
    '/tmp',
    '--pids-limit',
    '256',
    '--memory',
    '64m',
    '--memory-swap',
    '64m',
    '--cpus',
    '1',
    '--ipc',
    'private',
    '--log-driver',
    'none',
    '--entrypoint',
    '',
    '-v',
    `${inputs}:/inputs:ro`,
    '-v',
    `${outputs}:/outputs:rw`,
  ];
}

/** Times one `docker run --rm` (the CLI, so its own start-up is included), ms. Throws if it fails. */
async function dockerRun(flags: string[]): Promise<number> {
  const t = performance.now();
  await exec('docker', ['run', '--rm', ...flags, BENCH_IMAGE, 'true'], { timeout: 60_000 });
  return performance.now() - t;
}

/** Why the container benchmark cannot run here, or null. */
async function unavailable(): Promise<string | null> {
  try {
    await exec('docker', ['version', '--format', '{{.Server.Version}}'], { timeout: 20_000 });
  } catch (err) {
    return `no Docker engine answers (${(err as Error).message.split('\n')[0]})`;
  }
  try {
    await exec('docker', ['image', 'inspect', BENCH_IMAGE], { timeout: 20_000 });
  } catch {
    return `image ${BENCH_IMAGE} is missing: build it with scripts/build-images.sh (it is never pulled)`;
  }
  return null;
}

/** Runs the container benchmark; skipped without Docker or the image. */
export async function runContainer(o: ContainerOptions): Promise<ContainerResult | Skipped> {
  const why = await unavailable();
  if (why) return { benchmark: 'container', skipped: why };
  const dir = await mkdtemp(join(tmpdir(), 'deqo-bench-container-'));
  const net = await startLocalNetwork({ dataDir: join(dir, 'net'), agents: 1, port: 0, agentCpus: 1 });
  try {
    const client = new DeqoClient(net.url, net.buyerKey);
    const mounts = { inputs: join(dir, 'in'), outputs: join(dir, 'out') };
    await mkdir(mounts.inputs, { recursive: true });
    await mkdir(mounts.outputs, { recursive: true });
    const executor = new DockerExecutor({ agentId: 'bench' });
    let n = 0;
    const executorRun = async (): Promise<number> => {
      const id = `bench-${process.pid}-${n++}`;
      const work = join(dir, 'exec', id);
      const t = performance.now();
      const r = await executor.run({
        executionId: id,
        fencingToken: 1,
        image: BENCH_IMAGE,
        command: ['true'],
        env: {},
        network: false,
        resources: { cpus: 1, memoryMb: 64, timeoutSeconds: 60, pids: 256, gpus: 0 },
        limits: LimitsSchema.parse({}),
        hostInputsDir: join(work, 'inputs'),
        hostOutputDir: join(work, 'outputs'),
        outputDir: '/outputs',
        stdoutPath: join(work, 'stdout'),
        stderrPath: join(work, 'stderr'),
      });
      const ms = performance.now() - t;
      if (r.kind !== 'exited' || r.exitCode !== 0) throw new Error(`executor run failed: ${JSON.stringify(r)}`);
      return ms;
    };
    await mkdir(join(dir, 'exec'), { recursive: true });
    const variants = {
      deqo: () => deqoJob(client),
      barePlain: async () => ({ ms: await dockerRun([]) }),
      bareHardened: async () => ({ ms: await dockerRun(hardenedFlags(mounts.inputs, mounts.outputs)) }),
      executor: async () => ({ ms: await executorRun() }),
    };
    type Name = keyof typeof variants;
    const names = Object.keys(variants) as Name[];
    for (let i = 0; i < o.warmup; i++) for (const v of names) await variants[v]();
    const loadAverageAtStart = loadavg()[0]!;
    const times: Record<Name, number[]> = { deqo: [], barePlain: [], bareHardened: [], executor: [] };
    const phases: Phases[] = [];
    for (let i = 0; i < o.runs; i++) {
      for (let k = 0; k < names.length; k++) {
        const v = names[(i + k) % names.length]!;
        const r = await variants[v]();
        times[v].push(r.ms);
        if ('phases' in r) phases.push(r.phases as Phases);
      }
    }
    const d = Object.fromEntries(names.map((v) => [v, distribution(times[v])])) as Record<Name, Distribution>;
    const overhead = round(d.deqo.p50 - d.bareHardened.p50);
    return {
      benchmark: 'container',
      runs: o.runs,
      image: BENCH_IMAGE,
      command: ['true'],
      deqoMs: d.deqo,
      barePlainMs: d.barePlain,
      bareHardenedMs: d.bareHardened,
      executorMs: d.executor,
      overheadP50Ms: overhead,
      overheadP50VsPlainMs: round(d.deqo.p50 - d.barePlain.p50),
      overheadP99Ms: round(d.deqo.p99 - d.bareHardened.p99),
      phasesP50Ms: phasesP50(phases),
      loadAverageAtStart: round(loadAverageAtStart, 2),
      target: { overheadP50Ms: CONTAINER_TARGET_OVERHEAD_MS, met: overhead <= CONTAINER_TARGET_OVERHEAD_MS },
    };
  } finally {
    await net.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

/** Polling interval while waiting for a job; the latency itself comes from the job's finishedAt, not the poll. */
const POLL_MS = 20;

/** Submits the job, waits until it is verified, and splits its time into phases. Throws if it does not succeed. */
async function deqoJob(client: DeqoClient): Promise<{ ms: number; phases: Phases }> {
  const at = Date.now();
  const { jobId } = await client.submitJob(JOB);
  let view: JobView = await client.getJob(jobId);
  const deadline = Date.now() + 60_000;
  while (view.state === 'queued' || view.state === 'running') {
    if (Date.now() > deadline) throw new Error(`job ${jobId} not verified within 60 s`);
    await new Promise((r) => setTimeout(r, POLL_MS));
    view = await client.getJob(jobId);
  }
  const phases = jobPhases(view, at);
  if (!phases || view.finishedAt === null) {
    throw new Error(
      `job ${jobId} ended ${view.state}: ${JSON.stringify(view.tasks[0]?.failure ?? view.tasks[0]?.executions.map((x) => x.failure))}`,
    );
  }
  return { ms: view.finishedAt - at, phases };
}
