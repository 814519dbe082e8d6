/**
 * The live reads (store/live.ts) over real SQLite and real PostgreSQL: a job as it is now, the network now, and the
 * chart series (per-minute activity, recently decided tasks, a provider's earnings per hour), driven by a real engine
 * with a controlled clock through a task whose replicas disagree once.
 */
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_ENGINE_CONFIG, Engine } from '../../src/engine/index.js';
import type { Store } from '../../src/store/index.js';
import { claimAll, completedReport, fundedBuyer, registerAgents, submitJob } from '../helpers/engine-flow.js';
import { tempBlobStore } from '../helpers/outputs.js';
import { storeKinds } from '../helpers/stores.js';

const T0 = 1_700_000_000_000;
const MIN = 60_000;
const minuteOf = (t: number) => Math.floor(t / MIN) * MIN;

describe.each(storeKinds())('live reads over $name', (kind) => {
  let store: Store;
  let now = T0;
  beforeAll(async () => {
    await kind.setup();
    store = await kind.open();
  });
  afterAll(async () => {
    await store?.close();
    await kind.teardown();
  });

  it('follow a job through a disagreement to its verification, minute by minute', async () => {
    // Agents stay online and leases held across the minutes the clock jumps.
    const engine = new Engine(store, {
      blobs: await tempBlobStore(),
      config: { ...DEFAULT_ENGINE_CONFIG, agentTtlMs: 3_600_000, leaseTtlMs: 3_600_000 },
      log: pino({ level: 'silent' }),
      now: () => now,
    });
    const buyerId = await fundedBuyer(engine, 'buyer', 100);
    const agents = await registerAgents(engine, 3, 'live');
    const jobId = await submitJob(engine, buyerId, { verification: { replicas: 2, quorum: 2 } });
    await engine.schedule();
    const first = await claimAll(engine, agents);
    expect(first).toHaveLength(2);
    const running = await store.live.job(jobId);
    expect(running).toMatchObject({ jobId, buyerId, state: 'running', tasks: { total: 1, verified: 0, failed: 0 } });
    expect(running!.executions.map((e) => [e.state, e.agentName.startsWith('live-box')])).toEqual([
      ['running', true],
      ['running', true],
    ]);
    expect(await store.live.network(0)).toEqual({ queueDepth: 0, agentsOnline: 3, runningExecutions: 2 });

    now = T0 + MIN; // the two replicas disagree: a third is needed
    await engine.report(first[0]!.agentId, first[0]!.a.executionId, await completedReport(engine, first[0]!.a, 'x'));
    await engine.report(first[1]!.agentId, first[1]!.a.executionId, await completedReport(engine, first[1]!.a, 'y'));
    await engine.schedule();
    const [third] = await claimAll(engine, agents);
    now = T0 + 2 * MIN;
    await engine.report(third!.agentId, third!.a.executionId, await completedReport(engine, third!.a, 'x'));
    await engine.settle();

    const done = await store.live.job(jobId);
    expect(done).toMatchObject({ state: 'succeeded', tasks: { total: 1, verified: 1, failed: 0 } });
    expect(done!.executions.map((e) => e.state).sort()).toEqual(['invalid', 'valid', 'valid']);
    expect(await store.live.network(0)).toEqual({ queueDepth: 0, agentsOnline: 3, runningExecutions: 0 });

    const points = await store.live.minutes(now, 4);
    expect(points.map((p) => p.t)).toEqual([-1, 0, 1, 2].map((i) => minuteOf(T0) + i * MIN));
    expect(points.map((p) => [p.jobsSubmitted, p.jobsFinished, p.executionsValid, p.executionsInvalid])).toEqual([
      [0, 0, 0, 0],
      [1, 0, 0, 0],
      [0, 0, 1, 1],
      [0, 1, 1, 0],
    ]);

    // Ten minutes on, those minutes are settled: read once, then served from memory; both reads agree.
    const later = minuteOf(T0) + 10 * MIN + 5_000;
    for (let read = 0; read < 2; read++) {
      const window = await store.live.minutes(later, 12);
      expect(window.map((p) => p.t)).toEqual(Array.from({ length: 12 }, (_, i) => minuteOf(T0) + (i - 1) * MIN));
      expect(window.slice(0, 4)).toEqual(points);
      expect(window.slice(4).every((p) => p.jobsSubmitted + p.jobsFinished + p.executionsValid === 0)).toBe(true);
    }

    expect(await store.live.recentlyDecided(20)).toEqual([
      { at: now, jobId, buyerId, taskIndex: 0, outcome: 'verified', agreed: 2, outvoted: 1 },
    ]);

    const winner = (await store.accounts.getAgent(first[0]!.agentId))!.providerId;
    const earned = await store.live.earnings(winner, now, 2);
    expect(earned.map((p) => p.t)).toEqual([-1, 0].map((i) => Math.floor(now / 3_600_000) * 3_600_000 + i * 3_600_000));
    expect(earned.reduce((s, p) => s + p.micro, 0)).toBe((await store.ledger.summary(winner)).earned);
    expect((await store.ledger.summary(winner)).earned).toBeGreaterThan(0);
    const loser = (await store.accounts.getAgent(first[1]!.agentId))!.providerId;
    expect((await store.live.earnings(loser, now, 2)).every((p) => p.micro === 0)).toBe(true);
    expect(await store.live.job('job_nosuchjob')).toBeNull();
  });
});
