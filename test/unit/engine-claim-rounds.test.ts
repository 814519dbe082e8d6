/**
 * Rounds requested by long-polling claims (issue 12): a claim that finds nothing asks for a scheduling round only when
 * the agent was offline to the scheduler before it; an online agent's empty claims run none (each round reads every
 * online agent, and 1,000 idle agents long-poll ~50 times a second). A job nobody takes stays queued, so every round
 * that runs reads the queue and is counted.
 */
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DEFAULT_ENGINE_CONFIG, Engine } from '../../src/engine/index.js';
import { openSqliteStore, type Store } from '../../src/store/index.js';
import { fundedBuyer, registerAgents, submitJob } from '../helpers/engine-flow.js';
import { tempBlobStore } from '../helpers/outputs.js';

const T0 = 1_700_000_000_000;
/** 1 µcr per execution (the least a job may offer) and 0 per hour: below every agent's price. */
const CHEAP = { cpuHour: 0, memoryGiBHour: 0, gpuHour: 0, startFee: 0.000001 };

describe('rounds requested by empty long-polling claims', () => {
  let store: Store;
  let engine: Engine;
  let clock = T0;
  beforeEach(async () => {
    clock = T0;
    store = await openSqliteStore(':memory:');
    engine = new Engine(store, {
      blobs: await tempBlobStore(),
      // No tick during the test: every round counted is one a call requested.
      config: { ...DEFAULT_ENGINE_CONFIG, tickMs: 3_600_000 },
      log: pino({ level: 'silent' }),
      now: () => clock,
      random: () => 0,
    });
  });
  afterEach(async () => {
    await engine.stop();
    await store.close();
  });

  it('runs no round for an online agent whose long poll finds nothing, and one for an agent back from silence', async () => {
    const buyer = await fundedBuyer(engine, 'buyer', 100);
    await submitJob(engine, buyer, { maxPrice: CHEAP });
    const [agent] = await registerAgents(engine, 1);
    await engine.scheduling.idle();
    engine.start();
    const rounds = () => engine.scheduling.counts.queueReads;
    const before = rounds();

    clock = T0 + 1_000; // heard 1 s ago: online
    expect(await engine.claim(agent!, 4, 20)).toEqual([]);
    await engine.scheduling.idle();
    expect(rounds()).toBe(before);

    clock += DEFAULT_ENGINE_CONFIG.agentTtlMs + 1; // silent past the agent TTL: offline until this claim
    expect(await engine.claim(agent!, 4, 20)).toEqual([]);
    await engine.scheduling.idle();
    expect(rounds()).toBe(before + 1);
  });
});
