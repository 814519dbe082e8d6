/**
 * Reports checked at the door, in the engine over a real SQLite store and a real blob store: a report whose outputs
 * tarball does not match its manifest (422 digest_mismatch), and a timeout reported before the time limit could have
 * passed (implausible_report, 422), are refused and held against the provider — the execution fails in the report's transaction, its provider's reputation
 * records an error, and the task goes to another provider and verifies with an honest replica as canonical.
 */
import { rm } from 'node:fs/promises';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { BlobStore } from '../../src/coordinator/blobs.js';
import { DEFAULT_QUOTA, DeqoError } from '../../src/core/index.js';
import { DEFAULT_ENGINE_CONFIG, Engine, jobResults } from '../../src/engine/index.js';
import type { Assignment, JobView, ReportRequest } from '../../src/protocol/index.js';
import { openSqliteStore, type Store } from '../../src/store/index.js';
import { claimAll, completedReport, fundedBuyer, registerAgents, submitJob } from '../helpers/engine-flow.js';
import { storeOutputs, tempBlobStore } from '../helpers/outputs.js';

const T0 = 1_700_000_000_000;
let now: number;
let store: Store;
let blobs: BlobStore;
let engine: Engine;
let buyerId: string;
let agentIds: string[];

beforeEach(async () => {
  now = T0;
  store = await openSqliteStore(':memory:');
  blobs = await tempBlobStore();
  engine = new Engine(store, {
    blobs,
    config: { ...DEFAULT_ENGINE_CONFIG },
    log: pino({ level: 'silent' }),
    now: () => now,
  });
  buyerId = await fundedBuyer(engine, 'buyer', 100);
  agentIds = await registerAgents(engine, 3);
});
afterEach(async () => {
  await engine.stop();
  await store.close();
  await rm(blobs.dir, { recursive: true, force: true });
});

async function jobView(jobId: string): Promise<JobView> {
  return (await store.views.jobView(jobId, buyerId))!;
}

async function rejection(p: Promise<unknown>): Promise<DeqoError> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(DeqoError);
  return err as DeqoError;
}

/** Errors on the reputation record of the provider running `agentId`. */
async function errorsOf(agentId: string): Promise<number> {
  const providerId = (await store.accounts.getAgent(agentId))!.providerId;
  return (await store.reputation.records([providerId], now, DEFAULT_QUOTA)).get(providerId)!.reputation.errors;
}

/** A 2-of-2 job placed and claimed on two of the three agents. */
async function claimedPair(over: Parameters<typeof submitJob>[2] = {}) {
  const jobId = await submitJob(engine, buyerId, { verification: { replicas: 2, quorum: 2 }, ...over });
  await engine.schedule();
  const claimed = await claimAll(engine, agentIds);
  expect(claimed).toHaveLength(2);
  const idle = agentIds.find((id) => !claimed.some((c) => c.agentId === id))!;
  return { jobId, claimed: claimed as Array<{ agentId: string; a: Assignment }>, idle };
}

describe('an outputs tarball that does not match its manifest', () => {
  it('is refused with 422 digest_mismatch, fails the execution as outputs_mismatch against its provider, and the task verifies on another provider with an honest canonical replica', async () => {
    const { jobId, claimed, idle } = await claimedPair();
    const [cheat, honest] = claimed;

    // The cheater's manifest is the honest one; its tarball holds other bytes of the same size.
    const good = await completedReport(engine, cheat!.a, 'the answer');
    if (good.outcome !== 'completed') throw new Error('expected a completed report');
    const swapped = await storeOutputs(blobs, { 'result.txt': 'file the answes' });
    await store.transaction((tx) => tx.accounts.recordBlob(swapped.outputsBlob, 10, now));
    const provider = (await store.accounts.getAgent(cheat!.agentId))!.providerId;
    await store.transaction((tx) => tx.accounts.grantBlobAccess([swapped.outputsBlob], provider));
    const report: ReportRequest = { ...good, outputsBlob: swapped.outputsBlob };

    const err = await rejection(engine.report(cheat!.agentId, cheat!.a.executionId, report));
    expect(err.code).toBe('digest_mismatch');
    expect(err.status).toBe(422);
    expect(err.message).toContain('result.txt');
    expect(err.details).toMatchObject({ path: 'result.txt' });

    // Ended at once, in the report's transaction: nothing waits for the lease to run out.
    let v = await jobView(jobId);
    const ended = v.tasks[0]!.executions.find((e) => e.id === cheat!.a.executionId)!;
    expect(ended).toMatchObject({
      state: 'failed',
      failure: { reason: 'outputs_mismatch', blame: 'provider' },
      outputsBlob: null,
      paid: null,
    });
    expect(ended.failure!.message).toContain('result.txt');
    expect(await errorsOf(cheat!.agentId)).toBe(1);
    expect(await errorsOf(honest!.agentId)).toBe(0);
    const hb = await engine.heartbeat(cheat!.agentId, [
      { executionId: cheat!.a.executionId, fencingToken: cheat!.a.fencingToken },
    ]);
    expect(hb.stop).toEqual([cheat!.a.executionId]);
    // The same report again is stale: it was recorded once.
    expect((await rejection(engine.report(cheat!.agentId, cheat!.a.executionId, report))).code).toBe('stale_lease');

    // The task goes to the provider that had not had it (after the retry backoff); with the honest replica it verifies.
    now += DEFAULT_ENGINE_CONFIG.retryBackoffMs;
    await engine.schedule();
    const [replacement] = await claimAll(engine, [idle]);
    expect(replacement?.a.jobId).toBe(jobId);
    expect(await claimAll(engine, [cheat!.agentId])).toEqual([]);
    await engine.report(honest!.agentId, honest!.a.executionId, await completedReport(engine, honest!.a, 'the answer'));
    await engine.report(idle, replacement!.a.executionId, await completedReport(engine, replacement!.a, 'the answer'));
    v = await jobView(jobId);
    expect(v.state).toBe('succeeded');
    expect(v.tasks[0]!.executions.map((e) => e.state).sort()).toEqual(['failed', 'valid', 'valid']);

    const results = (await jobResults(store, jobId, buyerId))!;
    const t = results.tasks[0]!;
    const honestExecutions = [honest!.a.executionId, replacement!.a.executionId];
    expect(t.replicas.map((r) => r.executionId).sort()).toEqual([...honestExecutions].sort());
    expect(t.outputsBlob).toBe(t.replicas[0]!.outputsBlob);
    expect(t.outputsBlob).not.toBe(swapped.outputsBlob);
    expect(t.agreedBy.map((a) => a.agentId)).not.toContain(cheat!.agentId);
    expect(v.billing.settled).toBe(true);
    expect(v.tasks[0]!.executions.find((e) => e.id === cheat!.a.executionId)!.paid).toBeNull();
  });

  it('is checked only when the blob store holds the tarball: a lost blob answers unavailable and changes nothing', async () => {
    const { jobId, claimed } = await claimedPair();
    const [c] = claimed;
    const report = await completedReport(engine, c!.a, 'out');
    await rm(blobs.dir, { recursive: true, force: true });
    const err = await rejection(engine.report(c!.agentId, c!.a.executionId, report));
    expect(err.code).toBe('unavailable');
    expect(err.retryable).toBe(true);
    const e = (await jobView(jobId)).tasks[0]!.executions.find((x) => x.id === c!.a.executionId)!;
    expect(e.state).toBe('running');
    expect(await errorsOf(c!.agentId)).toBe(0);
  });
});

describe('a timeout the coordinator did not observe', () => {
  it('is refused with implausible_report (422) naming reason, fails the execution as implausible_report against its provider, and the task goes elsewhere', async () => {
    const { jobId, claimed, idle } = await claimedPair({ resources: { timeoutSeconds: 60 } });
    const [early, patient] = claimed;
    now += 300;
    const err = await rejection(
      engine.report(early!.agentId, early!.a.executionId, {
        outcome: 'failed',
        fencingToken: early!.a.fencingToken,
        reason: 'timeout',
        message: 'killed after 60 s',
        usage: { wallMs: 60_000, cpuMs: 60_000, maxMemoryBytes: 1 << 20 },
      }),
    );
    expect(err.code).toBe('implausible_report'); // 422 (core/errors.ts)
    expect(err.retryable).toBe(false);
    expect(err.details).toEqual([{ path: 'reason', message: expect.stringContaining('300 ms') }]);
    const v = await jobView(jobId);
    expect(v.tasks[0]!.executions.find((e) => e.id === early!.a.executionId)).toMatchObject({
      state: 'failed',
      failure: { reason: 'implausible_report', blame: 'provider' },
      paid: null,
    });
    expect(await errorsOf(early!.agentId)).toBe(1);
    now += DEFAULT_ENGINE_CONFIG.retryBackoffMs;
    await engine.schedule();
    expect((await claimAll(engine, [idle]))[0]?.a.jobId).toBe(jobId);

    // A timeout after the time limit passed (less the tolerance for clock granularity) is believed: it votes.
    now = T0 + 59_500;
    await engine.report(patient!.agentId, patient!.a.executionId, {
      outcome: 'failed',
      fencingToken: patient!.a.fencingToken,
      reason: 'timeout',
      message: 'killed after 60 s',
    });
    expect((await jobView(jobId)).tasks[0]!.executions.find((e) => e.id === patient!.a.executionId)).toMatchObject({
      state: 'reported',
      failure: { reason: 'timeout', blame: 'job' },
    });
    expect(await errorsOf(patient!.agentId)).toBe(0);
  });
});
