/**
 * Building blocks for store tests over either database: fixed times, an agent's capacity and offer, a reported
 * end, and each lifecycle step as the engine runs it (the engine's stage systems over the store, at a given time),
 * so the store's conditional writes are exercised exactly as in production.
 */
import { pino } from 'pino';
import { failureOf, planExecutions, schedTaskOf, tasksWanting } from '../../src/core/index.js';
import {
  DEFAULT_ENGINE_CONFIG,
  DEFAULT_MARKET_POLICY,
  Engine,
  type EngineConfig,
  type SchedulingSnapshot,
} from '../../src/engine/index.js';
import { OfferSchema, type Capacity, type JobSpec, type Manifest } from '../../src/protocol/index.js';
import type { ClaimedExecution, ExecutionEnd, Store } from '../../src/store/index.js';
import { emptyBlobStore } from './outputs.js';

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

/** An engine over `store` whose clock reads `now` (no timers; adaptive draws 0.5). */
export function engineAt(store: Store, now: number, config: Partial<EngineConfig> = {}): Engine {
  return new Engine(store, {
    blobs: emptyBlobStore(),
    config: { ...DEFAULT_ENGINE_CONFIG, ...config },
    log: pino({ level: 'silent' }),
    now: () => now,
    random: () => 0.5,
  });
}

/** Submits a job as the engine does (escrow held; maxExecutions defaults to replicas + 3); returns its id. */
export async function submit(store: Store, buyerId: string, spec: JobSpec, now: number): Promise<string> {
  return (await engineAt(store, now).submission.submit(buyerId, spec)).jobId;
}

/** The scheduler's snapshot as a round takes it at `now`, counting agents seen since `onlineSince` as online. */
export async function snapshotAt(
  store: Store,
  onlineSince: number,
  now = onlineSince + TTL,
): Promise<SchedulingSnapshot> {
  const open = tasksWanting(await store.snapshot.openTasks(), null);
  const { agents, prices } = await store.snapshot.agents(now, onlineSince, false, DEFAULT_MARKET_POLICY);
  const ran = await store.snapshot.executionsOf(open.map((t) => t.taskId));
  return { now, tasks: open.map((t) => schedTaskOf(t, ran.get(t.taskId) ?? [])), agents, prices, open };
}

/** Plans with every draw 0 (the best-ranked agent, as before random placement) and no runtime history. */
export function plan(snap: SchedulingSnapshot) {
  return planExecutions(snap.tasks, snap.agents, { random: () => 0, predict: () => null });
}

/** Applies a plan made from `snap`, as a round does. Returns the agents that got work. */
export function applyPlan(store: Store, placements: ReturnType<typeof plan>, snap: SchedulingSnapshot) {
  return engineAt(store, snap.now).scheduling.apply(placements, snap);
}

/** Snapshot → plan → apply at `now`, as the engine does. Returns the agents that got work. */
export async function scheduleRound(store: Store, now: number): Promise<Set<string>> {
  const snap = await snapshotAt(store, now - TTL, now);
  return applyPlan(store, plan(snap), snap);
}

/** Claims up to `max` of the agent's assigned executions at `now` with a lease of `ttl`. */
export function claim(store: Store, agentId: string, max: number, now: number, ttl = TTL): Promise<ClaimedExecution[]> {
  return store.transaction((tx) => tx.leases.claim(agentId, max, now, ttl));
}

/** Renews the agent's leases at `now` for `ttl`; returns what it must stop. */
export function renew(
  store: Store,
  agentId: string,
  held: Array<{ executionId: string; fencingToken: number }>,
  now: number,
  ttl = TTL,
): Promise<string[]> {
  return store.transaction((tx) => tx.leases.renew(agentId, held, now, now + ttl));
}

/** Records an end under the agent's lease at `now` (the task's revision bumped, as a report does); the task id or null. */
export function recordEnd(
  store: Store,
  executionId: string,
  agentId: string,
  fencingToken: number,
  end: ExecutionEnd,
  now: number,
): Promise<string | null> {
  return store.transaction(async (tx) => {
    const taskId = await tx.executions.recordEnd(executionId, agentId, fencingToken, end, now);
    if (taskId) await tx.tasks.touch([taskId], now);
    return taskId;
  });
}

/** Verifies (decides, or grades late results of) a task at `now`, as the verifier does; returns what it did. */
export function decide(store: Store, taskId: string, now: number) {
  return engineAt(store, now).verifyTask(taskId);
}

/**
 * Ends the leases that ran out at `now` as the reaper does (running past its lease → lost `lease_expired`; assigned
 * and not claimed within `claimTimeoutMs` → lost `not_claimed`), without re-verifying their tasks. Returns what it
 * ended, with the reason.
 */
export async function expireLeases(
  store: Store,
  now: number,
  claimTimeoutMs: number,
): Promise<Array<{ executionId: string; taskId: string; jobId: string; reason: 'lease_expired' | 'not_claimed' }>> {
  const out: Array<{ executionId: string; taskId: string; jobId: string; reason: 'lease_expired' | 'not_claimed' }> =
    [];
  for (const e of await store.leases.expired(now, now - claimTimeoutMs, 1000)) {
    const reason = e.state === 'running' ? 'lease_expired' : 'not_claimed';
    if (await store.transaction((tx) => tx.leases.expire(e, now, failureOf(reason, 'test'))))
      out.push({ executionId: e.executionId, taskId: e.taskId, jobId: e.jobId, reason });
  }
  return out;
}
