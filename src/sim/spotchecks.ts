/**
 * Spot-checks, backtracking and re-verification in the simulation, modelled on engine/spotchecks.ts with core's
 * rules (core/spotchecks.ts drawsSpotCheck, judgeSpotCheck, restedOn; Sarmenta FGCS 2002 §4.2, §5.3):
 *
 * - plant: after a plan, each agent that got work draws a spot-check with probability q and, if it has a core left
 *   and a canary its provider never ran (nor any replay of it) is found among 8 drawn at random, gets a replay of it.
 * - a wrong answer to a spot-check: the execution is invalid, the provider caught (blacklisted), and backtracking.
 * - backtrack: every verified warm-up or buyer task that rested on the provider (restedOn, caught providers
 *   discounted) and was not re-verified yet is re-verified on two other providers (2-of-2, at most 6 executions).
 * - audited: a re-verification that agrees confirms the task; one that disagrees replaces its verdict, grades the
 *   overturned executions invalid, and backtracks their providers.
 */
import {
  applyOutcome,
  drawsSpotCheck,
  judgeSpotCheck,
  restedOn,
  AUDIT_POLICY,
  type BacktrackCause,
  type Decision,
} from '../core/index.js';
import { addTask, honestOf, release, settle, startExec, type SimExec, type SimState, type SimTask } from './state.js';

/** Canaries drawn per spot-check (engine CANARY_SAMPLE): the first the provider never ran is used. */
const CANARY_SAMPLE = 8;

/** Plants spot-checks for the providers (indices) that just got work; `free` gives their cores left after the plan. */
export function plant(st: SimState, gotWork: ReadonlySet<number>, free: ReadonlyMap<number, number>): void {
  const rate = st.credibility.spotCheckRate;
  if (rate <= 0 || st.canaries.length === 0) return;
  for (const pi of gotWork) {
    if (!drawsSpotCheck(st.chance(), rate) || (free.get(pi) ?? 0) < 1) continue;
    let canary: SimTask | null = null;
    for (let k = 0; k < CANARY_SAMPLE && !canary; k++) {
      const c = st.tasks[st.canaries[Math.floor(st.chance() * st.canaries.length)]!]!;
      if (c.canary && !c.ranBy.has(pi)) canary = c;
    }
    if (!canary) continue;
    const t = addTask(st, {
      kind: 'spot_check',
      jobId: `spot-${st.tasks.length}`,
      jobCreatedAt: st.now,
      position: 0,
      arrival: st.now,
      computation: canary.computation,
      target: 1,
      policy: { quorum: 1, maxExecutions: 1, maxErrors: 1, maxError: null },
      adaptive: false,
      alone: false,
      state: 'open',
      verdict: null,
      canary: false,
      audit: null,
      replayOf: canary.index,
      expected: canary.verdict,
    });
    startExec(st, t, pi);
    if (st.measuring) st.counters.spotChecks += 1;
  }
}

/** Judges a reported spot-check (core judgeSpotCheck): passed confirms its provider; a wrong answer catches it. */
export function judge(st: SimState, t: SimTask, e: SimExec): void {
  const outcome = judgeSpotCheck(t.expected ?? '', { verdict: e.verdict, failure: null });
  if (outcome === 'passed') {
    t.state = 'verified';
    t.verdict = e.verdict;
    settle(st, e, 'valid', 1, true);
    return;
  }
  t.state = 'failed';
  if (outcome === 'inconclusive') {
    e.state = 'cancelled'; // ungraded: says nothing about honesty (a job-caused failure; none are modelled)
    return;
  }
  settle(st, e, 'invalid', 0, false);
  const p = st.providers[e.provider]!;
  if (p.rep.caughtAt === null && st.measuring) {
    st.counters.caught += 1;
    if (!p.liar) st.counters.caughtHonest += 1;
  }
  p.rep = applyOutcome(p.rep, { kind: 'caught', at: st.now });
  backtrack(st, e.provider, 'caught');
}

/**
 * Backtracking for provider `pi`, just found returning a wrong result (caught, outvoted, or overturned): every verified
 * warm-up or buyer task that rested on it and was not re-verified yet gets a re-verification. Returns how many.
 */
export function backtrack(st: SimState, pi: number, cause: BacktrackCause): number {
  const candidates = [...(st.validBy.get(pi) ?? [])]
    .map((i) => st.tasks[i]!)
    .filter((t) => t.state === 'verified' && t.audit === null);
  if (candidates.length === 0) return 0;
  const validProviders = (t: SimTask) =>
    t.execs
      .map((x) => st.execs[x]!)
      .filter((x) => x.state === 'valid')
      .map((x) => st.providers[x.provider]!.id);
  const caught = new Set(st.providers.filter((p) => p.rep.caughtAt !== null).map((p) => p.id));
  caught.add(st.providers[pi]!.id);
  let started = 0;
  for (const c of candidates) {
    const supported = { quorum: c.policy.quorum, alone: c.alone, validProviders: validProviders(c) };
    if (!restedOn(supported, st.providers[pi]!.id, caught, cause)) continue;
    c.audit = 'pending';
    addTask(st, {
      kind: 'audit',
      jobId: `audit-${st.tasks.length}`,
      jobCreatedAt: st.now,
      position: 0,
      arrival: st.now,
      computation: c.computation,
      target: AUDIT_POLICY.replicas,
      policy: AUDIT_POLICY,
      adaptive: false,
      alone: false,
      state: 'open',
      verdict: null,
      canary: false,
      audit: null,
      replayOf: c.index,
      expected: null,
    });
    st.open.push(st.tasks.length - 1);
    if (st.measuring) st.counters.reverifications += 1;
    started += 1;
  }
  return started;
}

/**
 * A re-verification was decided (`d`, not pending): confirms the task it replays, or replaces its verdict, grades the
 * overturned executions invalid (engine: an `invalid` outcome on their records) and backtracks their providers.
 */
export function audited(st: SimState, audit: SimTask, d: Exclude<Decision, { kind: 'pending' }>): void {
  const original = st.tasks[audit.replayOf!]!;
  if (d.kind === 'failed') {
    original.audit = 'inconclusive';
    return;
  }
  if (d.verdict === original.verdict) {
    original.audit = 'confirmed';
    return;
  }
  original.audit = 'changed';
  original.verdict = d.verdict;
  original.canary = false; // engine: the same (a replaced verdict is no spot-check answer)
  if (st.measuring) st.counters.overturned += 1;
  if (st.measuring && d.verdict !== honestOf(original)) st.counters.overturnedToWrong += 1;
  const overturned = original.execs
    .map((x) => st.execs[x]!)
    .filter((x) => x.state === 'valid' && x.verdict !== d.verdict);
  for (const x of overturned) {
    if (x.state === 'running') release(st, x);
    x.state = 'invalid';
    const p = st.providers[x.provider]!;
    p.rep = applyOutcome(p.rep, { kind: 'invalid', turnaroundMs: null });
    st.validBy.get(x.provider)?.delete(original.index);
  }
  for (const pi of new Set(overturned.map((x) => x.provider))) backtrack(st, pi, 'outvoted');
}
