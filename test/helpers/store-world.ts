/**
 * Building blocks for store tests over either database: fixed times, an agent's capacity and offer, a
 * reported end, submitting a job, and the scheduler and verifier steps as the engine runs them.
 */
import { decideTask, expandTasks, planExecutions } from '../../src/core/index.js';
import { OfferSchema, type Capacity, type JobSpec, type Manifest } from '../../src/protocol/index.js';
import type { ExecutionEnd, Store } from '../../src/store/index.js';

/** Test start time (epoch ms) and lease TTL (ms). */
export const T0 = 1_700_000_000_000;
export const TTL = 15_000;
/** An agent with 2 CPUs and 4 GiB, the default offer, available now. */
export const CAPACITY: Capacity = {
  cpus: 2,
  memoryMb: 4096,
  arch: 'amd64',
  os: 'linux',
  dockerVersion: 'x',
  gpus: [],
  allowNetwork: false,
};
export const OFFER = OfferSchema.parse({});
export const AVAILABLE = { state: 'available' as const };
/** Two distinct result hashes. */
export const H1 = '1'.repeat(64);
export const H2 = '2'.repeat(64);

/** A manifest whose stdout hash is made of `tag`. */
export function manifestFor(tag: string): Manifest {
  return {
    exitCode: 0,
    stdoutSha256: tag.repeat(64).slice(0, 64),
    files: [{ path: 'out.txt', sha256: 'f'.repeat(64), size: 3 }],
  };
}
/** A successful reported end whose verdict is `verdict`. */
export function reported(verdict: string): ExecutionEnd {
  const manifest = manifestFor(verdict.slice(0, 1));
  return {
    state: 'reported',
    verdict,
    exitCode: 0,
    resultHash: verdict,
    manifest,
    failure: null,
    usage: { wallMs: 100, cpuMs: 50, maxMemoryBytes: 1024 },
    stdoutBlob: manifest.stdoutSha256,
    stderrBlob: 'e'.repeat(64),
    outputsBlob: 'o'.repeat(64),
  };
}

/** Stores a job as the engine would (maxExecutions defaults to replicas + 3); returns its id. */
export async function submit(store: Store, buyerId: string, spec: JobSpec, now: number): Promise<string> {
  const v = spec.verification;
  return (
    await store.jobs.createJob(
      {
        buyerId,
        spec,
        tasks: expandTasks(spec),
        policy: {
          replicas: v.replicas,
          quorum: v.quorum,
          maxExecutions: v.maxExecutions ?? v.replicas + 3,
          maxErrors: v.maxErrors,
        },
      },
      now,
    )
  ).jobId;
}

/** The scheduler's snapshot as the engine takes it: wanting tasks and agents seen since `onlineSince`. */
export async function snapshotAt(store: Store, onlineSince: number, now = onlineSince + TTL) {
  const { tasks, revisions } = await store.snapshot.wantingTasks(5000);
  const { agents, prices } = await store.snapshot.agents(now, onlineSince, false);
  return { tasks, agents, revisions, prices };
}

/** Plans with no adaptive draws and no runtime history. */
export function plan(snap: Awaited<ReturnType<typeof snapshotAt>>) {
  return planExecutions(snap.tasks, snap.agents, { random: () => 0.5, predict: () => null });
}

/** Snapshot → plan → apply, as the engine does. */
export async function scheduleRound(store: Store, now: number): Promise<Set<string>> {
  const snap = await snapshotAt(store, now - TTL, now);
  return store.executions.applyPlan(plan(snap), snap.revisions, snap.prices, now);
}

/** Decides a task from the store and applies the decision, as the verifier does. */
export async function decide(store: Store, taskId: string, now: number) {
  const t = await store.executions.taskForVerification(taskId);
  if (!t) throw new Error('task missing');
  const d = decideTask(t.policy, t.target, t.votes);
  const applied = await store.executions.applyDecision(t, d, now);
  return { d, applied, before: t };
}
