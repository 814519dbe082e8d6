/**
 * What the scheduler reads of the simulation, built as the store builds it for the engine (store/snapshot.ts): open
 * tasks as core OpenTask, agents as core SchedAgent with their provider's record read through core.
 */
import { reputationScore, type Demand, type OpenTask, type SchedAgent } from '../core/index.js';
import type { SimOptions } from './options.js';
import { PRICE, standingView, type SimState, type SimTask } from './state.js';
import { quotaLeft } from './world.js';

/** What every simulated execution needs: one core, 512 MiB, no network, a 2 h timeout. */
export const DEMAND: Demand = {
  cpus: 1,
  memoryMb: 512,
  gpus: 0,
  network: false,
  labels: {},
  maxPrice: { cpuHour: 0.1, memoryGiBHour: 0.01, gpuHour: 1, startFee: 0.002 },
  image: 'sim/work:1',
  timeoutMs: 2 * 3_600_000,
};
const MEM_PER_CORE_MB = 2048;

/** The open task as the store reads it for scheduling (core OpenTask); escrow always funds what is wanted. */
export function openTaskOf(st: SimState, t: SimTask): OpenTask {
  const active = t.execs.filter((x) => st.execs[x]!.state === 'running' || st.execs[x]!.state === 'reported').length;
  return {
    taskId: String(t.index),
    jobId: t.jobId,
    jobCreatedAt: t.jobCreatedAt,
    index: t.position,
    revision: 0,
    target: t.target,
    maxExecutions: t.policy.maxExecutions,
    funded: Number.MAX_SAFE_INTEGER,
    adaptive: t.adaptive,
    demand: DEMAND,
    active,
    total: t.execs.length,
    failures: 0,
    lastFailureAt: null,
    quorum: t.policy.quorum,
    maxError: t.policy.maxError,
    replayOf: t.replayOf === null ? null : String(t.replayOf),
  };
}

/** Provider `pi`'s agent as the scheduler sees it (store/snapshot.ts agents): its record read through core. */
export function agentOf(st: SimState, pi: number, now: number, o: SimOptions): SchedAgent {
  const p = st.providers[pi]!;
  const free = p.cores - p.running;
  return {
    agentId: p.agentId,
    providerId: p.id,
    name: p.id,
    online: true,
    availability: 'available',
    totalCpus: p.cores,
    freeCpus: free,
    totalMemoryMb: p.cores * MEM_PER_CORE_MB,
    freeMemoryMb: free * MEM_PER_CORE_MB,
    // Disk is not simulated: DEMAND needs none.
    totalDiskMb: 0,
    freeDiskMb: 0,
    gpuModels: [],
    freeGpus: 0,
    arch: 'amd64',
    os: 'linux',
    allowNetwork: false,
    labels: {},
    prices: PRICE,
    reputation: reputationScore(p.rep),
    consecutiveValid: p.rep.consecutiveValid,
    ...standingView(p.rep, o.credibility),
    cohort: pi,
    prefix: '',
    quotaLeft: quotaLeft(p, now),
    running: p.running,
  };
}
