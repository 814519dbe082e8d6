/**
 * Verification simulation over the real core rules (imported from core, never copied): tasks arrive over time, the
 * scheduler (core/scheduler.ts tasksWanting, schedTaskOf, planExecutions: credibility-weighted random placement,
 * probation, adaptive `alone` placements) places executions on simulated providers; each report is decided by the
 * verifier (core/verification.ts decideTask with the buyer's ε, gradeLateResult) from votes carrying each provider's
 * credibility and probation now (core/credibility.ts credibility, isEstablished over reputation.ts standingOf);
 * graded results move records through core's settlement and reputation rules (settleExecution, applyOutcome);
 * verified tasks become canaries by core isCanary; spot-checks, backtracking and re-verification follow
 * engine/spotchecks.ts (spotchecks.ts here). Runtimes are predicted by core/prediction.ts buildPredictor.
 *
 * Phases: an honest warm-up (3-of-3 jobs, as the adversarial suite's) runs until every provider present from the
 * start is established; then new liar accounts register and the measured buyer tasks arrive (jobs of
 * `tasksPerJob`, a Poisson process at `load` of the cores that `replicas` per task would keep busy). Time advances in
 * one-minute rounds: reports, decisions, then a plan and its spot-checks. No provider-side errors, outages, owner
 * activity or price differences; every provider has its own registration cohort and no network prefix (colluders
 * that evade the diversity preference). Pure: the same options give the same result.
 */
import {
  buildPredictor,
  decideTask,
  defaultMaxExecutions,
  executionsWanted,
  gradeLateResult,
  isCanary,
  planExecutions,
  RUN_ALONE,
  schedTaskOf,
  type OpenTask,
  type Predictor,
  type RuntimeSample,
} from '../core/index.js';
import { mulberry32 } from './prng.js';
import { audited, backtrack, judge, plant } from './spotchecks.js';
import {
  addTask,
  honestOf,
  release,
  settle,
  standingView,
  startExec,
  voteOf,
  type SimState,
  type SimTask,
} from './state.js';
import { arrivals, resultOf } from './measure.js';
import { agentOf, DEMAND, openTaskOf } from './snapshot.js';
import { makeProviders, quotaLeft } from './world.js';
import { DEFAULT_SIM_OPTIONS, type SimOptions, type SimResult } from './options.js';

export { DEFAULT_SIM_OPTIONS, type SimMode, type SimOptions, type SimResult } from './options.js';

/** Verification modes compared (`none` has nothing to simulate). */

const MINUTE = 60_000;
/** The warm-up's jobs: 3-of-3, so each result is confirmed by two others (as the adversarial suite's warm-up). */
const WARMUP_POLICY = { replicas: 3, quorum: 3 } as const;
const MAX_WARMUP_ROUNDS = 20;

/** Runs one simulation to the end. Throws RangeError on options it cannot run. */
export function simulate(input: Partial<SimOptions> & Pick<SimOptions, 'strategy' | 'mode'>): SimResult {
  const o: SimOptions = { ...DEFAULT_SIM_OPTIONS, ...input };
  const honestAtStart = o.strategy.providers - (o.strategy.honestFor > 0 ? 0 : o.strategy.liars);
  if (!(o.tasks >= 1 && o.quorum >= 1 && o.quorum <= o.replicas && o.load > 0 && honestAtStart >= 3))
    throw new RangeError('need tasks ≥ 1, 1 ≤ quorum ≤ replicas, load > 0 and at least 3 providers from the start');
  const world = mulberry32(o.seed);
  const schedRandom = mulberry32(o.seed ^ 0x27d4eb2f);
  const st: SimState = {
    strategy: o.strategy,
    providers: makeProviders(world, o.strategy),
    tasks: [],
    execs: [],
    open: [],
    running: [],
    validBy: new Map(),
    canaries: [],
    measuring: false,
    counters: {
      buyerExecutions: 0,
      spotChecks: 0,
      reverifications: 0,
      reverificationExecutions: 0,
      alone: 0,
      wrongAcceptedBeforeBacktracking: 0,
      caught: 0,
      caughtHonest: 0,
      overturned: 0,
      overturnedToWrong: 0,
    },
    credibility: o.credibility,
    chance: mulberry32(o.seed ^ 0x5bd1e995),
    corruptRate: o.corruptRate,
    now: 0,
  };
  const policy = {
    quorum: o.quorum,
    maxExecutions: defaultMaxExecutions(o.replicas),
    maxErrors: 3,
    maxError: o.maxError,
  };
  const buyerTask = (kind: 'warmup' | 'buyer', job: number, position: number, at: number) =>
    addTask(st, {
      kind,
      jobId: `j${job}`,
      jobCreatedAt: at,
      position,
      arrival: at,
      computation: st.tasks.length,
      target: kind === 'warmup' ? WARMUP_POLICY.replicas : o.replicas,
      policy:
        kind === 'warmup'
          ? { quorum: WARMUP_POLICY.quorum, maxExecutions: defaultMaxExecutions(3), maxErrors: 3, maxError: null }
          : policy,
      adaptive: kind === 'buyer' && o.mode === 'adaptive',
      alone: false,
      state: 'open',
      verdict: null,
      canary: false,
      audit: null,
      replayOf: null,
      expected: null,
    });

  // Warm-up: batches of 3-of-3 tasks until every provider present from the start is established.
  let jobs = 0;
  const warmupBatch = () => {
    const n = Math.ceil((honestAtStart * o.credibility.establishedAfter) / WARMUP_POLICY.replicas);
    for (let k = 0; k < n; k++) {
      if (k % o.tasksPerJob === 0) jobs += 1;
      st.open.push(buyerTask('warmup', jobs, k % o.tasksPerJob, st.now).index);
    }
  };
  warmupBatch();
  let warmupRounds = 1;
  let measured: SimTask[] = [];
  let arrived = 0;
  const measuredStart = () => {
    st.measuring = true;
    measured = arrivals(o, st, jobs, (kind, job, position, at) => buyerTask(kind, job, position, at));
  };

  const samples: RuntimeSample[] = [];
  let predict: Predictor = buildPredictor([]);
  let predictorBuiltAt = -Infinity;
  const votes = (t: SimTask) => t.execs.map((x) => voteOf(st, st.execs[x]!));

  const decide = (t: SimTask) => {
    const vs = votes(t);
    const d = decideTask(t.policy, t.target, vs);
    if (d.kind === 'pending') {
      t.target = d.target;
      return;
    }
    t.state = d.kind;
    t.verdict = d.verdict;
    const byId = (id: string) => st.execs[Number(id)]!;
    const graded = vs
      .filter((v) => d.valid.includes(v.id) || d.invalid.includes(v.id))
      .map((v) => ({
        state: d.valid.includes(v.id) ? ('valid' as const) : ('invalid' as const),
        established: v.established,
        exitCode: v.exitCode,
      }));
    for (const id of d.valid) settle(st, byId(id), 'valid', d.valid.length, d.confirmed.includes(id));
    for (const id of d.invalid) settle(st, byId(id), 'invalid', d.valid.length, false);
    for (const id of [...d.ungraded, ...d.stop, ...d.cancel]) {
      const e = byId(id);
      if (e.state === 'running') release(st, e);
      e.state = 'cancelled';
    }
    if (d.kind === 'verified' && (t.kind === 'buyer' || t.kind === 'warmup')) {
      t.canary = isCanary({ allowed: true, graded });
      if (t.canary) st.canaries.push(t.index);
      if (t.kind === 'buyer' && d.verdict !== honestOf(t)) st.counters.wrongAcceptedBeforeBacktracking += 1;
    }
    if (t.kind === 'audit') audited(st, t, d);
    for (const pi of new Set(d.invalid.map((id) => byId(id).provider))) backtrack(st, pi, 'outvoted');
  };

  const report = (e: SimState['execs'][number]) => {
    e.state = 'reported';
    release(st, e);
    const p = st.providers[e.provider]!;
    samples.push({ agentId: p.agentId, image: DEMAND.image, cpus: DEMAND.cpus, wallMs: e.end - e.start });
    const t = st.tasks[e.task]!;
    if (t.kind === 'spot_check') return judge(st, t, e);
    if (t.state === 'open') return decide(t);
    // A result reported after its task was decided is graded against the verdict (confirmed by the deciding group).
    const grade = gradeLateResult(t.state === 'verified' ? t.verdict : null, e.verdict);
    const valid = t.execs.filter((x) => st.execs[x]!.state === 'valid').length;
    settle(st, e, grade, grade === 'valid' ? valid + 1 : valid, grade === 'valid');
    if (grade === 'invalid' && t.state === 'verified') backtrack(st, e.provider, 'outvoted');
  };

  const maxTime = 400 * 86_400_000;
  const done = () => st.measuring && arrived === measured.length && st.open.length === 0 && st.running.length === 0;
  while (!done() && st.now <= maxTime) {
    // 1. Reports of executions that finished by now, in order.
    const due = st.running
      .filter((i) => st.execs[i]!.end <= st.now)
      .sort((a, b) => st.execs[a]!.end - st.execs[b]!.end || a - b);
    for (const i of due) if (st.execs[i]!.state === 'running') report(st.execs[i]!);
    st.running = st.running.filter((i) => st.execs[i]!.state === 'running');
    st.open = st.open.filter((i) => st.tasks[i]!.state === 'open');
    // 2. End of the warm-up, arrivals.
    if (!st.measuring && st.open.length === 0) {
      const settled = st.providers
        .filter((p) => p.fromStart)
        .every((p) => standingView(p.rep, o.credibility).established);
      if (settled || warmupRounds >= MAX_WARMUP_ROUNDS) measuredStart();
      else {
        warmupBatch();
        warmupRounds += 1;
      }
    }
    while (arrived < measured.length && measured[arrived]!.arrival <= st.now) {
      st.open.push(measured[arrived]!.index);
      arrived += 1;
    }
    // 3. Plan, then spot-checks for the agents that got work.
    if (st.now - predictorBuiltAt >= 60 * MINUTE) {
      predict = buildPredictor(samples.slice(-2000));
      predictorBuiltAt = st.now;
    }
    const online = st.providers.filter((p) => st.measuring || p.fromStart);
    const freeCores = online.reduce((s, p) => s + Math.max(0, p.cores - p.running), 0);
    let placed = 0;
    if (freeCores > 0 && st.open.length > 0) {
      // The oldest open tasks that want executions (core executionsWanted), a few more than there are free cores.
      const wanting: Array<OpenTask & { need: number }> = [];
      for (const i of st.open) {
        if (wanting.length >= freeCores + 32) break;
        const ot = openTaskOf(st, st.tasks[i]!);
        const need = executionsWanted(ot);
        if (need > 0) wanting.push({ ...ot, need });
      }
      const sched = wanting.map((w) => {
        const t = st.tasks[Number(w.taskId)]!;
        const ran = [...t.execs, ...(t.replayOf !== null ? st.tasks[t.replayOf]!.execs : [])].map((x) => ({
          providerId: st.providers[st.execs[x]!.provider]!.id,
          state: st.execs[x]!.state,
        }));
        return schedTaskOf(w, ran);
      });
      const agents = online.map((p) => agentOf(st, p.index, st.now, o));
      const byAgent = new Map(st.providers.map((p) => [p.agentId, p.index]));
      const gotWork = new Set<number>();
      for (const pl of planExecutions(sched, agents, { random: schedRandom, predict })) {
        const t = st.tasks[Number(pl.taskId)]!;
        const pi = byAgent.get(pl.agentId)!;
        startExec(st, t, pi);
        gotWork.add(pi);
        placed += 1;
        if (pl.alone) {
          t.alone = RUN_ALONE.alone;
          t.target = RUN_ALONE.target;
          t.policy = { ...t.policy, quorum: RUN_ALONE.quorum };
          if (t.kind === 'buyer') st.counters.alone += 1;
        }
      }
      const free = new Map(
        [...gotWork].map((pi) => {
          const p = st.providers[pi]!;
          return [pi, quotaLeft(p, st.now) > 0 ? p.cores - p.running : 0];
        }),
      );
      plant(st, gotWork, free);
    }
    // 4. Next round: the next minute with something to do.
    const nextEnd = st.running.reduce((m, i) => Math.min(m, st.execs[i]!.end), Infinity);
    const nextArrival = arrived < measured.length ? measured[arrived]!.arrival : Infinity;
    let next = Math.min(nextEnd, nextArrival);
    if (!Number.isFinite(next) || (placed === 0 && st.running.length === 0 && next > st.now + 60 * MINUTE))
      next = st.now + 60 * MINUTE;
    st.now = Math.max(st.now + MINUTE, Math.ceil(next / MINUTE) * MINUTE);
  }
  return resultOf(st, o, measured);
}
