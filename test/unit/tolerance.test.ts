/**
 * Comparator grouping through the real engine over real SQLite (engine/compare.ts, core/compare.ts): results whose
 * JSON numbers differ within the job's tolerance share a verdict and verify; without a comparator they do not; a
 * result outside the tolerance is outvoted; tolerant jobs never become canaries.
 */
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DEFAULT_CREDIBILITY } from '../../src/core/index.js';
import { DEFAULT_ENGINE_CONFIG, DEFAULT_MARKET_POLICY, Engine } from '../../src/engine/index.js';
import type { Assignment, JobSpecInput, JobView } from '../../src/protocol/index.js';
import { openSqliteStore, type Store } from '../../src/store/index.js';
import { completedReport, fundedBuyer, registerAgents, submitJob } from '../helpers/engine-flow.js';
import { tempBlobStore } from '../helpers/outputs.js';

let store: Store;
let engine: Engine;
let now = 1_700_000_000_000;

beforeEach(async () => {
  store = await openSqliteStore(':memory:');
  engine = new Engine(store, {
    blobs: await tempBlobStore(),
    config: { ...DEFAULT_ENGINE_CONFIG },
    policy: { ...DEFAULT_MARKET_POLICY, credibility: { ...DEFAULT_CREDIBILITY, spotCheckRate: 0 } },
    log: pino({ level: process.env.DEBUG_LOG ? 'debug' : 'silent' }),
    now: () => now,
    random: () => 0,
  });
});
afterEach(async () => {
  await engine.stop();
  await store.close();
});

const view = async (jobId: string, buyerId: string): Promise<JobView> => (await store.views.jobView(jobId, buyerId))!;
const TOLERANT: JobSpecInput['verification'] = {
  replicas: 3,
  quorum: 2,
  compare: [{ glob: '*.json', format: 'json', absTol: 1e-6 }],
};

/** Submits a job, places it on agents, and has each report `metrics.json` = `{"loss": <loss>}` (same stdout). */
async function run(
  verification: JobSpecInput['verification'],
  losses: number[],
  concurrently = false,
  prefix = 'agent',
) {
  const buyer = await fundedBuyer(engine, `buyer-${prefix}`, 100);
  const agents = await registerAgents(engine, losses.length, prefix);
  for (const id of agents) await engine.accounts.vouch((await store.accounts.getAgent(id))!.providerId);
  const jobId = await submitJob(engine, buyer, { verification, constraints: { providers: agents } });
  await engine.schedule();
  const claimed: Array<{ agentId: string; a: Assignment }> = [];
  for (const agentId of agents) {
    const [a] = await engine.claim(agentId, 4, 0);
    claimed.push({ agentId, a: a! });
  }
  const reports = await Promise.all(
    claimed.map(({ a }, i) =>
      completedReport(engine, a, 'done', { files: { 'metrics.json': JSON.stringify({ loss: losses[i] }) } }),
    ),
  );
  now += 1_000;
  const send = (i: number) => engine.report(claimed[i]!.agentId, claimed[i]!.a.executionId, reports[i]!);
  if (concurrently) await Promise.all(reports.map((_, i) => send(i)));
  else for (let i = 0; i < reports.length; i++) await send(i);
  return { buyer, jobId, agents, reports };
}

describe('output comparator', () => {
  it('verifies results that differ within the tolerance and outvotes one that does not', async () => {
    const { buyer, jobId, reports } = await run(TOLERANT, [0.123456789, 0.9, 0.12345679]);
    const v = await view(jobId, buyer);
    expect(v.state).toBe('succeeded');
    const task = v.tasks[0]!;
    expect(task.resultHash).toBe(reports[0]!.outcome === 'completed' && reports[0]!.resultHash); // the group's verdict: its founder's result hash
    const states = Object.fromEntries(task.executions.map((e) => [e.agentName, e.state]));
    expect(states).toEqual({ 'agent-box0': 'valid', 'agent-box1': 'invalid', 'agent-box2': 'valid' });
  });

  it('without a comparator the same results do not agree', async () => {
    const { buyer, jobId } = await run({ replicas: 3, quorum: 2 }, [0.123456789, 0.9, 0.12345679]);
    const v = await view(jobId, buyer);
    expect(v.state).not.toBe('succeeded');
    expect(v.tasks[0]!.executions.map((e) => e.state)).toEqual(['reported', 'reported', 'reported']);
  });

  it('two reports arriving together cannot both found agreeing groups', async () => {
    const { buyer, jobId } = await run({ ...TOLERANT, replicas: 2 }, [1.0000001, 1.0000002], true);
    expect((await view(jobId, buyer)).state).toBe('succeeded');
  });

  it('a verified tolerant task is never a canary, even when its buyer allows spot-checks', async () => {
    const [other] = await registerAgents(engine, 1, 'newcomer');
    const provider = (await store.accounts.getAgent(other!))!.providerId;
    const exact = await run({ replicas: 3, quorum: 2, spotChecks: true }, [0.5, 0.5, 0.5], false, 'exact');
    expect((await view(exact.jobId, exact.buyer)).state).toBe('succeeded');
    expect(await store.tasks.canariesFor(provider, 8)).toHaveLength(1); // the control: an exact job's task is one
    const { buyer, jobId } = await run({ ...TOLERANT, spotChecks: true }, [0.5, 0.5000001, 0.5000002], false, 'tol');
    expect((await view(jobId, buyer)).state).toBe('succeeded');
    expect(await store.tasks.canariesFor(provider, 8)).toHaveLength(1);
  });
});
