/**
 * Dispatch throughput: trivial jobs submitted → verified per second, over real HTTP, with simulated agents
 * that run nothing (sim-agent.ts). SQLite: one coordinator (a `deqo coordinator` process, or in this process
 * for tests). PostgreSQL: two coordinator processes sharing a fresh database and blob folder, agents and
 * buyers split between them. Jobs are 1 task, verification `replicate` with replicas 1 and quorum 1 (the
 * default policy), so a task is verified inside the report that ends its only execution.
 *
 * Timing: from the first submit (bench clock) to the last job's `finishedAt` (the coordinator's clock; same
 * machine), and per job from its submit to its `finishedAt`. Nothing polls during the run: completion is
 * counted from the agents' accepted reports, then every job's state is read once through `GET /v1/jobs`.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeqoClient } from '../client/index.js';
import type { JobSpecInput, JobSummary } from '../protocol/index.js';
import {
  createBenchAccounts,
  startCoordinatorProcess,
  startInProcessCoordinator,
  type BenchCoordinator,
} from './coordinator-process.js';
import { createBenchDatabase, DEFAULT_POSTGRES_URL, type BenchDatabase } from './postgres.js';
import { jobPhases, phasesP50, type Phases } from './phases.js';
import { SimAgent, simAgents } from './sim-agent.js';
import {
  distribution,
  mapPool,
  processCpuSeconds,
  processesCpuSeconds,
  round,
  seconds,
  type Distribution,
} from './stats.js';

/** Settings of a dispatch run. */
export interface DispatchOptions {
  database: 'sqlite' | 'postgres';
  /** Jobs measured (after the warm-up). */
  jobs: number;
  /** Simulated agents (each its own provider account). */
  agents: number;
  /** Submits in flight at once, over all buyers. */
  concurrency: number;
  /** Jobs run (and verified) before measuring, to warm the JIT and caches; not counted. */
  warmup: number;
  /** Offered load: start submits at this many jobs per second (open loop); absent: as fast as `concurrency` allows. */
  rate?: number;
  /** SQLite only: run the coordinator in this process (no build needed; its CPU is then not measured apart). */
  inProcess?: boolean;
  /** Write each coordinator process's V8 CPU profile into this folder. */
  cpuProfDir?: string;
  /** PostgreSQL server (no database path). */
  postgresUrl?: string;
  /** PostgreSQL only: coordinator processes sharing the database (default 2). */
  coordinators?: number;
  /** Give up waiting for reports after this long, ms. */
  timeoutMs?: number;
}

/** Results of a dispatch run (times in ms unless the name says s). */
export interface DispatchResult {
  benchmark: 'dispatch';
  database: 'sqlite' | 'postgres';
  coordinators: number;
  coordinatorMode: 'process' | 'in-process';
  agents: number;
  buyers: number;
  jobs: number;
  concurrency: number;
  warmup: number;
  rate: number | null;
  verification: string;
  verified: number;
  notVerified: number;
  agentErrors: number;
  firstAgentError: string | null;
  durationS: number;
  jobsPerSecond: number;
  /** Rate at which the buyers got their 201s. */
  submitPerSecond: number;
  latencyMs: Distribution;
  submitLatencyMs: Distribution;
  /** p50 of each phase (phases.ts) over up to PHASE_SAMPLE jobs spread over the run. */
  phasesP50Ms: Phases | null;
  /** CPU time of the coordinator process(es) during the measured window, s, and in cores (s per s). */
  coordinatorCpuS: number | null;
  coordinatorCpuCores: number | null;
  /** Coordinator CPU per verified job, ms: the figure least disturbed by other load on the machine. */
  coordinatorCpuMsPerJob: number | null;
  /** PostgreSQL: CPU of every local `postgres` process during the measured window, s (null on SQLite). */
  databaseCpuS: number | null;
  /** Verified jobs per CPU second of the coordinators plus (PostgreSQL) the database: what scale-out must raise. */
  jobsPerTotalCpuS: number | null;
  /** CPU time of this process (buyers and simulated agents; plus the coordinator when in-process), s. */
  benchProcessCpuS: number;
  loadAverageAtStart: number;
  target: { jobsPerSecond: number; met: boolean };
}

/** A benchmark that could not run here, and why. */
export interface Skipped {
  benchmark: string;
  database?: string;
  skipped: string;
}

/** The target: 1,000 jobs/s (Slurm documents 500 simple jobs/s sustained). */
export const DISPATCH_TARGET_JOBS_PER_S = 1_000;

/** The trivial job: busybox `true`, 1 CPU, 64 MiB, 1 minute, one replica (never actually run). */
export const TRIVIAL_JOB: JobSpecInput = {
  image: 'deqo/busybox:test',
  command: ['true'],
  resources: { cpus: 1, memoryMb: 64, timeoutSeconds: 60 },
  verification: { mode: 'replicate', replicas: 1, quorum: 1 },
};

/** Capacity of each simulated agent: 4 slots of the trivial job. */
export const SIM_CAPACITY = {
  cpus: 4,
  memoryMb: 8192,
  arch: 'amd64',
  os: 'linux',
  dockerVersion: 'noop',
  gpus: [],
  allowNetwork: false,
};
/** Jobs whose phases are read (GET /v1/jobs/:id after the run), evenly spread over the run. */
const PHASE_SAMPLE = 200;
/** listJobs answers at most this many jobs per buyer, so no buyer submits more. */
const JOBS_PER_BUYER = 1_000;

/** Runs the dispatch benchmark; a PostgreSQL run the store cannot do yet is returned as skipped. */
export async function runDispatch(o: DispatchOptions): Promise<DispatchResult | Skipped> {
  const dir = await mkdtemp(join(tmpdir(), 'deqo-bench-dispatch-'));
  const coords: BenchCoordinator[] = [];
  const agents: SimAgent[] = [];
  let db: BenchDatabase | null = null;
  try {
    if (o.database === 'postgres') {
      try {
        db = await createBenchDatabase(o.postgresUrl ?? DEFAULT_POSTGRES_URL);
      } catch (err) {
        return { benchmark: 'dispatch', database: 'postgres', skipped: (err as Error).message };
      }
      try {
        for (let i = 1; i <= Math.max(1, o.coordinators ?? 2); i++) {
          coords.push(
            await startCoordinatorProcess({
              dataDir: join(dir, `coordinator-${i}`),
              databaseUrl: db.url,
              blobDir: join(dir, 'blobs'),
              adminKeyFile: join(dir, 'admin.key'),
              cpuProfDir: o.cpuProfDir,
            }),
          );
        }
      } catch (err) {
        const msg = (err as Error).message;
        if (/PostgreSQL support is not built|unsupported database URL|Cannot find (package|module) 'pg'/.test(msg)) {
          return {
            benchmark: 'dispatch',
            database: 'postgres',
            skipped: `this build's store cannot use PostgreSQL yet (${msg.split('\n')[0]})`,
          };
        }
        throw err;
      }
    } else {
      coords.push(
        o.inProcess
          ? await startInProcessCoordinator(join(dir, 'coordinator'))
          : await startCoordinatorProcess({
              dataDir: join(dir, 'coordinator'),
              adminKeyFile: join(dir, 'admin.key'),
              cpuProfDir: o.cpuProfDir,
            }),
      );
    }
    const urlOf = (i: number) => coords[i % coords.length]!.url;
    const buyers = 1 + Math.max(1, Math.ceil(o.jobs / JOBS_PER_BUYER));
    const escrow = await jobEscrow(coords[0]!);
    // Enough credits for every job of a buyer to be held in escrow at once (the warm-up buyer may submit more).
    const credits = Math.min(1e9, Math.ceil(escrow * Math.max(JOBS_PER_BUYER, o.warmup) * 1.5) + 1);
    const accounts = await createBenchAccounts(urlOf(0), coords[0]!.adminKey, buyers, o.agents, credits);

    let reported = 0;
    let agentErrors = 0;
    let firstAgentError: string | null = null;
    let wantReports = 0;
    let onTarget: (() => void) | null = null;
    agents.push(
      ...(await simAgents({
        dir,
        count: o.agents,
        providerKeys: accounts.providerKeys,
        urlOf,
        capacity: SIM_CAPACITY,
        onReported: () => {
          if (++reported >= wantReports) onTarget?.();
        },
        onError: (err) => {
          agentErrors++;
          firstAgentError ??= err.message;
        },
      })),
    );
    await mapPool(agents, 10, (a) => a.start());
    await waitOnline(new DeqoClient(urlOf(0), accounts.buyerKeys[0]!), o.agents);

    const runPhase = async (count: number, buyerOf: (i: number) => number, rate?: number) => {
      const timeoutMs = o.timeoutMs ?? 300_000;
      let timer: NodeJS.Timeout | undefined;
      const done = new Promise<void>((resolve, reject) => {
        wantReports = reported + count;
        onTarget = resolve;
        if (reported >= wantReports) resolve();
        timer = setTimeout(
          () =>
            reject(
              new Error(
                `only ${reported - (wantReports - count)} of ${count} jobs were reported within ${timeoutMs / 1000} s`,
              ),
            ),
          timeoutMs,
        ).unref();
      }).finally(() => clearTimeout(timer));
      done.catch(() => undefined); // awaited below; a failed submit must not leave it unhandled
      const clients = accounts.buyerKeys.map((k, b) => coords.map((_, c) => new DeqoClient(urlOf(b + c), k)));
      const start = Date.now();
      const submits = await mapPool(
        Array.from({ length: count }, (_, i) => i),
        o.concurrency,
        async (i) => {
          const due = rate ? start + (i * 1000) / rate - Date.now() : 0;
          if (due > 0) await new Promise((r) => setTimeout(r, due));
          const b = buyerOf(i);
          const at = Date.now();
          const r = await clients[b]![i % coords.length]!.submitJob(TRIVIAL_JOB);
          return { jobId: r.jobId, at, ms: Date.now() - at, buyer: b };
        },
      );
      await done;
      return submits;
    };

    await runPhase(o.warmup, () => 0);
    const loadAverageAtStart = loadavg()[0]!;
    const cpu0 = coordinatorCpu(coords);
    const db0 = o.database === 'postgres' ? processesCpuSeconds('postgres') : null;
    const bench0 = process.cpuUsage();
    const t0 = Date.now();
    const submits = await runPhase(o.jobs, (i) => 1 + (i % (buyers - 1)), o.rate);
    const lastSubmit = submits.reduce((m, s) => Math.max(m, s.at + s.ms), t0);
    const cpu1 = coordinatorCpu(coords);
    const db1 = o.database === 'postgres' ? processesCpuSeconds('postgres') : null;
    const bench1 = process.cpuUsage(bench0);

    const jobs = new Map<string, JobSummary>();
    for (let b = 1; b < buyers; b++) {
      for (const j of await new DeqoClient(urlOf(0), accounts.buyerKeys[b]!).listJobs({ limit: JOBS_PER_BUYER }))
        jobs.set(j.id, j);
    }
    const latencies: number[] = [];
    let verified = 0;
    let end = t0;
    for (const s of submits) {
      const j = jobs.get(s.jobId);
      if (!j || j.state !== 'succeeded' || j.finishedAt === null || j.tasks.verified !== 1) continue;
      verified++;
      latencies.push(j.finishedAt - s.at);
      end = Math.max(end, j.finishedAt);
    }
    const step = Math.max(1, Math.floor(submits.length / PHASE_SAMPLE));
    const sample = submits.filter((_, i) => i % step === 0).slice(0, PHASE_SAMPLE);
    const phases = (
      await mapPool(sample, 8, async (s) =>
        jobPhases(await new DeqoClient(urlOf(0), accounts.buyerKeys[s.buyer]!).getJob(s.jobId), s.at),
      )
    ).filter((p): p is Phases => p !== null);
    const durationMs = end - t0;
    const coordCpu = cpu0 !== null && cpu1 !== null ? cpu1 - cpu0 : null;
    const dbCpu = db0 !== null && db1 !== null ? db1 - db0 : null;
    const totalCpu = coordCpu !== null && dbCpu !== null ? coordCpu + dbCpu : coordCpu;
    const jobsPerSecond = round(verified / (durationMs / 1000));
    return {
      benchmark: 'dispatch',
      database: o.database,
      coordinators: coords.length,
      coordinatorMode: coords[0]!.pid === null ? 'in-process' : 'process',
      agents: o.agents,
      buyers: buyers - 1,
      jobs: o.jobs,
      concurrency: o.concurrency,
      warmup: o.warmup,
      rate: o.rate ?? null,
      verification: 'replicate, replicas 1, quorum 1',
      verified,
      notVerified: o.jobs - verified,
      agentErrors,
      firstAgentError,
      durationS: seconds(durationMs),
      jobsPerSecond,
      submitPerSecond: round(o.jobs / ((lastSubmit - t0) / 1000)),
      latencyMs: distribution(latencies),
      submitLatencyMs: distribution(submits.map((s) => s.ms)),
      phasesP50Ms: phasesP50(phases),
      coordinatorCpuS: coordCpu === null ? null : round(coordCpu, 2),
      coordinatorCpuCores: coordCpu === null ? null : round(coordCpu / (durationMs / 1000), 2),
      coordinatorCpuMsPerJob: coordCpu === null || verified === 0 ? null : round((coordCpu * 1000) / verified, 2),
      databaseCpuS: dbCpu === null ? null : round(dbCpu, 2),
      jobsPerTotalCpuS: totalCpu === null || totalCpu === 0 ? null : round(verified / totalCpu, 1),
      benchProcessCpuS: round((bench1.user + bench1.system) / 1e6, 2),
      loadAverageAtStart: round(loadAverageAtStart, 2),
      target: { jobsPerSecond: DISPATCH_TARGET_JOBS_PER_S, met: jobsPerSecond >= DISPATCH_TARGET_JOBS_PER_S },
    };
  } finally {
    await Promise.all(agents.map((a) => a.stop()));
    for (const c of coords) await c.stop();
    await db?.drop().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  }
}

/** Escrow of one trivial job in credits, as the coordinator prices it (quoted by a throw-away buyer). */
async function jobEscrow(coord: BenchCoordinator): Promise<number> {
  const { buyerKeys } = await createBenchAccounts(coord.url, coord.adminKey, 1, 0, 1);
  return (await new DeqoClient(coord.url, buyerKeys[0]!).quote(TRIVIAL_JOB)).escrow;
}

/** Total CPU seconds of the coordinator processes; null for an in-process coordinator. */
function coordinatorCpu(coords: readonly BenchCoordinator[]): number | null {
  let total = 0;
  for (const c of coords) {
    const s = c.pid === null ? null : processCpuSeconds(c.pid);
    if (s === null) return null;
    total += s;
  }
  return total;
}

/** Waits until `n` agents are online (60 s at most). */
async function waitOnline(client: DeqoClient, n: number): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const online = (await client.listProviders({ online: true })).filter((p) => p.online).length;
    if (online >= n) return;
    if (Date.now() > deadline) throw new Error(`only ${online} of ${n} simulated agents came online within 60 s`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
