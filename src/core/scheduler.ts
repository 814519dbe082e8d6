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
 * fewest running executions, then agent id (deterministic). Tasks are served in their fair order (`rank`, core/queue.ts),
 * then oldest job first, by index.
 *
 * Adaptive replication: for a task in `adaptive` mode with no execution yet, if the best agent's provider has
 * earned trust (core/reputation.ts runsAlone), the task runs there alone; otherwise it is replicated.
 */
import { hourlyRate } from './pricing.js';
import { rejections, staticRejections, type Demand, type SchedAgent } from './matching.js';
import { retryDue, type RetryBackoff } from './faults.js';
import { runsAlone } from './reputation.js';
import { hasRoom } from './queue.js';

export type { SchedAgent } from './matching.js';

/** A task that wants `need` more executions. */
export interface SchedTask {
  taskId: string;
  jobId: string;
  jobCreatedAt: number;
  index: number;
  need: number;
  demand: Demand;
  /** Providers that hold a replica of this task (assigned, running, reported, graded): never another one. */
  excludedProviders: readonly string[];
  /**
   * Providers whose executions of this task only failed on their side (lost, crashed): used again only when no
   * other provider can take it (the only eligible machine may retry; maxErrors bounds it).
   */
  retryProviders?: readonly string[];
  /** An `adaptive` task with no execution yet: it may run alone on a trusted provider. */
  adaptiveFresh: boolean;
  /** Results needed to accept the task (1: a result is accepted alone). */
  quorum?: number;
  /** The task's error bound ε (null: quorum voting): adaptive runs alone only on a provider of credibility ≥ 1 − ε. */
  maxError?: number | null;
  /** Its place in the round's fair order across buyers (core/queue.ts fairOrder); tasks without one come after. */
  rank?: number;
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
  quorum: number;
  maxError: number | null;
  /** For the platform's re-verification of a task: that task (its providers may not re-verify it). */
  replayOf: string | null;
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
export function tasksWanting<T extends OpenTask>(
  open: readonly T[],
  retry: { now: number; backoff: RetryBackoff } | null,
  limit = Number.MAX_SAFE_INTEGER,
): Array<T & { need: number }> {
  const out: Array<T & { need: number }> = [];
  for (const t of open) {
    if (out.length >= limit) break;
    const need = executionsWanted(t);
    if (need <= 0) continue;
    if (retry && !retryDue(t.failures, t.lastFailureAt, retry.now, retry.backoff)) continue;
    out.push({ ...t, need });
  }
  return out;
}

/** Execution states that hold a provider's place in a task: it may not run another replica of it. */
const REPLICA_STATES: ReadonlySet<string> = new Set(['assigned', 'running', 'reported', 'valid', 'invalid']);

/**
 * The scheduler's task for a wanting open task, given every execution it had (provider and state): providers with a
 * replica are excluded, those that only failed on their side may retry when nobody else can.
 */
export function schedTaskOf(
  t: OpenTask & { need: number },
  executions: ReadonlyArray<{ providerId: string; state: string }>,
): SchedTask {
  const excluded = new Set(executions.filter((e) => REPLICA_STATES.has(e.state)).map((e) => e.providerId));
  const retry = new Set(executions.map((e) => e.providerId).filter((p) => !excluded.has(p)));
  return {
    taskId: t.taskId,
    jobId: t.jobId,
    jobCreatedAt: t.jobCreatedAt,
    index: t.index,
    need: t.need,
    demand: t.demand,
    excludedProviders: [...excluded],
    retryProviders: [...retry],
    adaptiveFresh: t.adaptive && t.total === 0,
    quorum: t.quorum,
    maxError: t.maxError,
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

/** How strongly price and predicted time steer the random draw: weight ∝ e^(−PRICE_STEER·(score − best score)). */
export const PRICE_STEER = 1;

/**
 * The draw among candidates: weighted by credibility² and by rank (cheaper, faster and more reputable agents weigh
 * more, e^(−(score − best))), one draw of `random` in [0, 1). Candidates are ordered heaviest first (ties: most free
 * CPU share, fewest running, agent id), so a draw of 0 takes the best-ranked one.
 */
function draw(candidates: SchedAgent[], scores: ReadonlyMap<string, number>, random: () => number): SchedAgent {
  const best = Math.min(...candidates.map((a) => scores.get(a.agentId) ?? 0));
  const weighted = candidates
    .map((a) => ({
      a,
      w: Math.max(1e-6, a.credibility) ** 2 * Math.exp(-PRICE_STEER * ((scores.get(a.agentId) ?? best) - best)),
    }))
    .sort(
      (x, y) =>
        y.w - x.w ||
        y.a.freeCpus / y.a.totalCpus - x.a.freeCpus / x.a.totalCpus ||
        x.a.running - y.a.running ||
        x.a.agentId.localeCompare(y.a.agentId),
    );
  const total = weighted.reduce((s, x) => s + x.w, 0);
  let r = random() * total;
  for (const x of weighted) {
    r -= x.w;
    if (r < 0) return x.a;
  }
  return weighted[0]!.a;
}

/** `xs` narrowed by `keep`, unless that leaves nothing (a preference, not a constraint). */
const prefer = <T>(xs: T[], keep: (x: T) => boolean): T[] => {
  const kept = xs.filter(keep);
  return kept.length > 0 ? kept : xs;
};

/**
 * Plans new executions. Pure apart from calling `opts.random` / `opts.predict`: the inputs are not modified.
 * Rankings are computed once per distinct demand and only for tasks some agent can take, and planning stops
 * once no agent has room, so a long queue costs little more than the placements it gets.
 *
 * Placement an attacker cannot steer (Sarmenta §6, BOINC's one_result_per_user_per_wu as the floor): each replica is
 * drawn at random among the eligible agents, weighted by credibility and rank (`draw`), never from a provider that
 * holds a replica of the task; among those, agents whose provider shares no registration cohort or network prefix
 * with the task's other replicas are preferred; a task's first replica goes to an established provider, and waits for
 * one while an established provider that could take it is online (probation: newcomers are never a task's whole
 * quorum while established providers are there). A
 * provider whose execution of the task failed on its side is used again only when nobody else can take it.
 */
export function planExecutions(
  tasks: readonly SchedTask[],
  agents: readonly SchedAgent[],
  opts: PlanOptions,
): Placement[] {
  const free = agents.map((a) => ({ ...a }));
  let withRoom = free.filter(hasRoom).length;
  const unranked = Number.MAX_SAFE_INTEGER;
  const order = [...tasks].sort(
    (a, b) =>
      (a.rank ?? unranked) - (b.rank ?? unranked) ||
      a.jobCreatedAt - b.jobCreatedAt ||
      a.jobId.localeCompare(b.jobId) ||
      a.index - b.index,
  );
  const scoresByDemand = new Map<string, Map<string, number>>();
  const plan: Placement[] = [];
  const byProvider = new Map(agents.map((a) => [a.providerId, a]));
  for (const t of order) {
    if (withRoom === 0) break;
    const used = new Set(t.excludedProviders);
    const retry = new Set(t.retryProviders ?? []);
    const peers = t.excludedProviders.flatMap((p) => {
      const a = byProvider.get(p);
      return a ? [a] : [];
    });
    let established = peers.some((a) => a.established);
    for (let k = 0; k < t.need; k++) {
      const eligible = free.filter((a) => !used.has(a.providerId) && rejections(t.demand, a).length === 0);
      // A provider that failed this task retries it only when no other online provider could ever take it (busy
      // ones will free up): the only eligible machine may retry, bounded by maxErrors.
      const others = free.some(
        (a) =>
          a.online && !used.has(a.providerId) && !retry.has(a.providerId) && staticRejections(t.demand, a).length === 0,
      );
      let feasible = others ? eligible.filter((a) => !retry.has(a.providerId)) : eligible;
      if (feasible.length === 0) break;
      const key = rankKey(t.demand);
      let scores = scoresByDemand.get(key);
      if (!scores) {
        scores = rankScores(t.demand, agents, opts.predict);
        scoresByDemand.set(key, scores);
      }
      feasible = prefer(feasible, (a) =>
        peers.every((p) => p.cohort !== a.cohort && (p.prefix === '' || p.prefix !== a.prefix)),
      );
      if (!established) {
        // Probation: while an established provider that could take the task is online, the task waits for one
        // rather than letting newcomers (perhaps one party's accounts) be its whole quorum.
        const waitFor = free.some(
          (a) =>
            a.established &&
            a.online &&
            a.availability === 'available' &&
            a.quotaLeft > 0 &&
            !used.has(a.providerId) &&
            staticRejections(t.demand, a).length === 0,
        );
        feasible = waitFor ? feasible.filter((a) => a.established) : feasible;
        if (feasible.length === 0) break;
      }
      const pick = draw(feasible, scores, opts.random);
      pick.freeCpus -= t.demand.cpus;
      pick.freeMemoryMb -= t.demand.memoryMb;
      pick.freeGpus -= t.demand.gpus;
      pick.freeDiskMb -= t.demand.diskMb ?? 0;
      pick.quotaLeft -= 1;
      pick.running += 1;
      if (!hasRoom(pick)) withRoom--;
      used.add(pick.providerId);
      peers.push(pick);
      established ||= pick.established;
      const trusted =
        pick.established && (t.maxError === null || t.maxError === undefined || pick.credibility >= 1 - t.maxError);
      const alone = k === 0 && t.adaptiveFresh && trusted && runsAlone(pick.consecutiveValid, opts.random());
      plan.push({ taskId: t.taskId, agentId: pick.agentId, providerId: pick.providerId, alone });
      if (alone) break;
    }
  }
  return plan;
}
