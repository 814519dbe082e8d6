/**
 * The engine's queue over real SQLite and PostgreSQL stores (issues 12, 13): a round reads nothing of the queue when no
 * agent could take work, and one account's untakeable tasks (a price nobody offers, resources nobody lends) do not keep
 * another buyer's job from being placed in the first round; a job's determinism probe pair is placed by the same rounds
 * while its tasks are held.
 */
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DEFAULT_ENGINE_CONFIG, Engine } from '../../src/engine/index.js';
import type { Store } from '../../src/store/index.js';
import { claimAll, completedReport, fundedBuyer, registerAgents, submitJob } from '../helpers/engine-flow.js';
import { tempBlobStore } from '../helpers/outputs.js';
import { storeKinds } from '../helpers/stores.js';

const T0 = 1_700_000_000_000;
/** 1 µcr per execution (the least a job may offer) and 0 per hour: below every agent's price. */
const CHEAP = { cpuHour: 0, memoryGiBHour: 0, gpuHour: 0, startFee: 0.000001 };

describe.each(storeKinds())('scheduling rounds and the queue over $name', (kind) => {
  let store: Store;
  let engine: Engine;
  beforeAll(() => kind.setup());
  afterAll(() => kind.teardown());
  beforeEach(async () => {
    store = await kind.open();
    engine = new Engine(store, {
      blobs: await tempBlobStore(),
      config: { ...DEFAULT_ENGINE_CONFIG },
      log: pino({ level: 'silent' }),
      now: () => T0,
      random: () => 0,
    });
  });
  afterEach(async () => {
    await engine.stop();
    await store.close();
  });

  /** The executions placed for a job's tasks, by the job view. */
  const placed = async (jobId: string, buyerId: string): Promise<number> => {
    const v = await store.views.jobView(jobId, buyerId);
    return v!.tasks.reduce((n, t) => n + t.executions.length, 0);
  };

  it('reads no queue for a submit while no agent is online, and reads it once one is', async () => {
    const buyer = await fundedBuyer(engine, 'buyer', 100);
    const jobId = await submitJob(engine, buyer);
    await engine.scheduling.idle();
    expect(engine.scheduling.counts).toEqual({ skipped: 1, queueReads: 0 });
    await engine.schedule();
    expect(engine.scheduling.counts.queueReads).toBe(0);
    expect(await placed(jobId, buyer)).toBe(0);
    await registerAgents(engine, 1);
    await engine.schedule();
    expect(engine.scheduling.counts.queueReads).toBeGreaterThan(0);
    expect(await placed(jobId, buyer)).toBe(1);
  });

  it('reads no queue when every online agent is full', async () => {
    const buyer = await fundedBuyer(engine, 'buyer', 100);
    await registerAgents(engine, 1);
    await submitJob(engine, buyer, { resources: { cpus: 2 } });
    await engine.schedule();
    const reads = engine.scheduling.counts.queueReads;
    await submitJob(engine, buyer);
    await engine.schedule();
    expect(engine.scheduling.counts.queueReads).toBe(reads);
  });

  it("places another buyer's one-task job in the first round behind thousands of one account's untakeable tasks", async () => {
    const attacker = await fundedBuyer(engine, 'attacker', 1);
    // Older than the victim's, more than a round used to read (5,000): a price nobody offers, and cores nobody lends.
    await submitJob(engine, attacker, { array: { count: 6_000 }, maxPrice: CHEAP });
    await submitJob(engine, attacker, { array: { count: 100 }, maxPrice: CHEAP, resources: { cpus: 64 } });
    const victim = await fundedBuyer(engine, 'victim', 100);
    const [agent] = await registerAgents(engine, 1);
    await engine.scheduling.idle();
    const before = engine.scheduling.counts.queueReads;
    const jobId = await submitJob(engine, victim);
    await engine.scheduling.idle();
    expect(engine.scheduling.counts.queueReads).toBe(before + 1);
    expect(await placed(jobId, victim)).toBe(1);
    expect((await engine.claim(agent!, 4, 0)).map((a) => a.jobId)).toEqual([jobId]);
  });

  it('shares agents fairly: a buyer with a long takeable queue does not starve a later one-task job', async () => {
    const big = await fundedBuyer(engine, 'big', 1000);
    const small = await fundedBuyer(engine, 'small', 100);
    await submitJob(engine, big, { array: { count: 50 } });
    const jobId = await submitJob(engine, small);
    await engine.scheduling.idle();
    await registerAgents(engine, 1); // two cores: one for each buyer
    await engine.scheduling.idle();
    expect(await placed(jobId, small)).toBe(1);
  });
  it("places a determinism probe pair through the round, holds the job's tasks until it passes, then places them", async () => {
    const buyer = await fundedBuyer(engine, 'buyer', 100);
    const agentIds = await registerAgents(engine, 2);
    const jobId = await submitJob(engine, buyer, { array: { count: 2 }, verification: { checkDeterminism: true } });
    await engine.schedule();
    let v = (await store.views.jobView(jobId, buyer))!;
    expect(v.probe).toBe('pending');
    expect(v.tasks.map((t) => t.executions.map((e) => e.probe))).toEqual([[1, 1], []]);
    // Held: no ordinary task of the job is wanted, read or counted in the queue, however many rounds run.
    expect(await store.snapshot.anyTaskWanting()).toBe(false);
    expect(await store.snapshot.openJobs()).toEqual([]);
    expect(await store.snapshot.wantingCount()).toBe(0);
    await engine.schedule();
    expect((await store.views.jobView(jobId, buyer))!.tasks[1]!.executions).toEqual([]);

    const pair = await claimAll(engine, agentIds);
    expect(pair).toHaveLength(2);
    for (const { agentId, a } of pair)
      await engine.report(agentId, a.executionId, await completedReport(engine, a, 'same'));
    expect((await store.views.jobView(jobId, buyer))!.probe).toBe('passed');
    // The counts on task rows are of ordinary executions only: the probe pair counts toward none.
    expect((await store.snapshot.openTasks(jobId)).map((t) => [t.index, t.active, t.total, t.failures])).toEqual([
      [0, 0, 0, 0],
      [1, 0, 0, 0],
    ]);
    expect(await store.snapshot.wantingCount()).toBe(2);

    await engine.schedule();
    v = (await store.views.jobView(jobId, buyer))!;
    for (const t of v.tasks) expect(t.executions.filter((e) => e.probe === undefined).length).toBeGreaterThan(0);
  });
  it('lists a pending probe whose pair reported undecided for re-verification, never the tasks it holds', async () => {
    const buyer = await fundedBuyer(engine, 'buyer', 100);
    const agentIds = await registerAgents(engine, 1);
    const jobId = await submitJob(engine, buyer, { array: { count: 2 }, verification: { checkDeterminism: true } });
    await engine.schedule();
    const pair = await claimAll(engine, agentIds);
    expect(await store.tasks.awaitingDecision(10)).toEqual([]);
    // As if a coordinator stopped between recording the pair's reports and deciding the probe.
    await store.transaction((tx) =>
      tx.executions.move(
        pair.map((c) => c.a.executionId),
        'reported',
        T0,
      ),
    );
    const task0 = (await store.views.jobView(jobId, buyer))!.tasks[0]!;
    expect(await store.tasks.awaitingDecision(10)).toEqual([{ taskId: task0.id, jobId }]);
  });
});
