/**
 * The simulation's state (tasks, executions, providers, counters) and the few steps every part of it shares:
 * building a verifier vote from a provider's standing now, and settling a graded execution through core's
 * settlement rule, which says what it does to the provider's reputation (core/settlement.ts settleExecution).
 */
import {
  applyOutcome,
  credibility,
  isEstablished,
  settleExecution,
  standingOf,
  type CredibilityConfig,
  type ExecutionVote,
  type Reputation,
  type VerificationPolicy,
} from '../core/index.js';
import type { Price } from '../protocol/index.js';
import type { Random } from './prng.js';
import { honestHash, resultOf, type Provider, type Strategy } from './world.js';

/**
 * What a task is: the honest warm-up, a buyer's task (measured), a spot-check (a canary replayed to one provider) or
 * a re-verification (a verified task replayed on two other providers, 2-of-2, after backtracking).
 */
export type TaskKind = 'warmup' | 'buyer' | 'spot_check' | 'audit';

/** A task. Times in ms of simulated time. */
export interface SimTask {
  index: number;
  kind: TaskKind;
  jobId: string;
  jobCreatedAt: number;
  /** Position in its job. */
  position: number;
  /** When it becomes schedulable (buyer tasks arrive over time). */
  arrival: number;
  /** The computation it runs: its own index, or for a replay the original's. */
  computation: number;
  execs: number[];
  target: number;
  policy: VerificationPolicy;
  adaptive: boolean;
  alone: boolean;
  state: 'open' | 'verified' | 'failed';
  verdict: string | null;
  /** A verified warm-up or buyer task safe to replay as a spot-check (core isCanary). */
  canary: boolean;
  /** Backtracking: null (never re-verified), pending, or how its re-verification ended. */
  audit: null | 'pending' | 'confirmed' | 'changed' | 'inconclusive';
  /** For a replay (spot-check, re-verification): the task it replays. */
  replayOf: number | null;
  /** For a spot-check: the canary's verdict when it was planted. */
  expected: string | null;
  /** Providers that ran this task or a replay of it (a spot-check never goes to one of them). */
  ranBy: Set<number>;
}

/** An execution (one provider's attempt at one task). */
export interface SimExec {
  index: number;
  task: number;
  provider: number;
  start: number;
  end: number;
  verdict: string;
  state: 'running' | 'reported' | 'valid' | 'invalid' | 'cancelled';
}

/** What a run counts. Executions and spot-checks only while measuring (after the warm-up). */
export interface Counters {
  buyerExecutions: number;
  spotChecks: number;
  reverifications: number;
  reverificationExecutions: number;
  alone: number;
  wrongAcceptedBeforeBacktracking: number;
  caught: number;
  caughtHonest: number;
  overturned: number;
  overturnedToWrong: number;
}

/** Everything a run holds. */
export interface SimState {
  strategy: Strategy;
  providers: Provider[];
  tasks: SimTask[];
  execs: SimExec[];
  /** Open tasks in creation order (oldest job first, as the scheduler serves them). */
  open: number[];
  running: number[];
  /** Per provider: the verified warm-up/buyer tasks it has a valid execution of (what backtracking reads). */
  validBy: Map<number, Set<number>>;
  /** Tasks that are canaries. */
  canaries: number[];
  measuring: boolean;
  counters: Counters;
  credibility: CredibilityConfig;
  /** Draws of the world's events: liars' corruption, runtimes, spot-check draws, canary picks. */
  chance: Random;
  corruptRate: number;
  now: number;
}

/** Offer price every simulated agent asks (money plays no part in the simulation beyond settlement's rule). */
export const PRICE: Price = { cpuHour: 0.05, memoryGiBHour: 0.005, gpuHour: 0.5, startFee: 0.001 };

/** A provider's credibility and probation now, from its record (core credibility, isEstablished over standingOf). */
export function standingView(rep: Reputation, c: CredibilityConfig): { credibility: number; established: boolean } {
  const standing = standingOf(rep);
  return { credibility: credibility(standing, c), established: isEstablished(standing, c) };
}

/** The verifier's vote for an execution: its provider's credibility and probation now (as engine/verification.ts). */
export function voteOf(st: SimState, e: SimExec): ExecutionVote {
  const p = st.providers[e.provider]!;
  const who = { providerId: p.id, ...standingView(p.rep, st.credibility) };
  const reported = e.state !== 'running';
  return {
    id: String(e.index),
    state: reported ? 'reported' : 'running',
    verdict: reported ? e.verdict : null,
    exitCode: reported ? 0 : null,
    failure: null,
    at: reported ? e.end : e.start,
    ...who,
  };
}

/**
 * Grades an execution and moves its provider's record as core's settlement rule says: `validInTask` valid results
 * in its task (cross-checked from 2), `confirmed` when the rest of its group confirms it independently.
 */
export function settle(
  st: SimState,
  e: SimExec,
  state: 'valid' | 'invalid',
  validInTask: number,
  confirmed: boolean,
): void {
  if (e.state === 'running') release(st, e);
  e.state = state;
  const p = st.providers[e.provider]!;
  const s = settleExecution(
    {
      executionId: String(e.index),
      jobId: st.tasks[e.task]!.jobId,
      providerId: p.id,
      state,
      failure: null,
      wallMs: e.end - e.start,
      price: PRICE,
      reserved: { cpus: 1, memoryMb: 512, gpus: 0 },
      timeoutMs: 2 * 3_600_000,
      executionMaxCost: Number.MAX_SAFE_INTEGER,
      validInTask,
      confirmed,
      startedAt: e.start,
      finishedAt: e.end,
    },
    0,
  );
  if (s.reputation) p.rep = applyOutcome(p.rep, s.reputation);
  const t = st.tasks[e.task]!;
  if (t.kind === 'buyer' || t.kind === 'warmup') {
    const set = st.validBy.get(e.provider) ?? new Set<number>();
    if (state === 'valid') set.add(t.index);
    else set.delete(t.index);
    st.validBy.set(e.provider, set);
  }
}

/** Frees the core a running execution held. */
export function release(st: SimState, e: SimExec): void {
  st.providers[e.provider]!.running -= 1;
}

/** Adds a task and returns it (open tasks are scheduled in creation order). */
export function addTask(st: SimState, t: Omit<SimTask, 'index' | 'execs' | 'ranBy'>): SimTask {
  const task: SimTask = { ...t, index: st.tasks.length, execs: [], ranBy: new Set() };
  st.tasks.push(task);
  return task;
}

/** Base runtime of an execution on a machine of speed 1, ms: uniform in [10, 30) minutes. */
const BASE_MS: readonly [number, number] = [10 * 60_000, 30 * 60_000];

/** Mean base runtime, ms. */
export const MEAN_BASE_MS = (BASE_MS[0] + BASE_MS[1]) / 2;

/** Starts an execution of `t` on provider `pi` now: its result, its runtime (base × speed), its core and quota. */
export function startExec(st: SimState, t: SimTask, pi: number): SimExec {
  const p = st.providers[pi]!;
  const verdict = resultOf(p, st.strategy, t.computation, st.corruptRate, st.chance, st.measuring);
  const ms = Math.max(60_000, Math.round((BASE_MS[0] + st.chance() * (BASE_MS[1] - BASE_MS[0])) * p.speed));
  const e: SimExec = {
    index: st.execs.length,
    task: t.index,
    provider: pi,
    start: st.now,
    end: st.now + ms,
    verdict,
    state: 'running',
  };
  st.execs.push(e);
  st.running.push(e.index);
  t.execs.push(e.index);
  t.ranBy.add(pi);
  if (t.replayOf !== null) st.tasks[t.replayOf]!.ranBy.add(pi);
  p.running += 1;
  p.starts.push(st.now);
  return e;
}

/** The honest result of a task (a replay's is its original's). */
export const honestOf = (t: SimTask): string => honestHash(t.computation);
