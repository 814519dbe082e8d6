/** The simulation's options and result (apart from simulate.ts, so its helpers can name them without a cycle). */
import { DEFAULT_CREDIBILITY, type CredibilityConfig } from '../core/index.js';
import type { Strategy } from './world.js';

export type SimMode = 'replicate' | 'adaptive';

/** Simulation settings. Shares in [0, 1]. */
export interface SimOptions {
  strategy: Strategy;
  mode: SimMode;
  /** The buyer's error bound ε (verification.maxError), or null for quorum voting with probation. */
  maxError: number | null;
  /** Measured buyer tasks. */
  tasks: number;
  replicas: number;
  quorum: number;
  /** Probability that a liar past its honest phase corrupts a result (1 = always). */
  corruptRate: number;
  /** Arrival rate as a share of the cores that `replicas` executions per task would keep busy. */
  load: number;
  tasksPerJob: number;
  /** The coordinator's credibility settings (f, establishedAfter, spot-check rate q). */
  credibility: CredibilityConfig;
  seed: number;
}

/** Defaults: 2-of-2 (the adversarial suite's jobs), 2,000 tasks, load 0.5, core's credibility defaults. */
export const DEFAULT_SIM_OPTIONS: Readonly<Omit<SimOptions, 'strategy' | 'mode'>> = Object.freeze({
  maxError: null,
  tasks: 2_000,
  replicas: 2,
  quorum: 2,
  corruptRate: 1,
  load: 0.5,
  tasksPerJob: 10,
  credibility: DEFAULT_CREDIBILITY,
  seed: 1,
});

/** What one run measured (over the measured buyer tasks; executions per task over them too). */
export interface SimResult {
  strategy: string;
  mode: SimMode;
  maxError: number | null;
  seed: number;
  tasks: number;
  verified: number;
  /** Tasks that ended without a verdict (no group reached quorum or ε within the cap on executions). */
  failed: number;
  /** Tasks still open when the run stopped (should be 0). */
  unfinished: number;
  /** Tasks whose verdict was wrong when first accepted. */
  wrongAcceptedBeforeBacktracking: number;
  /** Tasks whose verdict is wrong at the end, after backtracking and re-verification. */
  wrongAccepted: number;
  /** wrongAccepted / tasks. */
  wrongRate: number;
  /** Executions per measured task: the buyer's, spot-checks, re-verifications, and all together. */
  executionsPerTask: { buyer: number; spotChecks: number; reverifications: number; total: number };
  /** Tasks run alone (adaptive). */
  alone: number;
  spotChecks: number;
  /** Providers caught by a spot-check (blacklisted), and how many of them were honest. */
  caught: number;
  caughtHonest: number;
  /** Re-verifications started by backtracking, those that replaced a verdict, and those that replaced it wrongly. */
  reverified: number;
  overturned: number;
  overturnedToWrong: number;
  /** Liars established (off probation) at the end. */
  liarsEstablished: number;
  simulatedHours: number;
}
