/**
 * The scheduler: a pure function from a snapshot (tasks wanting executions, agents with their offers and
 * free capacity) to a plan (which agent gets which new execution). Constraints first, then rank.
 *
 * Constraints: core/matching.ts (resources, arch, OS, GPUs, labels, network, price, reputation, picked
 * providers, online, window, owner, capacity, quota), and never a provider that already has (or had) an
 * execution of the same task — replicas stay independent, and a provider that failed a task does not get it
 * again (Bacalhau/Nomad practice).
 *
 * Rank (lower score first): `cost/cheapest + time/fastest + 2 × (1 − reputation)` among the feasible agents,
 * where cost is the expected cost of the execution at the agent's prices over its predicted runtime and time
 * is that predicted runtime (core/prediction.ts). Ties go to the most free CPU share (spreads load), then the
 * fewest running executions, then agent id (deterministic). Tasks are served oldest job first, by index.
 *
 * Adaptive replication: for a task in `adaptive` mode with no execution yet, if the best agent's provider has
 * earned trust (core/reputation.ts runsAlone), the task runs there alone; otherwise it is replicated.
 */
import { hourlyRate } from './pricing.js';
import { rejections, type Demand, type SchedAgent } from './matching.js';
import { retryDue, type RetryBackoff } from './faults.js';
import { runsAlone } from './reputation.js';

export type { SchedAgent } from './matching.js';

/** A task that wants `need` more executions. */
export interface SchedTask {
  taskId: string;
  jobId: string;
  jobCreatedAt: number;
  index: number;
  need: number;
  demand: Demand;
  /** Providers that already have or had an execution of this task. */
  excludedProviders: readonly string[];
  /** An `adaptive` task with no execution yet: it may run alone on a trusted provider. */
  adaptiveFresh: boolean;
}

/** An open task as the store reads it for scheduling: its policy and the counts of its executions. */
export interface OpenTask {
  taskId: string;
  jobId: string;
  jobCreatedAt: number;
  index: number;
  revision: number;
  target: number;
  maxExecutions: number;
  funded: number;
  adaptive: boolean;
  demand: Demand;
  /** Executions assigned, running or reported. */
  active: number;
  /** Executions ever placed. */
  total: number;
  /** Executions lost or failed on the provider side, and when the latest ended (ms). */
  failures: number;
  lastFailureAt: number | null;
}

/**
 * Executions a task wants now: as many as its target asks beyond those active, bounded by the cap on executions
 * per task and by what escrow funds (min(target − active, maxExecutions − total, funded − active)).
 */
export function executionsWanted(
  t: Pick<OpenTask, 'target' | 'active' | 'maxExecutions' | 'total' | 'funded'>,
): number {
  return Math.min(t.target - t.active, t.maxExecutions - t.total, t.funded - t.active);
}

/**
 * The open tasks that want executions now, as the scheduler's input (in the order given), at most `limit`.
 * With `retry`, a task whose executions were lost or failed provider-side waits out its backoff (faults.ts
 * retryDue) first. `excluded` gives the providers that already have (or had) an execution of each task.
 */
export function tasksWanting(
  open: readonly OpenTask[],
  retry: { now: number; backoff: RetryBackoff } | null,
  limit = Number.MAX_SAFE_INTEGER,
): Array<OpenTask & { need: number }> {
  const out: Array<OpenTask & { need: number }> = [];
  for (const t of open) {
    if (out.length >= limit) break;
    const need = executionsWanted(t);
    if (need <= 0) continue;
    if (retry && !retryDue(t.failures, t.lastFailureAt, retry.now, retry.backoff)) continue;
    out.push({ ...t, need });
  }
  return out;
}

/** The scheduler's task for a wanting open task, given the providers that already ran it. */
export function schedTaskOf(t: OpenTask & { need: number }, excludedProviders: readonly string[]): SchedTask {
  return {
    taskId: t.taskId,
    jobId: t.jobId,
    jobCreatedAt: t.jobCreatedAt,
    index: t.index,
    need: t.need,
    demand: t.demand,
    excludedProviders,
    adaptiveFresh: t.adaptive && t.total === 0,
  };
}

/** What a task placed alone (adaptive replication) becomes: it needs only that one result. */
export const RUN_ALONE = Object.freeze({ target: 1, quorum: 1, alone: true });

/** One new execution of `taskId` on `agentId`; `alone` when adaptive replication trusts it unreplicated. */
export interface Placement {
  taskId: string;
  agentId: string;
  providerId: string;
  alone: boolean;
}

/** Predicted runtime of an image with `cpus` cores on an agent, ms; null when unknown. */
export type Predictor = (agentId: string, image: string, cpus: number) => number | null;

/** Scheduler inputs that are not the snapshot: a random source in [0, 1) (adaptive draws) and the runtime predictor. */
export interface PlanOptions {
  random: () => number;
  predict: Predictor;
}

/** Weight of the reputation term in the rank score (price and time weigh 1 each). */
export const REPUTATION_WEIGHT = 2;

/**
 * Rank scores of agents for a demand (lower is better): normalized expected cost and predicted time plus
 * the reputation term. Agents with no prediction get the median of the known ones (or the job's timeout).
 */
export function rankScores(d: Demand, agents: readonly SchedAgent[], predict: Predictor): Map<string, number> {
  const known = agents
    .map((a) => predict(a.agentId, d.image, d.cpus))
    .filter((x): x is number => x !== null)
    .sort((x, y) => x - y);
  const fallback = known.length > 0 ? known[Math.floor(known.length / 2)]! : d.timeoutMs;
  const reserved = { cpus: d.cpus, memoryMb: d.memoryMb, gpus: d.gpus };
  const rows = agents.map((a) => {
    const ms = Math.max(1, predict(a.agentId, d.image, d.cpus) ?? fallback);
    return { a, ms, cost: a.prices.startFee + hourlyRate(a.prices, reserved) * (ms / 3_600_000) };
  });
  const minCost = Math.max(1e-9, Math.min(...rows.map((r) => r.cost)));
  const minMs = Math.min(...rows.map((r) => r.ms));
  return new Map(
    rows.map((r) => [
      r.a.agentId,
      Math.max(1, r.cost / minCost) + r.ms / minMs + REPUTATION_WEIGHT * (1 - r.a.reputation),
    ]),
  );
}

/** What rankScores reads of a demand: tasks with the same key share one ranking. */
const rankKey = (d: Demand): string =>
  `${d.image}\u0000${d.cpus}\u0000${d.memoryMb}\u0000${d.gpus}\u0000${d.timeoutMs}`;

/** Whether an agent could take another execution of some task: every demand asks for some CPU (ResourcesSchema: cpus > 0). */
const hasRoom = (a: SchedAgent): boolean =>
  a.online && a.availability === 'available' && a.freeCpus > 1e-9 && a.quotaLeft > 0;

/**
 * Plans new executions. Pure apart from calling `opts.random` / `opts.predict`: the inputs are not modified.
 * Rankings are computed once per distinct demand and only for tasks some agent can take, and planning stops
 * once no agent has room, so a long queue costs little more than the placements it gets.
 */
export function planExecutions(
  tasks: readonly SchedTask[],
  agents: readonly SchedAgent[],
  opts: PlanOptions,
): Placement[] {
  const free = agents.map((a) => ({ ...a }));
  let withRoom = free.filter(hasRoom).length;
  const order = [...tasks].sort(
    (a, b) => a.jobCreatedAt - b.jobCreatedAt || a.jobId.localeCompare(b.jobId) || a.index - b.index,
  );
  const scoresByDemand = new Map<string, Map<string, number>>();
  const plan: Placement[] = [];
  for (const t of order) {
    if (withRoom === 0) break;
    const used = new Set(t.excludedProviders);
    for (let k = 0; k < t.need; k++) {
      const feasible = free.filter((a) => !used.has(a.providerId) && rejections(t.demand, a).length === 0);
      if (feasible.length === 0) break;
      const key = rankKey(t.demand);
      let scores = scoresByDemand.get(key);
      if (!scores) {
        scores = rankScores(t.demand, agents, opts.predict);
        scoresByDemand.set(key, scores);
      }
      feasible.sort(
        (a, b) =>
          scores.get(a.agentId)! - scores.get(b.agentId)! ||
          b.freeCpus / b.totalCpus - a.freeCpus / a.totalCpus ||
          a.running - b.running ||
          a.agentId.localeCompare(b.agentId),
      );
      const pick = feasible[0]!;
      pick.freeCpus -= t.demand.cpus;
      pick.freeMemoryMb -= t.demand.memoryMb;
      pick.freeGpus -= t.demand.gpus;
      pick.quotaLeft -= 1;
      pick.running += 1;
      if (!hasRoom(pick)) withRoom--;
      used.add(pick.providerId);
      const alone = k === 0 && t.adaptiveFresh && runsAlone(pick.consecutiveValid, opts.random());
      plan.push({ taskId: t.taskId, agentId: pick.agentId, providerId: pick.providerId, alone });
      if (alone) break;
    }
  }
  return plan;
}
