/**
 * Scheduling: one round reads a snapshot (open tasks, online agents), lets the pure scheduler plan
 * (core/scheduler.ts), and applies the plan in one transaction with conditional writes — the one applier of a pure
 * plan, after Nomad's `plan_apply.go`. Rounds run on request (submit, report, register, the empty claim of an agent that was offline) and on the
 * tick; one at a time per coordinator, and across coordinators under `store.exclusive('schedule')`. A round reads the
 * agents first and stops there when none has room, and reads a bounded, fairly chosen set of tasks otherwise, so its
 * cost does not grow with the queue (`snapshot`).
 */
import {
  buildPredictor,
  fairClassOrder,
  fairOrder,
  hasRoom,
  planExecutions,
  PROBE_PAIR,
  probesWanting,
  queueClasses,
  slotsFor,
  RUN_ALONE,
  schedTaskOf,
  tasksWanting,
  type OpenTask,
  type Placement,
  type Predictor,
  type SchedAgent,
  type SchedTask,
} from '../core/index.js';
import type { Price } from '../protocol/index.js';
import { Effects } from './effects.js';
import type { EngineResources } from './resources.js';
import type { SpotCheckSystem } from './spotchecks.js';
import type { VerificationSystem } from './verification.js';

/** A round's input: when it was taken (ms), the scheduler's tasks and agents, agents' prices, the open tasks read. */
export interface SchedulingSnapshot {
  now: number;
  tasks: SchedTask[];
  agents: SchedAgent[];
  prices: Map<string, Price>;
  /** `probePair`: the open task is a job's determinism probe wanting that pair (core/probe.ts), placed as two executions. */
  open: Array<OpenTask & { need: number; probePair?: number }>;
}

/** Most tasks one round considers. */
const ROUND_TASKS = 5_000;
/**
 * Tasks a round reads of one class: CLASS_READ_FACTOR × the executions agents could start of it, plus CLASS_READ_MIN —
 * room for tasks the planner passes over (a provider that already ran them, probation, backoff).
 */
const CLASS_READ_FACTOR = 4;
const CLASS_READ_MIN = 16;

/** Rounds requested and what became of them: skipped before reading the queue (no agent with room), or read it. */
export interface RoundCounts {
  skipped: number;
  queueReads: number;
}

export class SchedulingSystem {
  private running: Promise<void> | null = null;
  private again = false;
  private predictorCache: { built: number; predict: Predictor } | null = null;
  /** Rounds since start: skipped with no agent able to take work, or that read the queue (for tests and metrics). */
  readonly counts: RoundCounts = { skipped: 0, queueReads: 0 };
  /** Long-polling claims waiting for work, per agent. */
  private readonly waiters = new Map<string, Set<() => void>>();

  constructor(
    private readonly r: EngineResources,
    private readonly verification: VerificationSystem,
    private readonly spotChecks: SpotCheckSystem,
  ) {}

  /** Runs a round now, or once more after the running round if one is in progress. */
  request(): void {
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = (async () => {
      do {
        this.again = false;
        try {
          await this.round();
        } catch (err) {
          this.r.log.error({ err }, 'scheduling failed');
        }
      } while (this.again);
    })().finally(() => {
      this.running = null;
    });
  }

  /** Runs a round and waits for it (and any round it queued) to finish. */
  async schedule(): Promise<void> {
    this.request();
    await this.running;
  }

  /** Waits for the round in progress, if any. */
  async idle(): Promise<void> {
    await this.running;
  }

  /** The runtime predictor, rebuilt from recent valid executions every predictorRefreshMs. */
  async predictor(): Promise<Predictor> {
    const now = this.r.now();
    if (!this.predictorCache || now - this.predictorCache.built >= this.r.config.predictorRefreshMs) {
      this.predictorCache = { built: now, predict: buildPredictor(await this.r.store.snapshot.runtimeSamples(2_000)) };
    }
    return this.predictorCache.predict;
  }

  /** Resolves `wake` when the agent gets work here or on another coordinator; returns a function that stops waiting. */
  waitForWork(agentId: string, wake: () => void): () => void {
    const set = this.waiters.get(agentId) ?? new Set();
    set.add(wake);
    this.waiters.set(agentId, set);
    return () => set.delete(wake);
  }

  /** Wakes the agent's long-polling claims. */
  wake(agentId: string): void {
    const set = this.waiters.get(agentId);
    if (!set) return;
    this.waiters.delete(agentId);
    for (const w of set) w();
  }

  /** Wakes every waiting claim (the engine is stopping). */
  wakeAll(): void {
    for (const id of [...this.waiters.keys()]) this.wake(id);
  }

  /** One round under `store.exclusive('schedule')`: snapshot → plan → apply. Returns the agents that got work. */
  round(): Promise<Set<string>> {
    return this.r.store.exclusive('schedule', async () => {
      const snap = await this.snapshot(this.r.now());
      if (!snap) return new Set<string>();
      return this.apply(await this.plan(snap), snap);
    });
  }

  /**
   * What a round plans from, or null (no round) when no task or probe wants an execution, no online agent has room or
   * no task can be placed. Read in that order: the pending determinism probes that want a pair (core/probe.ts; placed
   * first) and whether a task wants an execution (the first row found); the online agents and their executions; then
   * the open jobs (job rows, not tasks; none whose probe is pending), grouped into classes (buyer × demand,
   * core/queue.ts). Classes no agent can take now are skipped; the rest, in fair order (the buyer with the fewest
   * running executions first), give up to CLASS_READ_FACTOR × their slots of wanting tasks each, at most ROUND_TASKS
   * in all (all of them in one read when that many are open), which core orders fairly across buyers for the planner
   * (`rank`).
   */
  async snapshot(now: number): Promise<SchedulingSnapshot | null> {
    const { store, config, policy } = this.r;
    const retry = { now, backoff: { baseMs: config.retryBackoffMs, maxMs: config.retryBackoffMaxMs } };
    const tasksWant = await store.snapshot.anyTaskWanting();
    // Pending determinism probes, placed first (few: read by the index on jobs.probe); their jobs' tasks are held.
    const probes = probesWanting(await store.snapshot.openProbes(), retry);
    if (probes.length === 0 && !tasksWant) return null;
    const {
      agents,
      prices,
      runningByBuyer: running,
    } = await store.snapshot.agents(now, now - config.agentTtlMs, false, policy);
    if (!agents.some(hasRoom)) {
      this.counts.skipped++;
      return null;
    }
    const candidates: Array<OpenTask & { need: number; buyerId: string }> = [];
    if (tasksWant) {
      this.counts.queueReads++;
      const classes = fairClassOrder(queueClasses(await store.snapshot.openJobs()), running);
      const slotsOf = new Map<string, number>(); // by demand: buyers with the same demand share one count
      const takeable = classes.filter((c) => {
        const slots = slotsOf.get(c.demandKey) ?? slotsFor(c.demand, agents);
        slotsOf.set(c.demandKey, slots);
        return slots > 0;
      });
      const jobs = takeable.flatMap((c) => c.jobs);
      const left = ROUND_TASKS - probes.length;
      if (jobs.reduce((n, j) => n + j.openTasks, 0) <= left) {
        // A short queue: every takeable task in one read (a statement per 500 jobs).
        candidates.push(...tasksWanting(await store.snapshot.wantingTasks(jobs, left), retry));
      } else {
        for (const c of takeable) {
          const rest = left - candidates.length;
          if (rest <= 0) break;
          const limit = Math.min(rest, CLASS_READ_FACTOR * slotsOf.get(c.demandKey)! + CLASS_READ_MIN);
          candidates.push(...tasksWanting(await store.snapshot.wantingTasks(c.jobs, limit), retry));
        }
      }
    }
    const wanting: SchedulingSnapshot['open'] = [...probes, ...fairOrder(candidates, running)];
    if (wanting.length === 0) return null;
    // A re-verification must not go to the providers of the task it replays: they count as having run it.
    const ran = await store.snapshot.executionsOf([
      ...wanting.map((t) => t.taskId),
      ...wanting.flatMap((t) => (t.replayOf ? [t.replayOf] : [])),
    ]);
    for (const t of wanting)
      if (t.replayOf) ran.set(t.taskId, [...(ran.get(t.taskId) ?? []), ...(ran.get(t.replayOf) ?? [])]);
    return {
      now,
      tasks: wanting.map((t, rank) => ({ ...schedTaskOf(t, ran.get(t.taskId) ?? []), rank })),
      agents,
      prices,
      open: wanting,
    };
  }

  /** The pure scheduler's plan for a snapshot (core/scheduler.ts). */
  async plan(snap: SchedulingSnapshot): Promise<Placement[]> {
    return planExecutions(snap.tasks, snap.agents, { random: this.r.random, predict: await this.predictor() });
  }

  /**
   * Applies a plan made from `snap` in one transaction: each task moves to running and gets its executions only if
   * it is still at the revision the snapshot read (a task changed meanwhile is left to the next round); a probe's
   * placement becomes its pair of probe executions on the one agent; the jobs roll up. Returns the agents that got
   * work, and wakes them (here and on other coordinators).
   */
  async apply(plan: readonly Placement[], snap: SchedulingSnapshot): Promise<Set<string>> {
    if (plan.length === 0) return new Set();
    const { store } = this.r;
    const now = snap.now;
    const revisions = new Map(
      snap.open.map((t) => [t.taskId, { revision: t.revision, jobId: t.jobId, probePair: t.probePair ?? 0 }]),
    );
    const fx = await store.transaction(async (tx) => {
      const f = new Effects();
      const byTask = new Map<string, Placement[]>();
      for (const p of plan) byTask.set(p.taskId, [...(byTask.get(p.taskId) ?? []), p]);
      // Lock order: jobs (in id order), then tasks, then executions.
      await tx.jobs.lock([...byTask.keys()].map((id) => revisions.get(id)!.jobId));
      for (const [taskId, ps] of byTask) {
        const { revision, jobId, probePair } = revisions.get(taskId)!;
        const alone = ps.length === 1 && ps[0]!.alone;
        if (!(await tx.tasks.write(taskId, revision, now, alone ? RUN_ALONE : {}, 'running'))) continue;
        const copies = probePair > 0 ? PROBE_PAIR : 1;
        await tx.executions.insert(
          ps.flatMap((p) =>
            Array.from({ length: copies }, () => ({
              taskId,
              jobId,
              agentId: p.agentId,
              providerId: p.providerId,
              price: priceOf(snap.prices, p),
              probe: probePair,
            })),
          ),
          now,
        );
        if (probePair > 0) {
          const name = (await tx.accounts.findAccount(ps[0]!.providerId))?.name ?? ps[0]!.providerId;
          const again = probePair > 1 ? ' again, after a provider-side error' : '';
          await tx.jobs.addHistory(
            jobId,
            now,
            'probe',
            0,
            `determinism probe: task 0 runs twice at once on provider ${name}${again}; the job's tasks wait for it`,
          );
        }
        for (const p of ps) f.agents.add(p.agentId);
        f.touch(jobId, 'placed');
      }
      for (const jobId of f.touched.keys()) await this.verification.rollUp(tx, jobId, now, f);
      return f;
    });
    this.r.log.debug({ placements: plan.length, agents: fx.agents.size }, 'plan applied');
    fx.emit(this.r.events);
    const placed = plan.filter((p) => fx.agents.has(p.agentId));
    for (const agentId of await this.spotChecks.plant(placed, snap)) fx.agents.add(agentId);
    for (const agentId of fx.agents) this.wake(agentId);
    await store.notifier.publish([...fx.agents]);
    return fx.agents;
  }
}

/** The offer price an execution is placed at: its agent's prices in the snapshot. */
function priceOf(prices: ReadonlyMap<string, Price>, p: Placement): Price {
  const price = prices.get(p.agentId);
  if (!price) throw new Error(`no price for agent ${p.agentId} in the snapshot`);
  return price;
}
