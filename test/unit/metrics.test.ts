/**
 * Observability: GET /metrics of real coordinators (real HTTP, real SQLite) while a job runs through the engine
 * without Docker; the metrics of rarer paths (lost lease, escrow top-up, a top-up the buyer cannot fund) with a
 * controlled clock; and the coordinator's log lines carrying job, task and execution ids as fields.
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import {
  COUNTS_CACHE_MS,
  createMetrics,
  DEFAULT_COORDINATOR_CONFIG,
  startCoordinator,
  type CoordinatorMetrics,
  type RunningCoordinator,
} from '../../src/coordinator/index.js';
import { executionMaxCost, fromMicro } from '../../src/core/index.js';
import { DEFAULT_ENGINE_CONFIG, Engine } from '../../src/engine/index.js';
import { JobSpecSchema, type JobSpecInput } from '../../src/protocol/index.js';
import { openSqliteStore, type Store } from '../../src/store/index.js';
import { claimAll, claimOne, completedReport, fundedBuyer, registerAgents, submitJob } from '../helpers/engine-flow.js';
import { tempBlobStore } from '../helpers/outputs.js';
import { parseSamples, sampleValue, type Sample } from '../helpers/prometheus.js';

type LogLine = Record<string, unknown> & { msg: string; level: number };

/** A pino logger at info whose JSON lines land in `lines`. */
function capturingLog(lines: LogLine[]): Logger {
  return pino(
    { level: 'info' },
    new Writable({
      write(chunk: Buffer, _enc, cb) {
        for (const l of chunk.toString('utf8').split('\n')) if (l.trim() !== '') lines.push(JSON.parse(l) as LogLine);
        cb();
      },
    }),
  );
}

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function scrape(c: RunningCoordinator): Promise<{ text: string; samples: Sample[] }> {
  const res = await fetch(`${c.url}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
  const text = await res.text();
  return { text, samples: parseSamples(text) };
}

/** Sum of one series over several scrapes (counters are per process). */
const total = (scrapes: Array<{ samples: Sample[] }>, name: string, labels: Record<string, string> = {}) =>
  scrapes.reduce((acc, s) => acc + (sampleValue(s.samples, name, labels) ?? 0), 0);

async function until(what: string, pred: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('GET /metrics of real coordinators', () => {
  it('moves as a job runs; gauges agree across two coordinators on one database, counters add up; logs carry ids as fields', async () => {
    const lines: LogLine[] = [];
    const log = capturingLog(lines);
    const dataDir = await mkdtemp(join(tmpdir(), 'deqo-metrics-'));
    const config = { ...DEFAULT_COORDINATOR_CONFIG, dataDir, port: 0, metrics: true };
    const a = await startCoordinator(config, log);
    cleanups.push(() => a.close());
    const b = await startCoordinator(config, log);
    cleanups.push(() => b.close());

    const before = await scrape(a);
    expect(sampleValue(before.samples, 'deqo_jobs', { state: 'succeeded' })).toBe(0);
    expect(sampleValue(before.samples, 'deqo_agents', { status: 'online' })).toBe(0);
    expect(sampleValue(before.samples, 'deqo_dispatch_latency_seconds_count')).toBe(0);
    expect(sampleValue(before.samples, 'deqo_credits_moved_total', { kind: 'escrow_hold' })).toBe(0);
    expect(sampleValue(before.samples, 'process_cpu_user_seconds_total')).toBeGreaterThan(0);
    expect(before.text).toContain('# TYPE nodejs_eventloop_lag_seconds gauge');

    const buyerId = await fundedBuyer(a.engine, 'buyer', 100);
    const agentIds = await registerAgents(a.engine, 2, 'metrics');
    const jobId = await submitJob(a.engine, buyerId, { verification: { replicas: 2, quorum: 2 } });
    await a.engine.schedule();
    const claimed = await claimAll(a.engine, agentIds);
    expect(claimed).toHaveLength(2);
    for (const { agentId, a: asg } of claimed)
      await a.engine.report(agentId, asg.executionId, await completedReport(a.engine, asg, 'the answer'));
    await until('the job is settled', async () => (await a.store.views.billing(jobId)).settled);
    const billing = await a.store.views.billing(jobId);
    await new Promise((r) => setTimeout(r, COUNTS_CACHE_MS + 50)); // past the gauges' cache

    const after = [await scrape(a), await scrape(b)];
    const [sa] = after;
    // Gauges come from the database: both coordinators say the same.
    for (const name of ['deqo_jobs', 'deqo_tasks', 'deqo_executions', 'deqo_queue_tasks', 'deqo_agents']) {
      const of = (s: Sample[]) => s.filter((x) => x.name === name);
      expect(of(after[1]!.samples), name).toEqual(of(sa!.samples));
    }
    expect(sampleValue(sa!.samples, 'deqo_jobs', { state: 'succeeded' })).toBe(1);
    expect(sampleValue(sa!.samples, 'deqo_jobs', { state: 'queued' })).toBe(0);
    expect(sampleValue(sa!.samples, 'deqo_tasks', { state: 'verified' })).toBe(1);
    expect(sampleValue(sa!.samples, 'deqo_executions', { state: 'valid' })).toBe(2);
    expect(sampleValue(sa!.samples, 'deqo_queue_tasks')).toBe(0);
    expect(sampleValue(sa!.samples, 'deqo_agents', { status: 'online' })).toBe(2);
    // Counters count what each process did; over both they add up to what happened, once.
    expect(total(after, 'deqo_dispatch_latency_seconds_count')).toBe(2);
    expect(sampleValue(sa!.samples, 'deqo_dispatch_latency_seconds_count')).toBe(2); // the claims went to a
    expect(total(after, 'deqo_tasks_decided_total', { outcome: 'verified', reason: 'none' })).toBe(1);
    expect(total(after, 'deqo_executions_settled_total', { state: 'valid' })).toBe(2);
    expect(total(after, 'deqo_job_duration_seconds_count', { state: 'succeeded' })).toBe(1);
    expect(total(after, 'deqo_job_duration_seconds_bucket', { state: 'succeeded', le: '+Inf' })).toBe(1);
    expect(total(after, 'deqo_credits_moved_total', { kind: 'escrow_hold' })).toBeCloseTo(billing.escrowHeld, 6);
    expect(
      total(after, 'deqo_credits_moved_total', { kind: 'payment' }) +
        total(after, 'deqo_credits_moved_total', { kind: 'fee' }),
    ).toBeCloseTo(billing.paid, 6);
    expect(total(after, 'deqo_credits_moved_total', { kind: 'refund' })).toBeCloseTo(billing.refunded, 6);
    expect(billing.paid).toBeGreaterThan(0);
    expect(billing.refunded).toBeGreaterThan(0);
    // Aggregates only: no id or name reaches a label.
    for (const id of [jobId, buyerId, ...agentIds, ...claimed.map((c) => c.a.executionId), 'metrics-box0'])
      expect(sa!.text).not.toContain(id);

    // The log: ids are fields, and a line about an execution names its task and job, a line about a task its job.
    const named = (msg: string) => lines.filter((l) => l.msg === msg);
    expect(named('job submitted')).toEqual([expect.objectContaining({ jobId })]);
    const taskId = (await a.store.views.jobView(jobId, buyerId))!.tasks[0]!.id;
    for (const msg of ['execution claimed', 'execution reported']) {
      expect(
        named(msg)
          .map((l) => l.executionId)
          .sort(),
        msg,
      ).toEqual(claimed.map((c) => c.a.executionId).sort());
      for (const l of named(msg)) expect(l, msg).toMatchObject({ jobId, taskId });
    }
    expect(named('task decided')).toEqual([expect.objectContaining({ jobId, taskId, outcome: 'verified' })]);
    expect(named('job settled')).toEqual([expect.objectContaining({ jobId, state: 'succeeded' })]);
    for (const l of lines) {
      if ('executionId' in l) expect(l, l.msg).toMatchObject({ taskId: expect.any(String), jobId: expect.any(String) });
      if ('taskId' in l) expect(l, l.msg).toMatchObject({ jobId: expect.any(String) });
      expect(l.msg).not.toContain(jobId);
    }
  });

  it('is not served unless enabled', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'deqo-metrics-off-'));
    const c = await startCoordinator({ ...DEFAULT_COORDINATOR_CONFIG, dataDir, port: 0 });
    cleanups.push(() => c.close());
    expect((await fetch(`${c.url}/metrics`)).status).toBe(404);
  });
});

describe('metrics of rarer paths (controlled clock)', () => {
  const T0 = 1_700_000_000_000;
  let now = T0;
  let store: Store;
  let engine: Engine;
  let metrics: CoordinatorMetrics;
  let lines: LogLine[];

  async function setUp(cacheMs = 0): Promise<void> {
    now = T0;
    lines = [];
    store = await openSqliteStore(':memory:');
    engine = new Engine(store, {
      blobs: await tempBlobStore(),
      config: { ...DEFAULT_ENGINE_CONFIG },
      log: capturingLog(lines),
      now: () => now,
    });
    metrics = createMetrics(store, engine, { cacheMs });
    cleanups.push(async () => {
      metrics.close();
      await engine.stop();
      await store.close();
    });
  }
  const read = async () => parseSamples(await metrics.scrape());

  it('counts a lost lease by reason, logs it with its ids, and the replacement dispatch', async () => {
    await setUp();
    const buyerId = await fundedBuyer(engine, 'buyer', 100);
    const agentIds = await registerAgents(engine, 2);
    const jobId = await submitJob(engine, buyerId);
    await engine.schedule();
    const [first] = await claimAll(engine, agentIds);
    now += DEFAULT_ENGINE_CONFIG.leaseTtlMs + 1;
    for (const id of agentIds) await engine.heartbeat(id, []); // agents stay online; the lease holder just lost track of it
    await engine.reap();
    await engine.settle();
    const lost = lines.filter((l) => l.msg === 'execution lost');
    expect(lost).toEqual([
      expect.objectContaining({
        executionId: first!.a.executionId,
        jobId,
        reason: 'lease_expired',
        taskId: expect.any(String),
      }),
    ]);

    now += DEFAULT_ENGINE_CONFIG.retryBackoffMs; // the retry waits out its backoff (2 s)
    for (const id of agentIds) await engine.heartbeat(id, []);
    await engine.schedule();
    const [second] = await claimAll(engine, agentIds);
    expect(second!.agentId).not.toBe(first!.agentId);
    await engine.report(second!.agentId, second!.a.executionId, await completedReport(engine, second!.a, 'out'));
    await engine.settle();

    const s = await read();
    expect(sampleValue(s, 'deqo_executions_lost_total', { reason: 'lease_expired' })).toBe(1);
    expect(sampleValue(s, 'deqo_executions_lost_total', { reason: 'not_claimed' })).toBe(0);
    expect(sampleValue(s, 'deqo_executions_settled_total', { state: 'lost' })).toBe(1);
    expect(sampleValue(s, 'deqo_executions_settled_total', { state: 'valid' })).toBe(1);
    expect(sampleValue(s, 'deqo_dispatch_latency_seconds_count')).toBe(2);
    // Placed at T0 and claimed at once, then placed again 17 s later and claimed at once: both in the first bucket.
    expect(sampleValue(s, 'deqo_dispatch_latency_seconds_bucket', { le: '0.005' })).toBe(2);
    // Submitted at T0, ended 17 s later: in the 30 s bucket, not the 10 s one.
    expect(sampleValue(s, 'deqo_job_duration_seconds_bucket', { state: 'succeeded', le: '10' })).toBe(0);
    expect(sampleValue(s, 'deqo_job_duration_seconds_bucket', { state: 'succeeded', le: '30' })).toBe(1);
    expect(sampleValue(s, 'deqo_job_duration_seconds_sum', { state: 'succeeded' })).toBeCloseTo(
      (DEFAULT_ENGINE_CONFIG.leaseTtlMs + 1 + 2_000) / 1000,
      3,
    );
  });

  it('counts an escrow top-up as held credits, and a top-up the buyer cannot fund as a failed task (insufficient_funds)', async () => {
    await setUp();
    const over: Partial<JobSpecInput> = { verification: { replicas: 2, quorum: 2 } };
    const perExecution = executionMaxCost(JobSpecSchema.parse({ image: 'x', command: ['x'], ...over }));
    const rich = await fundedBuyer(engine, 'rich', 100);
    const poor = await fundedBuyer(engine, 'poor', fromMicro(2 * perExecution)); // exactly the first two executions
    const richJob = await submitJob(engine, rich, over);
    const poorJob = await submitJob(engine, poor, over);
    await engine.schedule(); // no agent yet: both tasks wait
    let s = await read();
    expect(sampleValue(s, 'deqo_queue_tasks')).toBe(2);
    expect(sampleValue(s, 'deqo_jobs', { state: 'queued' })).toBe(2);
    expect(sampleValue(s, 'deqo_agents', { status: 'online' })).toBe(0);

    const agentIds = await registerAgents(engine, 3);
    await engine.schedule();
    const claimed = await claimAll(engine, agentIds);
    expect(claimed).toHaveLength(4);
    for (const [i, { agentId, a }] of claimed.entries())
      await engine.report(agentId, a.executionId, await completedReport(engine, a, `disagreeing ${i}`));
    await engine.schedule(); // the rich task's third execution
    await engine.settle();

    const poorView = (await store.views.jobView(poorJob, poor))!;
    expect(poorView.tasks[0]!.failure?.reason).toBe('insufficient_funds');
    // The task fails for lack of credits: its finished results are paid for their work, not graded (no free damage).
    expect(poorView.tasks[0]!.executions.map((e) => e.state)).toEqual(['cancelled', 'cancelled']);
    expect((await store.views.jobView(richJob, rich))!.tasks[0]!.targetReplicas).toBe(3);

    s = await read();
    expect(sampleValue(s, 'deqo_credits_moved_total', { kind: 'escrow_hold' })).toBeCloseTo(
      fromMicro(5 * perExecution),
      6,
    );
    expect(sampleValue(s, 'deqo_tasks_decided_total', { outcome: 'failed', reason: 'insufficient_funds' })).toBe(1);
    expect(sampleValue(s, 'deqo_executions_settled_total', { state: 'cancelled' })).toBe(2);
    const paid = sampleValue(s, 'deqo_credits_moved_total', { kind: 'payment' })!;
    expect(paid).toBeGreaterThan(0);
    expect(paid + sampleValue(s, 'deqo_credits_moved_total', { kind: 'refund' })!).toBeCloseTo(
      fromMicro(2 * perExecution),
      6,
    );
    expect(sampleValue(s, 'deqo_queue_tasks')).toBe(0);
    expect(sampleValue(s, 'deqo_executions', { state: 'assigned' })).toBe(1); // the rich task's third execution
    expect(sampleValue(s, 'deqo_jobs', { state: 'failed' })).toBe(1);
    expect(sampleValue(s, 'deqo_jobs', { state: 'running' })).toBe(1);
    expect(sampleValue(s, 'deqo_agents', { status: 'online' })).toBe(3);
    expect(lines.filter((l) => l.msg === 'task decided')).toEqual([
      expect.objectContaining({ jobId: poorJob, outcome: 'failed', reason: 'insufficient_funds' }),
    ]);
  });

  it('reads the store at most once per cache period, while counters move at once', async () => {
    await setUp(60_000);
    const buyerId = await fundedBuyer(engine, 'buyer', 100);
    let s = await read();
    expect(sampleValue(s, 'deqo_jobs', { state: 'queued' })).toBe(0);
    await submitJob(engine, buyerId);
    s = await read();
    expect(sampleValue(s, 'deqo_jobs', { state: 'queued' })).toBe(0); // the cached count
    expect(sampleValue(s, 'deqo_credits_moved_total', { kind: 'escrow_hold' })).toBeGreaterThan(0);
  });

  it('survives a throwing listener (logged), and stops counting once closed', async () => {
    await setUp();
    engine.events.on('dispatched', () => {
      throw new Error('observer bug');
    });
    const buyerId = await fundedBuyer(engine, 'buyer', 100);
    const [agentId] = await registerAgents(engine, 1);
    await submitJob(engine, buyerId);
    await engine.schedule();
    await claimOne(engine, agentId!);
    expect(lines.filter((l) => l.msg === 'engine event listener failed')).toEqual([
      expect.objectContaining({ event: 'dispatched' }),
    ]);
    expect(sampleValue(await read(), 'deqo_dispatch_latency_seconds_count')).toBe(1);

    metrics.close();
    await submitJob(engine, buyerId);
    await engine.schedule();
    await claimOne(engine, agentId!);
    expect(sampleValue(await read(), 'deqo_dispatch_latency_seconds_count')).toBe(1);
  });
});
