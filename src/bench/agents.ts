/**
 * Agents benchmark: what idle agents cost a coordinator (issue 12). For each count N, a `deqo coordinator` process
 * (SQLite, `--metrics`) gets N simulated agents (sim-agent.ts, one provider account each) that only heartbeat (at the
 * coordinator's heartbeatIntervalMs) and long-poll claims over real HTTP. After a warm-up, two windows of
 * `idleSeconds` are measured:
 * - `empty`: nothing queued;
 * - `untakeable`: one job queued that no agent takes (1 µcr per execution and 0 per hour, a price no agent offers), so
 *   rounds are not skipped by the "no task wants an execution" check and read the online agents.
 * Each window gives the coordinator's CPU (from /proc, ms per s), the requests the agents sent per s, the scheduling
 * rounds' counters (deqo_scheduling_rounds_total), the event-loop delay p99 and max over the window
 * (nodejs_eventloop_lag_*: prom-client's monitorEventLoopDelay, reset at each scrape, 10 ms resolution) and the
 * latency of GET /v1/health sent every HEALTH_EVERY_MS by the benchmark.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeqoClient } from '../client/index.js';
import { createBenchAccounts, startCoordinatorProcess, type BenchCoordinator } from './coordinator-process.js';
import { SIM_CAPACITY, TRIVIAL_JOB } from './dispatch.js';
import { SimAgent, simAgents } from './sim-agent.js';
import { distribution, mapPool, processCpuSeconds, round, type Distribution } from './stats.js';

/** Options of the agents benchmark. */
export interface AgentsOptions {
  /** Simulated agents per point, ascending (default 100, 1,000). */
  counts: number[];
  /** Length of each measured window, s (default 10). */
  idleSeconds: number;
  /** Write the coordinator's V8 CPU profile (`--cpu-prof`) into this folder. */
  cpuProfDir?: string;
}

/** One measured window at one agent count. */
export interface AgentsWindow {
  /** Coordinator process CPU (user + system) per second, ms/s. */
  cpuMsPerS: number;
  /** Requests the simulated agents sent per second. */
  heartbeatsPerS: number;
  claimsPerS: number;
  /** Scheduling rounds counted per second: skipped (no agent with room) and read_queue. */
  roundsPerS: { skipped: number; readQueue: number };
  /** Event-loop delay of the coordinator over the window (monitorEventLoopDelay), ms. */
  eventLoopDelayMs: { p99: number; max: number };
  /** Latency of GET /v1/health during the window, ms. */
  healthMs: Distribution;
}

/** What the agents benchmark measured at one agent count. */
export interface AgentsPoint {
  agents: number;
  /** Seconds from the first registration to every agent online. */
  registerS: number;
  /** Failed agent requests over the whole point (registration, warm-up, both windows), and the first one's message. */
  agentErrors: number;
  firstAgentError: string | null;
  empty: AgentsWindow;
  untakeable: AgentsWindow;
  /** The issue's target: idle (empty) CPU at most TARGET_CPU_MS_PER_S at 1,000 agents or more. */
  targetMet: boolean | null;
}

/** What the agents benchmark measured. */
export interface AgentsResult {
  benchmark: 'agents';
  database: 'sqlite';
  idleSeconds: number;
  target: { agents: number; cpuMsPerS: number };
  curve: AgentsPoint[];
}

/** The issue's target: 1,000 idle agents cost the coordinator at most 10 ms of CPU per second. */
const TARGET = { agents: 1_000, cpuMsPerS: 10 };
/** 1 µcr per execution (the least a job may offer) and 0 per hour: below every agent's price. */
const CHEAP = { cpuHour: 0, memoryGiBHour: 0, gpuHour: 0, startFee: 0.000001 };
/** Warm-up after every agent is online, and after the untakeable job is submitted, ms. */
const WARMUP_MS = 6_000;
const SETTLE_MS = 3_000;
/** How often the benchmark times GET /v1/health, ms. */
const HEALTH_EVERY_MS = 200;

/** Runs the agents benchmark; see the file comment. */
export async function runAgents(o: AgentsOptions): Promise<AgentsResult> {
  const curve: AgentsPoint[] = [];
  for (const n of o.counts) curve.push(await measureAt(n, o));
  return { benchmark: 'agents', database: 'sqlite', idleSeconds: o.idleSeconds, target: TARGET, curve };
}

async function measureAt(n: number, o: AgentsOptions): Promise<AgentsPoint> {
  const dir = await mkdtemp(join(tmpdir(), 'deqo-bench-agents-'));
  const agents: SimAgent[] = [];
  let coord: BenchCoordinator | null = null;
  try {
    coord = await startCoordinatorProcess({
      dataDir: join(dir, 'coordinator'),
      adminKeyFile: join(dir, 'admin.key'),
      cpuProfDir: o.cpuProfDir,
      metrics: true,
    });
    const accounts = await createBenchAccounts(coord.url, coord.adminKey, 1, n, 100);
    let errors = 0;
    let firstError: string | null = null;
    agents.push(
      ...(await simAgents({
        dir,
        count: n,
        providerKeys: accounts.providerKeys,
        urlOf: () => coord!.url,
        capacity: SIM_CAPACITY,
        onError: (err) => {
          errors++;
          firstError ??= err.message;
        },
      })),
    );
    const t0 = Date.now();
    await mapPool(agents, 10, (a) => a.start());
    const registerS = round((Date.now() - t0) / 1000, 1);
    await sleep(WARMUP_MS);
    const empty = await measureWindow(coord, agents, o.idleSeconds);
    await new DeqoClient(coord.url, accounts.buyerKeys[0]!).submitJob({ ...TRIVIAL_JOB, maxPrice: CHEAP });
    await sleep(SETTLE_MS);
    const untakeable = await measureWindow(coord, agents, o.idleSeconds);
    return {
      agents: n,
      registerS,
      agentErrors: errors,
      firstAgentError: firstError,
      empty,
      untakeable,
      targetMet: n >= TARGET.agents ? empty.cpuMsPerS <= TARGET.cpuMsPerS : null,
    };
  } finally {
    await Promise.all(agents.map((a) => a.stop()));
    await coord?.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

/** Measures one window of `seconds` (see AgentsWindow). Throws when the coordinator's /proc or /metrics cannot be read. */
async function measureWindow(
  coord: BenchCoordinator,
  agents: readonly SimAgent[],
  seconds: number,
): Promise<AgentsWindow> {
  const sent = () => agents.reduce((s, a) => ({ h: s.h + a.sent.heartbeats, c: s.c + a.sent.claims }), { h: 0, c: 0 });
  const m0 = await scrape(coord.url); // also resets the event-loop delay histogram
  const cpu0 = cpuOf(coord);
  const s0 = sent();
  const t0 = performance.now();
  const health: number[] = [];
  const end = t0 + seconds * 1000;
  while (performance.now() < end) {
    const t = performance.now();
    const r = await fetch(`${coord.url}/v1/health`);
    await r.arrayBuffer();
    health.push(performance.now() - t);
    await sleep(Math.max(0, HEALTH_EVERY_MS - (performance.now() - t)));
  }
  const cpu1 = cpuOf(coord);
  const s1 = sent();
  const wallS = (performance.now() - t0) / 1000;
  const m1 = await scrape(coord.url);
  const perS = (a: number, b: number, digits = 1) => round((b - a) / wallS, digits);
  const rounds = (m: string, outcome: string) => metric(m, 'deqo_scheduling_rounds_total', `outcome="${outcome}"`);
  return {
    cpuMsPerS: perS(cpu0 * 1000, cpu1 * 1000),
    heartbeatsPerS: perS(s0.h, s1.h),
    claimsPerS: perS(s0.c, s1.c),
    roundsPerS: {
      skipped: perS(rounds(m0, 'skipped'), rounds(m1, 'skipped')),
      readQueue: perS(rounds(m0, 'read_queue'), rounds(m1, 'read_queue')),
    },
    eventLoopDelayMs: {
      p99: round(metric(m1, 'nodejs_eventloop_lag_p99_seconds') * 1000, 1),
      max: round(metric(m1, 'nodejs_eventloop_lag_max_seconds') * 1000, 1),
    },
    healthMs: distribution(health),
  };
}

function cpuOf(coord: BenchCoordinator): number {
  const s = coord.pid === null ? null : processCpuSeconds(coord.pid);
  if (s === null) throw new Error('cannot read the coordinator process CPU from /proc');
  return s;
}

async function scrape(url: string): Promise<string> {
  const r = await fetch(`${url}/metrics`);
  if (!r.ok) throw new Error(`GET /metrics answered ${r.status}`);
  return r.text();
}

/** The value of a sample in Prometheus text (`name{labels} value`, or `name value` without `labels`); throws when absent. */
export function metric(text: string, name: string, labels?: string): number {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    const m = /^(?:\{([^}]*)\})?\s+(\S+)/.exec(rest);
    if (!m) continue;
    if (labels === undefined ? m[1] !== undefined && m[1] !== '' : !(m[1] ?? '').includes(labels)) continue;
    return Number(m[2]);
  }
  throw new Error(`metric ${name}${labels ? `{${labels}}` : ''} not in /metrics`);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
