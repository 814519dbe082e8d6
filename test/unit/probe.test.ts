/**
 * The determinism probe (verification.checkDeterminism) through a real engine over both databases: the job's tasks
 * wait while task 0 runs twice at once on one agent; agreeing results release them, differing ones fail the job
 * naming the differing outputs; a lost probe runs again elsewhere; the probe is paid from the job's escrow and leaves
 * its provider's record alone.
 */
import { rm } from 'node:fs/promises';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  accountLedger,
  decideProbe,
  escrowLedger,
  executionMaxCost,
  failureOf,
  jobEscrow,
  probeDifferences,
  toMicro,
  type ProbeRun,
} from '../../src/core/index.js';
import type { BlobStore } from '../../src/coordinator/blobs.js';
import { DEFAULT_ENGINE_CONFIG, Engine, explainJob } from '../../src/engine/index.js';
import { JobSpecSchema, type Assignment, type JobSpecInput } from '../../src/protocol/index.js';
import type { Store } from '../../src/store/index.js';
import { claimAll, completedReport, fundedBuyer, registerAgents, submitJob } from '../helpers/engine-flow.js';
import { tempBlobStore } from '../helpers/outputs.js';
import { storeKinds } from '../helpers/stores.js';

const T0 = 1_700_000_000_000;
const CREDITS = 1000;

describe('core: the probe in escrow', () => {
  it('holds two more executions at the most one can cost when the spec asks for a determinism check', () => {
    const plain = JobSpecSchema.parse({ image: 'x', command: ['y'], verification: { replicas: 2, quorum: 2 } });
    const probed = JobSpecSchema.parse({
      image: 'x',
      command: ['y'],
      verification: { replicas: 2, quorum: 2, checkDeterminism: true },
    });
    expect(jobEscrow(plain, 3).probe).toBe(0);
    expect(jobEscrow(probed, 3).total - jobEscrow(plain, 3).total).toBe(2 * executionMaxCost(probed));
  });
});

describe('core: deciding a probe', () => {
  const run = (id: string, pair: number, state: ProbeRun['state'], verdict: string | null = null): ProbeRun => ({
    id,
    pair,
    state,
    verdict,
    manifest: null,
    failure: null,
  });

  it('waits for both halves, then agrees or differs by verdict', () => {
    expect(decideProbe([run('a', 1, 'reported', 'h1'), run('b', 1, 'running')], 3)).toEqual({ kind: 'wait' });
    expect(decideProbe([run('a', 1, 'reported', 'h1'), run('b', 1, 'reported', 'h1')], 3)).toEqual({
      kind: 'agree',
      close: ['a', 'b'],
    });
    expect(decideProbe([run('a', 1, 'reported', 'h1'), run('b', 1, 'reported', 'h2')], 3).kind).toBe('differ');
  });

  it('ends a pair a provider-side error broke, reads only the latest pair, and gives up at maxErrors', () => {
    expect(decideProbe([run('a', 1, 'lost'), run('b', 1, 'running')], 3)).toEqual({
      kind: 'retry',
      cancel: [],
      stop: ['b'],
      close: [],
    });
    const second = [
      run('a', 1, 'lost'),
      run('b', 1, 'cancelled'),
      run('c', 2, 'reported', 'h'),
      run('d', 2, 'assigned'),
    ];
    expect(decideProbe(second, 3)).toEqual({ kind: 'wait' });
    const broken = [run('a', 1, 'lost'), run('b', 1, 'cancelled'), run('c', 2, 'reported', 'h'), run('d', 2, 'failed')];
    const d = decideProbe(broken, 2);
    expect(d).toMatchObject({ kind: 'give_up', close: ['c'], failure: { reason: 'too_many_errors' } });
  });

  it('names a run that ended in a job failure as a whole result', () => {
    const timedOut = { ...run('a', 1, 'reported', 'failure:timeout'), failure: failureOf('timeout', 'ran 10m') };
    const exited = {
      ...run('b', 1, 'reported', 'h'),
      manifest: { exitCode: 0, stdoutSha256: 'a'.repeat(64), files: [] },
    };
    expect(probeDifferences(timedOut, exited)).toEqual([
      { path: '(result)', where: '', a: 'timeout', b: 'exit 0', why: 'the two runs ended differently' },
    ]);
  });
});

describe.each(storeKinds())('determinism probe ($name)', (kind) => {
  let store: Store;
  let blobs: BlobStore;
  let engine: Engine;
  let now: number;
  let buyerId: string;

  beforeAll(() => kind.setup());
  afterAll(() => kind.teardown());
  beforeEach(async () => {
    now = T0;
    store = await kind.open();
    blobs = await tempBlobStore();
    engine = new Engine(store, {
      blobs,
      config: { ...DEFAULT_ENGINE_CONFIG },
      log: pino({ level: 'silent' }),
      now: () => now,
      random: () => 0,
    });
    buyerId = await fundedBuyer(engine, 'buyer', CREDITS);
  });
  afterEach(async () => {
    await engine.stop();
    await store.close();
    await rm(blobs.dir, { recursive: true, force: true });
  });

  const view = async (jobId: string) => (await store.views.jobView(jobId, buyerId))!;
  const submit = (over: Partial<JobSpecInput>) =>
    submitJob(engine, buyerId, { ...over, verification: { checkDeterminism: true, ...over.verification } });

  /** Schedules and returns the probe pair's agent and its two claimed executions. */
  async function probePair(jobId: string, agentIds: readonly string[]): Promise<{ agent: string; pair: Assignment[] }> {
    await engine.schedule();
    const placed = (await view(jobId)).tasks.flatMap((t) => t.executions);
    expect(placed).toHaveLength(2);
    expect(new Set(placed.map((e) => e.agentId)).size).toBe(1);
    const claimed = await claimAll(engine, agentIds);
    expect(claimed).toHaveLength(2);
    return { agent: claimed[0]!.agentId, pair: claimed.map((c) => c.a) };
  }

  /** Every ended job's escrow empty, the ledger audited clean, and the buyer charged exactly what the job paid. */
  async function expectMoneySettled(jobId: string): Promise<void> {
    await engine.settle();
    expect(await store.ledger.audit()).toEqual([]);
    expect(await store.ledger.balance(escrowLedger(jobId))).toBe(0);
    const billing = (await view(jobId)).billing;
    expect(billing.settled).toBe(true);
    const spent = toMicro(CREDITS) - (await store.ledger.balance(accountLedger(buyerId)));
    expect(spent).toBe(toMicro(billing.paid + billing.fees));
  }

  /** The reputation events of the providers that ran probe executions of the job, about those executions. */
  async function probeReputationEvents(jobId: string): Promise<unknown[]> {
    const probes = (await view(jobId)).tasks.flatMap((t) => t.executions).filter((e) => e.probe !== undefined);
    const events = [];
    for (const providerId of new Set(probes.map((e) => e.providerId)))
      events.push(...(await store.reputation.history(providerId, 100)));
    const ids = new Set(probes.filter((e) => e.state !== 'lost').map((e) => e.id));
    return events.filter((e) => e.executionId !== null && ids.has(e.executionId));
  }

  it('holds the tasks while task 0 runs twice on one agent, then fans out when the results agree', async () => {
    const agentIds = await registerAgents(engine, 3);
    const jobId = await submit({ verification: { replicas: 2, quorum: 2 }, array: { count: 2 } });
    const { agent, pair } = await probePair(jobId, agentIds);
    let v = await view(jobId);
    expect(v.probe).toBe('pending');
    expect(v.tasks[0]!.executions.map((e) => e.probe)).toEqual([1, 1]);
    expect(v.tasks[1]!.executions).toEqual([]);
    expect(pair.map((a) => a.env.DEQO_TASK_INDEX)).toEqual(['0', '0']);
    expect(v.history.at(-1)?.message).toMatch(/task 0 runs twice at once/);

    now += 1000;
    for (const a of pair) await engine.report(agent, a.executionId, await completedReport(engine, a, 'same'));
    v = await view(jobId);
    expect(v.probe).toBe('passed');
    expect(v.tasks[0]!.executions.map((e) => [e.state, e.failure?.reason])).toEqual([
      ['cancelled', 'probe'],
      ['cancelled', 'probe'],
    ]);
    expect(v.tasks[0]!.executions.every((e) => (e.paid ?? 0) > 0)).toBe(true);
    expect(v.history.at(-1)?.message).toMatch(/determinism probe passed/);

    // Fanned out: both tasks get their two replicas; the probe counts toward no quorum.
    await engine.schedule();
    const ordinary = await claimAll(engine, agentIds);
    expect(ordinary).toHaveLength(4);
    for (const { agentId, a } of ordinary)
      await engine.report(agentId, a.executionId, await completedReport(engine, a, `task ${a.env.DEQO_TASK_INDEX}`));
    v = await view(jobId);
    expect(v.state).toBe('succeeded');
    expect(v.tasks[0]!.executions.filter((e) => e.state === 'valid')).toHaveLength(2);
    await expectMoneySettled(jobId);
    expect(await probeReputationEvents(jobId)).toEqual([]);
  });

  it('ends a pending probe as cancelled when the buyer cancels the job, and settles it', async () => {
    const agentIds = await registerAgents(engine, 2);
    const jobId = await submit({ array: { count: 2 } });
    await probePair(jobId, agentIds);
    expect((await view(jobId)).probe).toBe('pending');
    expect(await engine.cancelJob(jobId)).toBe(true);
    const v = await view(jobId);
    expect([v.state, v.probe]).toEqual(['cancelled', 'cancelled']);
    await expectMoneySettled(jobId);
  });

  it("starts the held tasks' queue timeout when the probe passes", async () => {
    const agentIds = await registerAgents(engine, 2);
    const jobId = await submit({ array: { count: 2 }, queueTimeoutSeconds: 60 });
    const { agent, pair } = await probePair(jobId, agentIds);
    for (let i = 0; i < 4; i++) {
      now += 30_000;
      await engine.heartbeat(
        agent,
        pair.map((a) => ({ executionId: a.executionId, fencingToken: a.fencingToken })),
      );
    }
    await engine.reap();
    expect((await view(jobId)).tasks.map((t) => t.state)).toEqual(['running', 'queued']); // held, not timed out
    for (const a of pair) await engine.report(agent, a.executionId, await completedReport(engine, a, 'same'));
    await engine.reap();
    expect((await view(jobId)).tasks.map((t) => t.state)).toEqual(['running', 'queued']);
    await engine.schedule();
    expect(await claimAll(engine, agentIds)).toHaveLength(2);
  });

  it('fails the job naming the output file that differs, pays the probe, and places nothing else', async () => {
    const agentIds = await registerAgents(engine, 3);
    const jobId = await submit({ verification: { replicas: 2, quorum: 2 }, array: { count: 3 } });
    const { agent, pair } = await probePair(jobId, agentIds);
    now += 1000;
    for (const [i, a] of pair.entries()) {
      const files = { 'out/random.txt': `${i * 7919}`, 'same.txt': 'fixed' };
      await engine.report(agent, a.executionId, await completedReport(engine, a, 'stdout', { files }));
    }
    const v = await view(jobId);
    expect(v.state).toBe('failed');
    expect(v.probe).toBe('failed');
    for (const t of v.tasks) {
      expect(t.state).toBe('failed');
      expect(t.failure?.reason).toBe('nondeterministic');
      expect(t.failure?.message).toMatch(/these outputs differ: out\/random\.txt\./);
      expect(t.failure?.message).not.toMatch(/same\.txt|stdout/);
    }
    expect(v.history.at(-1)?.message).toMatch(/determinism probe failed: .*out\/random\.txt/);
    await engine.schedule();
    expect((await view(jobId)).tasks.flatMap((t) => t.executions)).toHaveLength(2);
    expect(v.tasks[0]!.executions.every((e) => e.failure?.reason === 'probe' && (e.paid ?? 0) > 0)).toBe(true);
    await expectMoneySettled(jobId);
    expect(await probeReputationEvents(jobId)).toEqual([]);
    const provider = v.tasks[0]!.executions[0]!.providerId;
    const record = (await store.reputation.records([provider], now, engine.policy.quota)).get(provider)!.reputation;
    expect(record).toMatchObject({ valid: 0, invalid: 0, errors: 0, consecutiveValid: 0 });
  });

  it('names stdout and a missing file, and fails by the comparator only beyond its tolerance', async () => {
    const agentIds = await registerAgents(engine, 2);
    const compare = [{ glob: '*.json', format: 'json' as const, absTol: 0.01 }];
    const within = await submit({ verification: { compare } });
    const first = await probePair(within, agentIds);
    for (const [i, a] of first.pair.entries()) {
      const files = { 'm.json': JSON.stringify({ loss: 0.5 + i * 0.001 }) };
      await engine.report(first.agent, a.executionId, await completedReport(engine, a, 'ok', { files }));
    }
    expect((await view(within)).probe).toBe('passed');

    const beyond = await submit({ verification: { compare } });
    await engine.schedule();
    const second = await claimAll(engine, agentIds);
    const second2 = second.filter((c) => c.a.jobId === beyond);
    expect(second2).toHaveLength(2);
    for (const [i, { agentId, a }] of second2.entries()) {
      const files = { 'm.json': JSON.stringify({ loss: 0.5 + i * 0.1 }) };
      await engine.report(agentId, a.executionId, await completedReport(engine, a, 'ok', { files }));
    }
    const failed = (await view(beyond)).tasks[0]!.failure;
    expect(failed?.reason).toBe('nondeterministic');
    expect(failed?.message).toMatch(/m\.json at \$\.loss: 0\.(5 vs 0\.6|6 vs 0\.5) \(beyond absTol 0\.01\)/);

    const exact = await submit({});
    await engine.schedule();
    const third = (await claimAll(engine, agentIds)).filter((c) => c.a.jobId === exact);
    for (const [i, { agentId, a }] of third.entries()) {
      const files: Record<string, string> = i === 0 ? { 'a.txt': 'x', 'b.txt': 'y' } : { 'a.txt': 'x' };
      await engine.report(agentId, a.executionId, await completedReport(engine, a, `out ${i}`, { files }));
    }
    expect((await view(exact)).tasks[0]!.failure?.message).toMatch(/these outputs differ: \(stdout\), b\.txt\./);
  });

  it('runs the probe again on another provider when its agent is lost', async () => {
    const agentIds = await registerAgents(engine, 2);
    const jobId = await submit({ array: { count: 2 } });
    const { agent } = await probePair(jobId, agentIds);
    const other = agentIds.find((id) => id !== agent)!;

    // The probe's agent goes silent; the other keeps heartbeating.
    now += DEFAULT_ENGINE_CONFIG.leaseTtlMs + 1;
    await engine.heartbeat(other, []);
    await engine.reap();
    let v = await view(jobId);
    expect(v.probe).toBe('pending');
    // The first loss ends the pair: its partner is discarded unpaid (it would be lost too) and not counted as an error.
    expect(v.tasks[0]!.executions.map((e) => [e.state, e.failure?.reason]).sort()).toEqual([
      ['cancelled', 'probe_discarded'],
      ['lost', 'lease_expired'],
    ]);
    expect(v.tasks[1]!.executions).toEqual([]);

    now += DEFAULT_ENGINE_CONFIG.retryBackoffMaxMs;
    await engine.heartbeat(other, []);
    await engine.schedule();
    const again = await claimAll(engine, [other]);
    expect(again).toHaveLength(2);
    v = await view(jobId);
    expect(v.tasks[0]!.executions.filter((e) => e.probe === 2).map((e) => e.agentId)).toEqual([other, other]);
    expect(v.history.at(-1)?.message).toMatch(/again, after a provider-side error/);
    for (const { a } of again) await engine.report(other, a.executionId, await completedReport(engine, a, 'same'));
    expect((await view(jobId)).probe).toBe('passed');

    await engine.heartbeat(other, []);
    await engine.schedule();
    const ordinary = await claimAll(engine, [other]);
    expect(ordinary).toHaveLength(2);
    for (const { a } of ordinary) await engine.report(other, a.executionId, await completedReport(engine, a, 'r'));
    expect((await view(jobId)).state).toBe('succeeded');
    await expectMoneySettled(jobId);
  });

  it('gives up after maxErrors provider-side errors in probe pairs, charging nothing', async () => {
    const agentIds = await registerAgents(engine, 1);
    const jobId = await submit({ verification: { maxErrors: 2 } });
    await probePair(jobId, agentIds);
    now += DEFAULT_ENGINE_CONFIG.leaseTtlMs + 1;
    await engine.reap();
    expect((await view(jobId)).state).toBe('running');
    // The only agent comes back and may retry (nobody else can), and is lost again.
    now += DEFAULT_ENGINE_CONFIG.retryBackoffMaxMs;
    await engine.heartbeat(agentIds[0]!, []);
    await engine.schedule();
    expect(await claimAll(engine, agentIds)).toHaveLength(2);
    now += DEFAULT_ENGINE_CONFIG.leaseTtlMs + 1;
    await engine.reap();
    const v = await view(jobId);
    expect(v.state).toBe('failed');
    expect(v.tasks[0]!.failure?.reason).toBe('too_many_errors');
    expect(v.tasks[0]!.failure?.message).toMatch(/determinism probe failed on the provider side 2 time/);
    await expectMoneySettled(jobId);
    expect((await view(jobId)).billing.paid).toBe(0);
  });

  it('explains a probe no agent has room for: it needs two copies at once', async () => {
    await registerAgents(engine, 2);
    const jobId = await submit({ resources: { cpus: 1.5 } });
    await engine.schedule();
    expect((await view(jobId)).tasks[0]!.executions).toEqual([]);
    const why = (await explainJob(engine, jobId))!;
    expect(why.summary).toMatch(/^determinism probe \(task 0 twice at once on one agent, which needs room for both\)/);
    expect(why.providers.map((p) => p.reasons[0]?.message)).toEqual([
      'lends 2 cores, the job needs 3',
      'lends 2 cores, the job needs 3',
    ]);
  });

  it('fails the whole job when no agent takes its probe within the queue timeout', async () => {
    await registerAgents(engine, 1);
    const jobId = await submit({ array: { count: 3 }, resources: { cpus: 1.5 }, queueTimeoutSeconds: 60 });
    await engine.schedule();
    now += 61_000;
    await engine.reap();
    const v = await view(jobId);
    expect(v.state).toBe('failed');
    expect(v.probe).toBe('failed');
    expect(v.tasks.map((t) => t.failure?.reason)).toEqual(['queue_timeout', 'queue_timeout', 'queue_timeout']);
    expect(v.tasks[0]!.failure?.message).toMatch(/no provider took the determinism probe/);
    await expectMoneySettled(jobId);
  });

  it('lets a probe pair share its provider but never two ordinary replicas of a task', async () => {
    await registerAgents(engine, 1);
    const jobId = await submit({});
    await engine.schedule();
    const [p] = (await view(jobId)).tasks[0]!.executions;
    const row = { taskId: p!.taskId, jobId, agentId: p!.agentId, providerId: p!.providerId };
    const price = { cpuHour: 0, memoryGiBHour: 0, gpuHour: 0, startFee: 0 };
    await store.transaction((tx) =>
      tx.executions.insert(
        [
          { ...row, price, probe: 2 },
          { ...row, price, probe: 2 },
        ],
        now,
      ),
    );
    await store.transaction((tx) => tx.executions.insert([{ ...row, price }], now));
    await expect(store.transaction((tx) => tx.executions.insert([{ ...row, price }], now))).rejects.toThrow();
  });
});
