/**
 * Verification simulation over the real core code (not a copy of it): tasks arrive over time, the real
 * scheduler (core/scheduler.ts planExecutions) places executions on simulated providers, every report is
 * decided by the real verifier rule (core/verification.ts decideTask, gradeLateResult), and every outcome
 * moves the provider's record through the real reputation rules (core/reputation.ts applyOutcome,
 * reputationScore; runsAlone is drawn inside planExecutions). Runtime predictions come from
 * core/prediction.ts buildPredictor over the simulated runs.
 *
 * The world: `providers` machines with 1–4 cores and a speed factor in [0.6, 1.6); a share `cheaters` of
 * them corrupt each result with probability `corruptRate`. An honest result of a task is one hash, a corrupt
 * one another; without `collude` each cheater's wrong hash is its own, with `collude` all cheaters return the
 * same wrong hash for a task. Jobs of `tasksPerJob` tasks arrive as a Poisson process sized so that full
 * replication would keep `load` of the cores busy; an execution takes 10–30 min × the machine's speed.
 * Time advances in one-minute rounds: finished executions report, tasks are decided, then the scheduler plans.
 * No provider-side errors, outages or owner activity are modelled.
 *
 * An adaptive task the scheduler places alone (Placement.alone) is decided with quorum 1: its one result is
 * accepted unchecked, as an unreplicated job on a trusted host is in BOINC (set_trust in sched/sched_send.cpp).
 * Every other task uses `quorum` of `replicas` with the default cap on executions (replicas + 3). The snapshot
 * given to the scheduler holds the oldest open tasks that want executions, a few more than there are free cores.
 * Pure: no I/O, no clock; the same options give the same result.
 */
import {
  applyOutcome,
  buildPredictor,
  decideTask,
  defaultMaxExecutions,
  gradeLateResult,
  newReputation,
  planExecutions,
  reputationScore,
  ADAPTIVE_TRUST_THRESHOLD,
  type Demand,
  type ExecutionVote,
  type Predictor,
  type Reputation,
  type ReputationOutcome,
  type RuntimeSample,
  type SchedAgent,
  type SchedTask,
  type VerificationPolicy,
} from '../core/index.js';
import type { MaxPrice, Price } from '../protocol/index.js';
import { between, intBetween, mulberry32, shuffled, type Random } from './prng.js';

/** Verification modes compared by the simulation. */
export type SimMode = 'replicate' | 'adaptive';

/** Simulation settings. Shares in [0, 1]. */
export interface SimOptions {
  mode: SimMode;
  /** Tasks to run to a decision. */
  tasks: number;
  providers: number;
  /** Share of providers that cheat. */
  cheaters: number;
  /** Probability that a cheater corrupts a result (1 = always). */
  corruptRate: number;
  /** All cheaters return the same wrong hash for a task. */
  collude: boolean;
  seed: number;
  replicas: number;
  quorum: number;
  /** Arrival rate as a share of the cores that full replication would keep busy. */
  load: number;
  tasksPerJob: number;
}

export const DEFAULT_SIM_OPTIONS: Readonly<SimOptions> = Object.freeze({
  mode: 'replicate',
  tasks: 10_000,
  providers: 50,
  cheaters: 0.2,
  corruptRate: 1,
  collude: false,
  seed: 1,
  replicas: 3,
  quorum: 2,
  load: 0.6,
  tasksPerJob: 10,
});

/** What one run measured. */
export interface SimResult {
  options: SimOptions;
  /** Executions started (including replicas whose result came after the decision). */
  executions: number;
  executionsPerTask: number;
  /** Executions per task over the second half of the tasks (after providers had time to earn trust). */
  executionsPerTaskSecondHalf: number;
  /** Tasks the scheduler ran unreplicated (adaptive replication). */
  alone: number;
  verified: number;
  /** Verified tasks whose accepted result is wrong. */
  wrongAccepted: number;
  /** wrongAccepted / tasks. */
  wrongAcceptedShare: number;
  /** Tasks that failed (no quorum within the cap on executions). */
  failed: number;
  /** Tasks still undecided when the run stopped (should be 0). */
  unfinished: number;
  /** Share of executions that ran on cheaters. */
  cheaterExecutionShare: number;
  /** Share of all cores that belong to cheaters (the world drawn from the seed). */
  cheaterCoreShare: number;
  /** Providers with at least 10 consecutive cross-checked valid results at the end. */
  trustedAtEnd: { honest: number; cheaters: number };
  simulatedHours: number;
}

interface Provider {
  id: string;
  agentId: string;
  cores: number;
  speed: number;
  cheater: boolean;
  rep: Reputation;
  running: number;
  starts: number[];
  startsHead: number;
}
interface Exec {
  id: string;
  task: number;
  provider: number;
  start: number;
  end: number;
  verdict: string;
  state: 'running' | 'reported' | 'cancelled';
}
interface Task {
  id: string;
  jobId: string;
  jobCreatedAt: number;
  index: number;
  arrival: number;
  execs: number[];
  target: number;
  policy: VerificationPolicy;
  alone: boolean;
  state: 'open' | 'verified' | 'failed';
  verdict: string | null;
}

const MINUTE = 60_000;
const DAY = 24 * 60 * MINUTE;
const MEM_PER_CORE_MB = 2048;
const PRICE: Price = { cpuHour: 0.05, memoryGiBHour: 0.005, gpuHour: 0.5, startFee: 0.001 };
const MAX_PRICE: MaxPrice = { cpuHour: 0.1, memoryGiBHour: 0.01, gpuHour: 1, startFee: 0.002 };
const DEMAND: Demand = {
  cpus: 1,
  memoryMb: 512,
  gpus: 0,
  network: false,
  labels: {},
  maxPrice: MAX_PRICE,
  image: 'sim/work:1',
  timeoutMs: 2 * 3_600_000,
};
const BASE_MIN_MS = 10 * MINUTE;
const BASE_MAX_MS = 30 * MINUTE;

const correctHash = (t: Task) => `ok:${t.id}`;

/** Runs one simulation to the end. Throws RangeError on nonsensical options. */
export function simulate(input: Partial<SimOptions> & Pick<SimOptions, 'mode'>): SimResult {
  const o: SimOptions = { ...DEFAULT_SIM_OPTIONS, ...input };
  if (!(o.tasks >= 1 && o.providers >= o.replicas && o.quorum >= 1 && o.quorum <= o.replicas && o.load > 0)) {
    throw new RangeError('need tasks ≥ 1, providers ≥ replicas, 1 ≤ quorum ≤ replicas and load > 0');
  }
  // Separate streams: the world (providers, arrivals) is the same for every mode with the same seed.
  const world = mulberry32(o.seed);
  const chance = mulberry32(o.seed ^ 0x5bd1e995);
  const schedRandom = mulberry32(o.seed ^ 0x27d4eb2f);

  const cheaterCount = Math.round(o.cheaters * o.providers);
  const cheaterSet = new Set(shuffled(world, [...Array(o.providers).keys()]).slice(0, cheaterCount));
  const providers: Provider[] = Array.from({ length: o.providers }, (_, i) => {
    const id = `p${String(i).padStart(4, '0')}`;
    return {
      id,
      agentId: `a${id.slice(1)}`,
      cores: intBetween(world, 1, 4),
      speed: between(world, 0.6, 1.6),
      cheater: cheaterSet.has(i),
      rep: newReputation(),
      running: 0,
      starts: [],
      startsHead: 0,
    };
  });
  const tasks = arrivals(world, o, providers);
  const replicatedPolicy: VerificationPolicy = {
    quorum: o.quorum,
    maxExecutions: defaultMaxExecutions(o.replicas),
    maxErrors: 3,
    maxError: null,
  };
  const alonePolicy: VerificationPolicy = {
    quorum: 1,
    maxExecutions: defaultMaxExecutions(1),
    maxErrors: 3,
    maxError: null,
  };
  for (const t of tasks) t.policy = replicatedPolicy;

  const execs: Exec[] = [];
  let running: number[] = [];
  let open: number[] = [];
  let arrived = 0;
  let decided = 0;
  let wrongAccepted = 0;
  let alone = 0;
  const samples: RuntimeSample[] = [];
  let predict: Predictor = buildPredictor([]);
  let predictorBuiltAt = 0;

  const outcome = (e: Exec, kind: 'valid' | 'invalid', crossChecked: boolean) => {
    const p = providers[e.provider]!;
    const o2: ReputationOutcome =
      kind === 'valid'
        ? { kind, crossChecked, confirmed: false, turnaroundMs: e.end - e.start }
        : { kind, turnaroundMs: e.end - e.start };
    p.rep = applyOutcome(p.rep, o2);
  };
  const execByIdNum = (id: string) => Number(id.slice(1));
  const votes = (t: Task): ExecutionVote[] =>
    t.execs.map((i) => {
      const e = execs[i]!;
      const who = { providerId: providers[e.provider]!.id, credibility: 0.8, established: false };
      return e.state === 'reported'
        ? { id: e.id, state: 'reported', verdict: e.verdict, exitCode: 0, failure: null, at: e.end, ...who }
        : { id: e.id, state: e.state, verdict: null, exitCode: null, failure: null, at: e.start, ...who };
    });

  const report = (e: Exec) => {
    e.state = 'reported';
    providers[e.provider]!.running -= 1;
    samples.push({
      agentId: providers[e.provider]!.agentId,
      image: DEMAND.image,
      cpus: DEMAND.cpus,
      wallMs: e.end - e.start,
    });
    const t = tasks[e.task]!;
    if (t.state !== 'open') {
      // a replica reporting after its task was decided is graded against the canonical result
      outcome(e, gradeLateResult(t.verdict, e.verdict), true);
      return;
    }
    const d = decideTask(t.policy, t.target, votes(t));
    if (d.kind === 'pending') {
      t.target = d.target;
      return;
    }
    t.state = d.kind;
    t.verdict = d.verdict;
    decided += 1;
    if (d.kind === 'verified' && d.verdict !== correctHash(t)) wrongAccepted += 1;
    for (const id of d.valid) outcome(execs[execByIdNum(id)]!, 'valid', d.valid.length > 1);
    for (const id of d.invalid) outcome(execs[execByIdNum(id)]!, 'invalid', false);
    for (const id of d.cancel) {
      const c = execs[execByIdNum(id)]!;
      if (c.state === 'running') {
        c.state = 'cancelled';
        providers[c.provider]!.running -= 1;
      }
    }
  };

  const quotaLeft = (p: Provider, now: number) => {
    while (p.startsHead < p.starts.length && p.starts[p.startsHead]! <= now - DAY) p.startsHead += 1;
    return p.rep.dailyQuota - (p.starts.length - p.startsHead);
  };

  let now = 0;
  const maxTime = tasks.at(-1)!.arrival + 60 * DAY;
  while (decided < tasks.length && now <= maxTime) {
    // 1. Reports of executions that finished by now, in order.
    const done = running.filter((i) => execs[i]!.end <= now).sort((a, b) => execs[a]!.end - execs[b]!.end || a - b);
    running = running.filter((i) => execs[i]!.end > now);
    for (const i of done) if (execs[i]!.state === 'running') report(execs[i]!);
    running = running.filter((i) => execs[i]!.state === 'running');
    // 2. Arrivals.
    while (arrived < tasks.length && tasks[arrived]!.arrival <= now) open.push(arrived++);
    open = open.filter((i) => tasks[i]!.state === 'open');
    // 3. Plan.
    if (now - predictorBuiltAt >= 60 * MINUTE) {
      predict = buildPredictor(samples.slice(-2000));
      predictorBuiltAt = now;
    }
    const freeCores = providers.reduce((s, p) => s + p.cores - p.running, 0);
    let placed = 0;
    if (freeCores > 0 && open.length > 0) {
      const snapshot: SchedTask[] = [];
      for (const i of open) {
        const t = tasks[i]!;
        const active = t.execs.filter((x) => execs[x]!.state !== 'cancelled').length;
        const need = t.target - active;
        if (need <= 0) continue;
        snapshot.push({
          taskId: String(i),
          jobId: t.jobId,
          jobCreatedAt: t.jobCreatedAt,
          index: t.index,
          need,
          demand: DEMAND,
          excludedProviders: t.execs.map((x) => providers[execs[x]!.provider]!.id),
          adaptiveFresh: o.mode === 'adaptive' && t.execs.length === 0,
        });
        if (snapshot.length >= freeCores + 16) break;
      }
      const agents: SchedAgent[] = providers.map((p) => ({
        agentId: p.agentId,
        providerId: p.id,
        name: p.id,
        online: true,
        availability: 'available',
        totalCpus: p.cores,
        freeCpus: p.cores - p.running,
        totalMemoryMb: p.cores * MEM_PER_CORE_MB,
        freeMemoryMb: (p.cores - p.running) * MEM_PER_CORE_MB,
        gpuModels: [],
        freeGpus: 0,
        arch: 'amd64',
        os: 'linux',
        allowNetwork: false,
        credibility: 0.8,
        established: p.rep.consecutiveValid >= 10,
        cohort: 0,
        prefix: '',
        labels: {},
        prices: PRICE,
        reputation: reputationScore(p.rep),
        consecutiveValid: p.rep.consecutiveValid,
        quotaLeft: quotaLeft(p, now),
        running: p.running,
      }));
      const byAgent = new Map(providers.map((p, i) => [p.agentId, i]));
      for (const pl of snapshot.length > 0 ? planExecutions(snapshot, agents, { random: schedRandom, predict }) : []) {
        const ti = Number(pl.taskId);
        const t = tasks[ti]!;
        const pi = byAgent.get(pl.agentId)!;
        const p = providers[pi]!;
        const corrupt = p.cheater && chance() < o.corruptRate;
        const verdict = !corrupt ? correctHash(t) : o.collude ? `bad:${t.id}` : `bad:${t.id}:${p.id}`;
        const dur = Math.max(MINUTE, Math.round(between(chance, BASE_MIN_MS, BASE_MAX_MS) * p.speed));
        const id = execs.length;
        execs.push({ id: `e${id}`, task: ti, provider: pi, start: now, end: now + dur, verdict, state: 'running' });
        running.push(id);
        t.execs.push(id);
        p.running += 1;
        p.starts.push(now);
        placed += 1;
        if (pl.alone) {
          t.alone = true;
          t.policy = alonePolicy;
          t.target = 1;
          alone += 1;
        }
      }
    }
    // 4. Next round: the next minute with something to do.
    const nextEnd = running.reduce((m, i) => Math.min(m, execs[i]!.end), Infinity);
    const nextArrival = arrived < tasks.length ? tasks[arrived]!.arrival : Infinity;
    let next = Math.min(nextEnd, nextArrival);
    if (!Number.isFinite(next) || (placed === 0 && running.length === 0 && open.length > 0 && next > now + 60 * MINUTE))
      next = now + 60 * MINUTE;
    now = Math.max(now + MINUTE, Math.ceil(next / MINUTE) * MINUTE);
  }

  const half = Math.floor(tasks.length / 2);
  const countExecs = (ts: Task[]) => ts.reduce((s, t) => s + t.execs.length, 0);
  const verified = tasks.filter((t) => t.state === 'verified').length;
  const failed = tasks.filter((t) => t.state === 'failed').length;
  const trusted = (cheater: boolean) =>
    providers.filter((p) => p.cheater === cheater && p.rep.consecutiveValid >= ADAPTIVE_TRUST_THRESHOLD).length;
  return {
    options: o,
    executions: execs.length,
    executionsPerTask: execs.length / tasks.length,
    executionsPerTaskSecondHalf: countExecs(tasks.slice(half)) / (tasks.length - half),
    alone,
    verified,
    wrongAccepted,
    wrongAcceptedShare: wrongAccepted / tasks.length,
    failed,
    unfinished: tasks.length - verified - failed,
    cheaterExecutionShare:
      execs.length === 0 ? 0 : execs.filter((e) => providers[e.provider]!.cheater).length / execs.length,
    cheaterCoreShare:
      providers.reduce((s, p) => s + (p.cheater ? p.cores : 0), 0) / providers.reduce((s, p) => s + p.cores, 0),
    trustedAtEnd: { honest: trusted(false), cheaters: trusted(true) },
    simulatedHours: now / 3_600_000,
  };
}

/** Tasks in arrival order: jobs of `tasksPerJob` arriving as a Poisson process at `load` of replicated capacity. */
function arrivals(world: Random, o: SimOptions, providers: readonly Provider[]): Task[] {
  const cores = providers.reduce((s, p) => s + p.cores, 0);
  const meanRunMs = ((BASE_MIN_MS + BASE_MAX_MS) / 2) * (providers.reduce((s, p) => s + p.cores * p.speed, 0) / cores);
  const tasksPerMs = (o.load * cores) / (o.replicas * meanRunMs);
  const jobGapMs = o.tasksPerJob / tasksPerMs;
  const out: Task[] = [];
  let at = 0;
  for (let j = 0; out.length < o.tasks; j++) {
    const jobId = `j${j}`;
    for (let k = 0; k < o.tasksPerJob && out.length < o.tasks; k++) {
      out.push({
        id: `t${out.length}`,
        jobId,
        jobCreatedAt: at,
        index: k,
        arrival: at,
        execs: [],
        target: o.replicas,
        policy: { quorum: o.quorum, maxExecutions: defaultMaxExecutions(o.replicas), maxErrors: 3, maxError: null },
        alone: false,
        state: 'open',
        verdict: null,
      });
    }
    at += Math.round(-Math.log(1 - world()) * jobGapMs);
  }
  return out;
}
