/**
 * Where a verified job's time went, from its own timestamps (all the coordinator's clock except the submit
 * instant, taken by the benchmark on the same machine): submit → stored → placed → claimed → reported → verified.
 */
import type { JobView } from '../protocol/index.js';
import { distribution } from './stats.js';

/** Phases of one job, ms. `container` is the agent's measured wall time; `agentOverhead` the rest of `agent`. */
export interface Phases {
  /** Submit sent → job stored. */
  submit: number;
  /** Stored → execution placed by the scheduler. */
  schedule: number;
  /** Placed → claimed by the agent (lease granted). */
  claim: number;
  /** Claimed → report recorded (the agent's whole run). */
  agent: number;
  container: number;
  agentOverhead: number;
  /** Report recorded → job verified. */
  verify: number;
}

/** Phases of a job that succeeded with one valid execution; null otherwise. */
export function jobPhases(view: JobView, submittedAt: number): Phases | null {
  const e = view.tasks[0]?.executions.find((x) => x.state === 'valid');
  if (view.state !== 'succeeded' || !e || view.finishedAt === null || e.startedAt === null || e.finishedAt === null)
    return null;
  const container = e.usage?.wallMs ?? 0;
  return {
    submit: view.createdAt - submittedAt,
    schedule: e.createdAt - view.createdAt,
    claim: e.startedAt - e.createdAt,
    agent: e.finishedAt - e.startedAt,
    container,
    agentOverhead: e.finishedAt - e.startedAt - container,
    verify: view.finishedAt - e.finishedAt,
  };
}

/** The p50 of each phase over `phases` (null when empty). */
export function phasesP50(phases: readonly Phases[]): Phases | null {
  if (phases.length === 0) return null;
  const keys = Object.keys(phases[0]!) as Array<keyof Phases>;
  return Object.fromEntries(keys.map((k) => [k, distribution(phases.map((p) => p[k])).p50])) as unknown as Phases;
}
