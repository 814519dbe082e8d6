/** The measured part of a run: the buyer tasks' arrivals, and what the run counts over them at the end. */
import { isEstablished, standingOf } from '../core/index.js';
import { mulberry32 } from './prng.js';
import type { SimOptions, SimResult } from './options.js';
import { honestOf, MEAN_BASE_MS, type SimState, type SimTask } from './state.js';

/** Makes a buyer task of job `job` at `position`, arriving at `at` (ms). */
export type MakeTask = (kind: 'buyer', job: number, position: number, at: number) => SimTask;

/**
 * The measured buyer tasks, from now: jobs of `tasksPerJob` arriving as a Poisson process sized so that `replicas`
 * executions per task keep `load` of all cores busy. Job numbers continue after `jobsSoFar`.
 */
export function arrivals(o: SimOptions, st: SimState, jobsSoFar: number, make: MakeTask): SimTask[] {
  const random = mulberry32(o.seed ^ 0x1b873593);
  const cores = st.providers.reduce((s, p) => s + p.cores, 0);
  const meanRunMs = MEAN_BASE_MS * (st.providers.reduce((s, p) => s + p.cores * p.speed, 0) / cores);
  const tasksPerMs = (o.load * cores) / (o.replicas * meanRunMs);
  const jobGapMs = o.tasksPerJob / tasksPerMs;
  const out: SimTask[] = [];
  let at = st.now;
  for (let j = jobsSoFar + 1; out.length < o.tasks; j++) {
    for (let k = 0; k < o.tasksPerJob && out.length < o.tasks; k++) out.push(make('buyer', j, k, at));
    at += Math.round(-Math.log(1 - random()) * jobGapMs);
  }
  return out;
}

/** What a finished run measured over its buyer tasks (`measured`); spot-checks and re-verifications since the warm-up. */
export function resultOf(st: SimState, o: SimOptions, measured: readonly SimTask[]): SimResult {
  const n = measured.length;
  const c = st.counters;
  const since = measured[0]?.jobCreatedAt ?? 0;
  const execsOf = (kind: SimTask['kind']) =>
    st.tasks.filter((t) => t.kind === kind && t.jobCreatedAt >= since).reduce((s, t) => s + t.execs.length, 0);
  const buyer = measured.reduce((s, t) => s + t.execs.length, 0);
  const spot = execsOf('spot_check');
  const audit = execsOf('audit');
  const verified = measured.filter((t) => t.state === 'verified');
  const wrong = verified.filter((t) => t.verdict !== honestOf(t)).length;
  const per = (x: number) => Math.round((x / n) * 1e4) / 1e4;
  return {
    strategy: o.strategy.name,
    mode: o.mode,
    maxError: o.maxError,
    seed: o.seed,
    tasks: n,
    verified: verified.length,
    failed: measured.filter((t) => t.state === 'failed').length,
    unfinished: measured.filter((t) => t.state === 'open').length,
    wrongAcceptedBeforeBacktracking: c.wrongAcceptedBeforeBacktracking,
    wrongAccepted: wrong,
    wrongRate: wrong / n,
    executionsPerTask: {
      buyer: per(buyer),
      spotChecks: per(spot),
      reverifications: per(audit),
      total: per(buyer + spot + audit),
    },
    alone: c.alone,
    spotChecks: c.spotChecks,
    caught: c.caught,
    caughtHonest: c.caughtHonest,
    reverified: c.reverifications,
    overturned: c.overturned,
    overturnedToWrong: c.overturnedToWrong,
    liarsEstablished: st.providers.filter((p) => p.liar && isEstablished(standingOf(p.rep), o.credibility)).length,
    simulatedHours: Math.round(st.now / 3_600_000),
  };
}
