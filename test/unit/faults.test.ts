/**
 * Coordinator-side fault rules: retry backoff (pure and through the engine), never retrying on a provider that
 * already failed the task, agent status, and the lease grace a restarted or stalled coordinator gives its agents.
 */
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { agentStatus, coordinatorStallMs, retryDelayMs, retryDue, stallThresholdMs } from '../../src/core/index.js';
import { completedReport, fundedBuyer, registerAgents } from '../helpers/engine-flow.js';
import { tempBlobStore } from '../helpers/outputs.js';
import { DEFAULT_ENGINE_CONFIG, Engine } from '../../src/engine/index.js';
import { JobSpecSchema, type Assignment } from '../../src/protocol/index.js';
import { openSqliteStore, type Store } from '../../src/store/index.js';

const T0 = 1_700_000_000_000;
const B = { baseMs: 2_000, maxMs: 60_000 };

describe('retry backoff and agent status (pure)', () => {
  it('doubles from the base per failure and stops at the cap', () => {
    expect([0, 1, 2, 3, 4, 5, 6, 7, 100].map((n) => retryDelayMs(n, B))).toEqual([
      0, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000, 60_000,
    ]);
    expect(retryDue(0, null, T0, B)).toBe(true);
    expect(retryDue(2, T0, T0 + 3_999, B)).toBe(false);
    expect(retryDue(2, T0, T0 + 4_000, B)).toBe(true);
  });

  it('reads a gap between reaper rounds longer than the lease TTL minus a heartbeat as a coordinator stall', () => {
    const t = { heartbeatIntervalMs: 5_000, leaseTtlMs: 15_000, tickMs: 1_000 };
    expect(stallThresholdMs(t)).toBe(10_000);
    expect(coordinatorStallMs(null, T0 + 99_000, t)).toBe(0); // no earlier round: a start, which recover() covers
    expect(coordinatorStallMs(T0, T0 + 1_000, t)).toBe(0);
    expect(coordinatorStallMs(T0, T0 + 10_000, t)).toBe(0);
    expect(coordinatorStallMs(T0, T0 + 10_001, t)).toBe(10_001);
    // Leases barely longer than a heartbeat: an ordinary late tick is still not a stall.
    expect(stallThresholdMs({ heartbeatIntervalMs: 1_000, leaseTtlMs: 1_500, tickMs: 1_000 })).toBe(2_000);
  });

  it('reads silence as online, then suspect after three heartbeats, then offline after the grace period', () => {
    expect(agentStatus(T0, T0 + 15_000, 15_000)).toBe('online');
    expect(agentStatus(T0, T0 + 15_001, 15_000)).toBe('suspect');
    expect(agentStatus(T0, T0 + 600_000, 15_000)).toBe('suspect');
    expect(agentStatus(T0, T0 + 600_001, 15_000)).toBe('offline');
  });
});

describe('faults in the engine', () => {
  let store: Store;
  let engine: Engine;
  let now: number;
  let buyerId: string;
  let agentIds: string[] = [];

  beforeEach(async () => {
    now = T0;
    store = await openSqliteStore(':memory:');
    engine = new Engine(store, {
      blobs: await tempBlobStore(),
      config: { ...DEFAULT_ENGINE_CONFIG },
      log: pino({ level: 'silent' }),
      now: () => now,
    });
    buyerId = await fundedBuyer(engine, 'buyer', 1000);
    agentIds = await registerAgents(engine, 4);
  });
  afterEach(async () => {
    await engine.stop();
    await store.close();
  });

  const alive = async () => {
    for (const id of agentIds) await engine.heartbeat(id, []);
  };
  const executions = async (jobId: string) => (await store.views.jobView(jobId, buyerId))!.tasks[0]!.executions;
  /** The agent holding the task's one assigned execution claims it and then goes silent until its lease expires. */
  const loseOne = async (jobId: string) => {
    const open = (await executions(jobId)).find((e) => e.state === 'assigned')!;
    await engine.claim(open.agentId, 1, 0);
    now += DEFAULT_ENGINE_CONFIG.leaseTtlMs + 1;
    await alive(); // every agent is alive; only the lease is gone (as when the holder was partitioned away)
    await engine.reap();
    return open;
  };

  it('reschedules a lost execution after a doubling backoff, each time on a provider that has not had the task', async () => {
    const { jobId } = await engine.submitJob(
      buyerId,
      JobSpecSchema.parse({
        image: 'deqo/busybox:test',
        command: ['true'],
        verification: { replicas: 1, quorum: 1, maxErrors: 4, maxExecutions: 4 },
      }),
    );
    await engine.schedule();
    const providers: string[] = [];
    for (const [loss, wait] of [
      [1, 2_000],
      [2, 4_000],
      [3, 8_000],
    ] as const) {
      providers.push((await loseOne(jobId)).providerId);
      now += wait - 1;
      await alive();
      await engine.schedule();
      expect(
        (await executions(jobId)).filter((e) => e.state === 'assigned'),
        `retry ${loss} placed before its backoff`,
      ).toHaveLength(0);
      now += 1;
      await alive();
      await engine.schedule();
      const next = (await executions(jobId)).filter((e) => e.state === 'assigned');
      expect(next, `retry ${loss} not placed after its backoff`).toHaveLength(1);
      expect(providers).not.toContain(next[0]!.providerId);
    }
    // Four providers, four executions: after the fourth loss nothing is left to try, and the task fails with a reason.
    await loseOne(jobId);
    const v = (await store.views.jobView(jobId, buyerId))!;
    expect(v.state).toBe('failed');
    expect(v.tasks[0]!.failure?.reason).toBe('too_many_errors');
    expect(new Set(v.tasks[0]!.executions.map((e) => e.providerId)).size).toBe(4);
  });

  it('gives running leases a grace on coordinator start, so an agent that could not reach it can still report', async () => {
    const { jobId } = await engine.submitJob(
      buyerId,
      JobSpecSchema.parse({ image: 'deqo/busybox:test', command: ['true'], verification: { replicas: 1, quorum: 1 } }),
    );
    await engine.schedule();
    const open = (await executions(jobId))[0]!;
    const [a] = await engine.claim(open.agentId, 1, 0);
    // The coordinator is down for 40 s: longer than the lease TTL (15 s), shorter than the restart grace (60 s).
    now += 40_000;
    const restarted = new Engine(store, {
      blobs: engine.blobs,
      config: { ...DEFAULT_ENGINE_CONFIG },
      log: pino({ level: 'silent' }),
      now: () => now,
    });
    await restarted.recover();
    await restarted.reap();
    expect((await executions(jobId))[0]!.state).toBe('running');
    expect(
      (await restarted.heartbeat(open.agentId, [{ executionId: a!.executionId, fencingToken: a!.fencingToken }])).stop,
    ).toEqual([]);

    // Without renewals the grace ends like any lease: the agent really is dead.
    const other = new Engine(store, {
      blobs: engine.blobs,
      config: { ...DEFAULT_ENGINE_CONFIG, restartGraceMs: 0 },
      log: pino({ level: 'silent' }),
      now: () => now,
    });
    now += DEFAULT_ENGINE_CONFIG.leaseTtlMs + 1;
    await other.recover();
    await other.reap();
    expect((await executions(jobId))[0]).toMatchObject({ state: 'lost', failure: { reason: 'lease_expired' } });
  });
});

describe('a coordinator that stalls longer than a lease', () => {
  let store: Store;
  let engine: Engine;
  let now: number;
  let buyerId: string;
  let lines: Array<{ msg?: string; stalledMs?: number; extended?: number }>;

  beforeEach(async () => {
    now = T0;
    lines = [];
    store = await openSqliteStore(':memory:');
    const log = pino({ level: 'info' }, { write: (s: string) => lines.push(JSON.parse(s) as (typeof lines)[0]) });
    engine = new Engine(store, {
      blobs: await tempBlobStore(),
      config: { ...DEFAULT_ENGINE_CONFIG },
      log,
      now: () => now,
    });
    buyerId = await fundedBuyer(engine, 'buyer', 1000);
  });
  afterEach(async () => {
    await engine.stop();
    await store.close();
  });

  const state = async (jobId: string, executionId: string) =>
    (await store.views.jobView(jobId, buyerId))!.tasks[0]!.executions.find((e) => e.id === executionId)!;

  it("extends running leases before reaping, so a healthy agent keeps its execution; a dead agent's still ends after the grace", async () => {
    const [healthy, dead] = await registerAgents(engine, 2);
    // Two replicas of one task never share a provider: one execution on each agent.
    const { jobId } = await engine.submitJob(
      buyerId,
      JobSpecSchema.parse({
        image: 'deqo/busybox:test',
        command: ['true'],
        verification: { replicas: 2, quorum: 2 },
      }),
    );
    await engine.schedule();
    const held = new Map<string, Assignment>();
    for (const agentId of [healthy!, dead!]) for (const a of await engine.claim(agentId, 4, 0)) held.set(agentId, a);
    const h = held.get(healthy!)!;
    const d = held.get(dead!)!;
    expect([h.jobId, d.jobId]).toEqual([jobId, jobId]);
    const renew = () => engine.heartbeat(healthy!, [{ executionId: h.executionId, fencingToken: h.fencingToken }]);

    await engine.tick(); // the reaper's reference round
    // The event loop is blocked for 40 s: longer than the lease TTL (15 s), shorter than the restart grace (60 s).
    // No heartbeat is handled meanwhile, and the tick that runs when it resumes is the first thing it does.
    now += 40_000;
    await engine.tick();
    expect(await state(h.jobId, h.executionId)).toMatchObject({ state: 'running' });
    expect(await state(d.jobId, d.executionId)).toMatchObject({ state: 'running' });
    expect(
      lines.find((l) => l.msg === 'coordinator stalled for 40000 ms: running leases extended for agents to reach it'),
    ).toMatchObject({ stalledMs: 40_000, extended: 2 });
    expect((await renew()).stop).toEqual([]); // the healthy agent reaches it and renews

    // From here the coordinator ticks on time; only the healthy agent heartbeats.
    for (let t = 0; t <= DEFAULT_ENGINE_CONFIG.restartGraceMs + DEFAULT_ENGINE_CONFIG.leaseTtlMs; t += 5_000) {
      now += 5_000;
      await renew();
      await engine.tick();
    }
    expect(await state(h.jobId, h.executionId)).toMatchObject({ state: 'running' });
    expect(await state(d.jobId, d.executionId)).toMatchObject({ state: 'lost', failure: { reason: 'lease_expired' } });
    expect(lines.filter((l) => l.msg?.startsWith('coordinator stalled'))).toHaveLength(1); // on-time ticks are no stall
    await engine.report(healthy!, h.executionId, await completedReport(engine, h, 'out')); // its lease still holds
    expect(await state(h.jobId, h.executionId)).toMatchObject({ state: 'reported' });
  });

  it('without a tick between, the same jump reaped by hand still expires the lease (what the grace prevents)', async () => {
    const [agentId] = await registerAgents(engine, 1);
    const { jobId } = await engine.submitJob(
      buyerId,
      JobSpecSchema.parse({ image: 'deqo/busybox:test', command: ['true'], verification: { replicas: 1, quorum: 1 } }),
    );
    await engine.schedule();
    const [a] = await engine.claim(agentId!, 1, 0);
    now += 40_000;
    await engine.reap();
    expect(await state(jobId, a!.executionId)).toMatchObject({ state: 'lost', failure: { reason: 'lease_expired' } });
  });
});

describe('a task no remaining provider can finish', () => {
  it('ends at its queue timeout once the providers that failed it are gone: the waiting result is paid for its work (not graded) and the rest refunded', async () => {
    let now = T0;
    const store = await openSqliteStore(':memory:');
    const engine = new Engine(store, {
      blobs: await tempBlobStore(),
      config: { ...DEFAULT_ENGINE_CONFIG },
      log: pino({ level: 'silent' }),
      now: () => now,
    });
    try {
      const buyerId = await fundedBuyer(engine, 'buyer', 10);
      const ids = await registerAgents(engine, 3);
      const { jobId } = await engine.submitJob(
        buyerId,
        JobSpecSchema.parse({
          image: 'deqo/busybox:test',
          command: ['true'],
          queueTimeoutSeconds: 60,
          verification: { replicas: 2, quorum: 2 },
        }),
      );
      const view = async () => (await store.views.jobView(jobId, buyerId))!;
      // Agents that failed the task go offline (stop heartbeating): nobody left may retry it.
      const gone = new Set<string>();
      const step = async (ms: number) => {
        now += ms;
        for (const id of ids) if (!gone.has(id)) await engine.heartbeat(id, []);
        await engine.reap();
        await engine.schedule();
      };
      await engine.schedule();
      // One replica reports a result; every other provider fails the task in turn (provider-side), leaving nobody.
      const [first, second] = (await view()).tasks[0]!.executions;
      const a = (await engine.claim(first!.agentId, 1, 0))[0]!;
      await engine.report(first!.agentId, a.executionId, {
        outcome: 'failed',
        fencingToken: a.fencingToken,
        reason: 'agent_error',
        message: 'disk full',
      });
      gone.add(first!.agentId);
      const b = (await engine.claim(second!.agentId, 1, 0))[0]!;
      await engine.report(second!.agentId, b.executionId, await completedReport(engine, b, 'result'));
      await step(DEFAULT_ENGINE_CONFIG.retryBackoffMs);
      const third = (await view()).tasks[0]!.executions.find((e) => e.state === 'assigned')!;
      const c = (await engine.claim(third.agentId, 1, 0))[0]!;
      await engine.report(third.agentId, c.executionId, {
        outcome: 'failed',
        fencingToken: c.fencingToken,
        reason: 'agent_error',
        message: 'disk full',
      });
      gone.add(third.agentId);
      await step(30_000);
      expect((await view()).state).toBe('running'); // still waiting, within its queue timeout
      await step(31_000);
      await engine.settle();
      const v = await view();
      expect(v.state).toBe('failed');
      expect(v.tasks[0]!.failure?.reason).toBe('queue_timeout');
      expect(v.tasks[0]!.executions.map((e) => e.state).sort()).toEqual(['cancelled', 'failed', 'failed']);
      const waiting = v.tasks[0]!.executions.find((e) => e.state === 'cancelled')!;
      expect(waiting.paid).toBeGreaterThan(0); // the honest provider's finished work
      expect(v.billing).toMatchObject({ settled: true, paid: waiting.paid, inEscrow: 0 });
      expect(v.billing.refunded).toBeGreaterThan(0);
      const rec = await engine.accounts.reputation(waiting.providerId, 10);
      expect(rec.reputation).toMatchObject({ valid: 0, invalid: 0 }); // not graded either way
      expect(await store.ledger.audit()).toEqual([]);
    } finally {
      await engine.stop();
      await store.close();
    }
  });
});

describe('the only machine that can run a task', () => {
  it('may retry it after failing it on its side, up to maxErrors (it is not excluded for good)', async () => {
    let now = T0;
    const store = await openSqliteStore(':memory:');
    const engine = new Engine(store, {
      blobs: await tempBlobStore(),
      config: { ...DEFAULT_ENGINE_CONFIG },
      log: pino({ level: 'silent' }),
      now: () => now,
    });
    try {
      const buyerId = await fundedBuyer(engine, 'buyer', 10);
      const [only] = await registerAgents(engine, 1);
      const { jobId } = await engine.submitJob(
        buyerId,
        JobSpecSchema.parse({ image: 'deqo/busybox:test', command: ['true'], verification: { maxErrors: 3 } }),
      );
      const view = async () => (await store.views.jobView(jobId, buyerId))!;
      for (let attempt = 1; attempt <= 2; attempt++) {
        await engine.schedule();
        const a = (await engine.claim(only!, 1, 0))[0]!;
        await engine.report(only!, a.executionId, {
          outcome: 'failed',
          fencingToken: a.fencingToken,
          reason: 'agent_error',
          message: `crash ${attempt}`,
        });
        now += DEFAULT_ENGINE_CONFIG.retryBackoffMaxMs; // past the retry backoff
        await engine.heartbeat(only!, []);
      }
      // The third try succeeds: the task verifies on the machine that failed it twice.
      await engine.schedule();
      const a = (await engine.claim(only!, 1, 0))[0]!;
      await engine.report(only!, a.executionId, await completedReport(engine, a, 'ok'));
      const v = await view();
      expect(v.state).toBe('succeeded');
      expect(v.tasks[0]!.executions.map((e) => e.state)).toEqual(['failed', 'failed', 'valid']);
    } finally {
      await engine.stop();
      await store.close();
    }
  });
});
