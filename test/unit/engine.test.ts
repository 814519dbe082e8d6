/**
 * The engine over a real SQLite store with a controllable clock: submit, schedule, claim, report (with its
 * digest checks and fencing), verification, lease loss and replacement on another provider.
 */
import { createHash } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  DEFAULT_QUOTA,
  DeqoError,
  executionMaxCost,
  failureText,
  grantTxn,
  resultHashOf,
  toMicro,
} from '../../src/core/index.js';
import { classifyReport, DEFAULT_ENGINE_CONFIG, Engine, jobResults } from '../../src/engine/index.js';
import {
  JobSpecSchema,
  OfferSchema,
  type Assignment,
  type Capacity,
  type JobSpecInput,
  type Manifest,
  type ReportRequest,
} from '../../src/protocol/index.js';
import { openSqliteStore, type Store } from '../../src/store/index.js';
import type { BlobStore } from '../../src/coordinator/blobs.js';
import { storeOutputs, tempBlobStore } from '../helpers/outputs.js';

const T0 = 1_700_000_000_000;
const CAPACITY: Capacity = {
  cpus: 2,
  memoryMb: 4096,
  arch: 'amd64',
  os: 'linux',
  dockerVersion: 'x',
  gpus: [],
  allowNetwork: false,
};
const sha = (s: string) => createHash('sha256').update(s).digest('hex');

let store: Store;
let blobs: BlobStore;
let engine: Engine;
let now: number;
let buyerId: string;

beforeEach(async () => {
  now = T0;
  store = await openSqliteStore(':memory:');
  blobs = await tempBlobStore();
  // Draws of 0: placement takes the best-ranked agent (ties by agent id), so a test knows where its replicas go.
  engine = new Engine(store, {
    blobs,
    config: { ...DEFAULT_ENGINE_CONFIG },
    log: pino({ level: 'silent' }),
    now: () => now,
    random: () => 0,
  });
  buyerId = await store.transaction((tx) => tx.accounts.createAccount('buyer', ['buyer'], now));
  await store.transaction((tx) => tx.ledger.post(grantTxn(buyerId, toMicro(1000), 'test credits'), now));
});
afterEach(async () => {
  await engine.stop();
  await store.close();
  await rm(blobs.dir, { recursive: true, force: true });
});

/** Registers `n` agents, each under its own provider account. Returns their ids. */
async function agents(n: number, capacity: Capacity = CAPACITY): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const providerId = await store.transaction((tx) => tx.accounts.createAccount(`provider${i}`, ['provider'], now));
    const id = `agent_${i}`;
    await engine.registerAgent({
      id,
      providerId,
      name: `box${i}`,
      publicKey: `pk${i}`,
      capacity,
      offer: OfferSchema.parse({}),
      availability: { state: 'available' },
    });
    ids.push(id);
  }
  return ids;
}

async function submit(over: Partial<JobSpecInput> = {}): Promise<string> {
  const spec = JobSpecSchema.parse({ image: 'deqo/busybox:test', command: ['echo', 'hi'], ...over });
  return (await engine.submitJob(buyerId, spec)).jobId;
}

/**
 * A completed report whose blobs are recorded and whose hashes are consistent: its outputs (`result.txt` holding
 * `file <stdout>`) a real tarball in the blob store, unless `outputsBlob` names another tarball to send instead.
 */
async function completed(
  a: Assignment,
  stdout: string,
  exitCode = 0,
  outputsBlob?: string,
): Promise<ReportRequest & { outcome: 'completed' }> {
  const stdoutBlob = sha(stdout);
  const stderrBlob = sha(`stderr ${a.executionId}`); // stderr differs per provider; it is not part of the result
  const outputs = await storeOutputs(blobs, { 'result.txt': `file ${stdout}` });
  outputsBlob ??= outputs.outputsBlob;
  for (const b of [stdoutBlob, stderrBlob, outputsBlob])
    await store.transaction((tx) => tx.accounts.recordBlob(b, 10, now));
  // As if uploaded by whichever provider reports it (reports may only name blobs the reporter uploaded).
  for (const agent of await store.accounts.listAgents())
    await store.transaction((tx) =>
      tx.accounts.grantBlobAccess([stdoutBlob, stderrBlob, outputsBlob], agent.providerId),
    );
  const manifest: Manifest = { exitCode, stdoutSha256: stdoutBlob, files: outputs.files };
  return {
    outcome: 'completed',
    fencingToken: a.fencingToken,
    manifest,
    resultHash: resultHashOf(manifest),
    outputsBlob,
    stdoutBlob,
    stderrBlob,
    usage: { wallMs: 1000, cpuMs: 900, maxMemoryBytes: 1 << 20 },
  };
}

async function claimOne(agentId: string): Promise<Assignment> {
  const got = await engine.claim(agentId, 4, 0);
  expect(got).toHaveLength(1);
  return got[0]!;
}

async function rejection(p: Promise<unknown>): Promise<DeqoError> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(DeqoError);
  return err as DeqoError;
}

async function jobView(jobId: string) {
  const v = await store.views.jobView(jobId, buyerId);
  if (!v) throw new Error('missing job');
  return v;
}

describe('Engine', () => {
  it('runs a 2-replica job to success: schedule, claim with task env, report, verify', async () => {
    const [a, b] = await agents(2);
    const jobId = await submit({
      verification: { replicas: 2, quorum: 2 },
      env: { MODE: 'x' },
      array: { parameters: [{ seed: 7 }] },
    });
    await engine.schedule();
    const ea = await claimOne(a!);
    const eb = await claimOne(b!);
    expect(ea.jobId).toBe(jobId);
    expect(ea.fencingToken).toBe(1);
    expect(ea.leaseExpiresAt).toBe(T0 + DEFAULT_ENGINE_CONFIG.leaseTtlMs);
    expect(ea.env).toMatchObject({ MODE: 'x', DEQO_TASK_INDEX: '0', DEQO_TASK_COUNT: '1', DEQO_PARAM_SEED: '7' });
    expect(ea.image).toBe('deqo/busybox:test');
    expect(eb.executionId).not.toBe(ea.executionId);

    now += 1000;
    await engine.report(a!, ea.executionId, await completed(ea, 'answer 42'));
    expect((await jobView(jobId)).tasks[0]!.state).toBe('running'); // one vote is not a quorum of 2
    now += 1000;
    await engine.report(b!, eb.executionId, await completed(eb, 'answer 42'));

    const v = await jobView(jobId);
    expect(v.state).toBe('succeeded');
    expect(v.tasks[0]!.state).toBe('verified');
    expect(v.tasks[0]!.executions.map((e) => e.state)).toEqual(['valid', 'valid']);
    const results = await jobResults(store, jobId, buyerId);
    expect(results?.tasks[0]?.resultHash).toBe((await completed(ea, 'answer 42')).resultHash);
    expect(results?.tasks[0]?.agreedBy).toHaveLength(2);
  });

  it('marks the odd one out invalid and asks for one more replica on disagreement', async () => {
    const ids = await agents(4);
    const jobId = await submit({ verification: { replicas: 2, quorum: 2 } });
    await engine.schedule();
    const placed = (await jobView(jobId)).tasks[0]!.executions;
    const holders = placed.map((e) => e.agentId);
    const [x, y] = holders;
    const ex = await claimOne(x!);
    const ey = await claimOne(y!);
    await engine.report(x!, ex.executionId, await completed(ex, 'one'));
    await engine.report(y!, ey.executionId, await completed(ey, 'two'));
    let v = await jobView(jobId);
    expect(v.tasks[0]!.targetReplicas).toBe(3);
    await engine.schedule();
    v = await jobView(jobId);
    const third = v.tasks[0]!.executions.find((e) => e.state === 'assigned')!;
    expect(holders).not.toContain(third.agentId);
    expect(ids).toContain(third.agentId);
    const ez = await claimOne(third.agentId);
    await engine.report(third.agentId, ez.executionId, await completed(ez, 'two'));
    v = await jobView(jobId);
    expect(v.state).toBe('succeeded');
    const stateOf = (agentId: string) => v.tasks[0]!.executions.find((e) => e.agentId === agentId)?.state;
    expect([stateOf(x!), stateOf(y!), stateOf(third.agentId)]).toEqual(['invalid', 'valid', 'valid']);
  });

  it('refuses a report whose result hash does not match its manifest (digest_mismatch), and records nothing', async () => {
    const [a] = await agents(1);
    const jobId = await submit();
    await engine.schedule();
    const e = await claimOne(a!);
    const good = await completed(e, 'out');
    const err = await rejection(engine.report(a!, e.executionId, { ...good, resultHash: sha('something else') }));
    expect(err.code).toBe('digest_mismatch');
    expect(err.status).toBe(422);
    const err2 = await rejection(engine.report(a!, e.executionId, { ...good, stdoutBlob: good.stderrBlob }));
    expect(err2.code).toBe('digest_mismatch');
    expect((await jobView(jobId)).tasks[0]!.executions[0]!.state).toBe('running');
    // The consistent report is still accepted.
    await engine.report(a!, e.executionId, good);
    expect((await jobView(jobId)).state).toBe('succeeded');
  });

  it('refuses a manifest that lists one output path twice as validation_failed, not as an internal error', async () => {
    const [a] = await agents(1);
    await submit();
    await engine.schedule();
    const e = await claimOne(a!);
    const good = await completed(e, 'out');
    const file = good.manifest.files[0]!;
    const manifest: Manifest = { ...good.manifest, files: [file, { ...file }] };
    const err = await rejection(engine.report(a!, e.executionId, { ...good, manifest }));
    expect(err.code).toBe('validation_failed');
    expect(err.retryable).toBe(false);
  });

  it('decides a task whose result was recorded but never verified (crash between the two) on a later tick', async () => {
    const [a] = await agents(1);
    const jobId = await submit();
    await engine.schedule();
    const e = await claimOne(a!);
    // What Engine.report does, minus the verification: the coordinator dies right after the durable write.
    const lease = (await store.executions.leaseOf(e.executionId))!;
    const { end } = await classifyReport(engine, await completed(e, 'out'), lease, now);
    expect(
      await store.transaction((tx) => tx.executions.recordEnd(e.executionId, a!, e.fencingToken, end, now)),
    ).not.toBeNull();
    expect((await jobView(jobId)).state).toBe('running');

    const restarted = new Engine(store, {
      blobs,
      config: { ...DEFAULT_ENGINE_CONFIG },
      log: pino({ level: 'silent' }),
      now: () => now,
    });
    await restarted.tick();
    const v = await jobView(jobId);
    expect(v.tasks[0]!.state).toBe('verified');
    expect(v.state).toBe('succeeded');
  });

  it('refuses a report that names blobs the coordinator does not have', async () => {
    const [a] = await agents(1);
    await submit();
    await engine.schedule();
    const e = await claimOne(a!);
    const good = await completed(e, 'out');
    const err = await rejection(engine.report(a!, e.executionId, { ...good, outputsBlob: sha('never uploaded') }));
    expect(err.code).toBe('validation_failed');
  });

  it('refuses a report under a stale fencing token or twice (stale_lease), and from another agent as if the execution did not exist', async () => {
    const [a, b] = await agents(2);
    const jobId = await submit();
    await engine.schedule();
    const holder = (await jobView(jobId)).tasks[0]!.executions[0]!.agentId;
    const other = holder === a ? b! : a!;
    const e = await claimOne(holder);
    const good = await completed(e, 'out');
    expect(
      (await rejection(engine.report(holder, e.executionId, { ...good, fencingToken: e.fencingToken + 1 }))).code,
    ).toBe('stale_lease');
    expect((await rejection(engine.report(other, e.executionId, good))).code).toBe('not_found');
    await engine.report(holder, e.executionId, good);
    const again = await rejection(engine.report(holder, e.executionId, good));
    expect(again.code).toBe('stale_lease');
    expect(again.status).toBe(409);
  });

  it('replaces a lost lease with an execution on another provider, and refuses the lost holder’s report', async () => {
    const [a, b] = await agents(2);
    const jobId = await submit();
    await engine.schedule();
    const placed = (await jobView(jobId)).tasks[0]!.executions;
    expect(placed).toHaveLength(1);
    const holder = placed[0]!.agentId;
    const other = holder === a ? b! : a!;
    const e = await claimOne(holder);

    // The holder goes silent; the other agent keeps heartbeating.
    now += DEFAULT_ENGINE_CONFIG.leaseTtlMs + 1;
    expect(await engine.heartbeat(other, [])).toEqual({
      stop: [],
      leaseExpiresAt: now + DEFAULT_ENGINE_CONFIG.leaseTtlMs,
    });
    await engine.reap();
    let v = await jobView(jobId);
    expect(v.tasks[0]!.executions[0]).toMatchObject({ state: 'lost', failure: { reason: 'lease_expired' } });
    expect(v.tasks[0]!.state).toBe('running');

    // The retry waits out its backoff (2 s after the first loss), then runs on the other provider.
    await engine.schedule();
    expect((await jobView(jobId)).tasks[0]!.executions).toHaveLength(1);
    now += DEFAULT_ENGINE_CONFIG.retryBackoffMs;
    await engine.heartbeat(other, []);
    await engine.schedule();
    const replacement = await claimOne(other);
    expect(replacement.executionId).not.toBe(e.executionId);
    expect(replacement.jobId).toBe(jobId);
    expect(
      (await engine.heartbeat(holder, [{ executionId: e.executionId, fencingToken: e.fencingToken }])).stop,
    ).toEqual([e.executionId]);
    expect((await rejection(engine.report(holder, e.executionId, await completed(e, 'late')))).code).toBe(
      'stale_lease',
    );

    await engine.report(other, replacement.executionId, await completed(replacement, 'done'));
    v = await jobView(jobId);
    expect(v.state).toBe('succeeded');
    expect(v.tasks[0]!.executions.map((x) => x.state).sort()).toEqual(['lost', 'valid']);
  });

  it('takes back executions that are never claimed and gives them to another provider', async () => {
    const [a, b] = await agents(2);
    const jobId = await submit();
    await engine.schedule();
    const first = (await jobView(jobId)).tasks[0]!.executions[0]!;
    const other = first.agentId === a ? b! : a!;
    now += DEFAULT_ENGINE_CONFIG.claimTimeoutMs + 1;
    await engine.heartbeat(other, []);
    await engine.reap();
    now += DEFAULT_ENGINE_CONFIG.retryBackoffMs;
    await engine.heartbeat(other, []);
    await engine.schedule();
    const v = await jobView(jobId);
    expect(v.tasks[0]!.executions.map((e) => [e.agentId, e.state])).toEqual([
      [first.agentId, 'lost'],
      [other, 'assigned'],
    ]);
    expect(v.tasks[0]!.executions[0]!.failure?.reason).toBe('not_claimed');
  });

  it('fails a task after maxErrors provider-side failures', async () => {
    await agents(3);
    const jobId = await submit({ verification: { replicas: 1, quorum: 1, maxErrors: 2 } });
    for (let round = 0; round < 2; round++) {
      now += DEFAULT_ENGINE_CONFIG.retryBackoffMs; // the first round has nothing to wait for; the second waits 2 s
      for (const a of await store.accounts.listAgents()) await engine.heartbeat(a.id, []);
      await engine.schedule();
      const open = (await jobView(jobId)).tasks[0]!.executions.find((e) => e.state === 'assigned')!;
      const e = await claimOne(open.agentId);
      await engine.report(open.agentId, e.executionId, {
        outcome: 'failed',
        fencingToken: e.fencingToken,
        reason: 'agent_error',
        message: 'disk full',
      });
    }
    const v = await jobView(jobId);
    expect(v.state).toBe('failed');
    expect(v.tasks[0]!.failure?.reason).toBe('too_many_errors');
    expect(v.tasks[0]!.executions.map((e) => e.state)).toEqual(['failed', 'failed']);
    await engine.schedule();
    expect((await jobView(jobId)).tasks[0]!.executions).toHaveLength(2); // nothing more is scheduled
  });

  it('keeps failure messages within the protocol limit so long agent messages cannot break job views', async () => {
    await agents(2);
    const jobId = await submit({ verification: { replicas: 1, quorum: 1, maxErrors: 1 } });
    await engine.schedule();
    const holder = (await jobView(jobId)).tasks[0]!.executions[0]!.agentId;
    const e = await claimOne(holder);
    await engine.report(holder, e.executionId, {
      outcome: 'failed',
      fencingToken: e.fencingToken,
      reason: 'agent_error',
      message: 'm'.repeat(4096),
    });
    const v = await jobView(jobId);
    expect(v.state).toBe('failed');
    expect(v.tasks[0]!.failure?.reason).toBe('too_many_errors');
    expect(v.tasks[0]!.failure!.message.length).toBeLessThanOrEqual(4096);

    const job2 = await submit();
    await engine.schedule();
    const h2 = (await jobView(job2)).tasks[0]!.executions[0]!.agentId;
    const e2 = await claimOne(h2);
    await engine.report(h2, e2.executionId, {
      outcome: 'failed',
      fencingToken: e2.fencingToken,
      reason: 'out_of_memory',
      message: 'k'.repeat(4096),
    });
    const v2 = await jobView(job2);
    // One provider's job failure is not the task's until a second provider confirms it.
    expect(v2.tasks[0]!.state).toBe('running');
    const f = v2.tasks[0]!.executions[0]!.failure!;
    expect(f.reason).toBe('out_of_memory');
    // The message keeps the agent's detail (clamped); the catalogue's words and advice are added when shown.
    expect(f.message).toMatch(/^k+…?$/);
    expect(failureText(f, 'flag')).toMatch(
      /^the program ran out of memory — k+…?; raise the memory limit \(--memory\)$/,
    );
    expect(v2.tasks[0]!.executions[0]!.failure!.message.length).toBeLessThanOrEqual(4096);
  });

  it('refuses a report whose failure reason the catalogue does not let an agent report, naming the field', async () => {
    const [a] = await agents(1);
    const jobId = await submit();
    await engine.schedule();
    const e = await claimOne(a!);
    for (const reason of ['no_such_reason', 'no_quorum', 'lease_expired']) {
      const err = await engine
        .report(a!, e.executionId, { outcome: 'failed', fencingToken: e.fencingToken, reason, message: 'x' })
        .then(
          () => null,
          (x: unknown) => x as DeqoError,
        );
      expect(err).toMatchObject({ code: 'validation_failed', details: [{ path: 'reason' }] });
    }
    // Nothing was recorded: the lease still holds and an honest report is taken.
    expect((await jobView(jobId)).tasks[0]!.executions[0]!.state).toBe('running');
    await engine.report(a!, e.executionId, await completed(e, 'out'));
    expect((await jobView(jobId)).state).toBe('succeeded');
  });

  it.each(['out_of_memory', 'outputs_unpackageable'])(
    'fails a task when a quorum agrees on a job failure (%s)',
    async (reason) => {
      const [a, b] = await agents(2);
      const jobId = await submit({ verification: { replicas: 2, quorum: 2 } });
      await engine.schedule();
      for (const id of [a!, b!]) {
        const e = await claimOne(id);
        await engine.report(id, e.executionId, {
          outcome: 'failed',
          fencingToken: e.fencingToken,
          reason,
          message: 'exit 137',
        });
        // One provider's report does not fail the task alone.
        if (id === a) expect((await jobView(jobId)).state).toBe('running');
      }
      const v = await jobView(jobId);
      expect(v.state).toBe('failed');
      expect(v.tasks[0]!.failure).toMatchObject({ reason, blame: 'job' });
    },
  );

  it('fails a task with nonzero_exit when a second provider confirms the nonzero exit code', async () => {
    const [a, b] = await agents(2);
    const jobId = await submit();
    await engine.schedule();
    const e = await claimOne(a!);
    await engine.report(a!, e.executionId, await completed(e, 'oops', 2));
    expect((await jobView(jobId)).state).toBe('running'); // one provider cannot fail the task (or bill for it) alone
    await engine.schedule();
    const other = (await jobView(jobId)).tasks[0]!.executions.find((x) => x.state === 'assigned')!.agentId;
    expect([a, b]).toContain(other);
    const e2 = await claimOne(other);
    await engine.report(other, e2.executionId, await completed(e2, 'oops', 2));
    const v = await jobView(jobId);
    expect(v.state).toBe('failed');
    expect(v.tasks[0]!.failure?.reason).toBe('nonzero_exit');
    expect(v.tasks[0]!.failure?.message).toContain('code 2');
  });

  it('tells the agent to stop executions of a cancelled job', async () => {
    const [a] = await agents(1);
    const jobId = await submit();
    await engine.schedule();
    const e = await claimOne(a!);
    expect(await engine.cancelJob(jobId)).toBe(true);
    expect((await engine.heartbeat(a!, [{ executionId: e.executionId, fencingToken: e.fencingToken }])).stop).toEqual([
      e.executionId,
    ]);
    expect((await rejection(engine.report(a!, e.executionId, await completed(e, 'x')))).code).toBe('stale_lease');
  });

  it('wakes a long-polling claim for work placed between its look and its wait (no lost wake-up, no not_claimed)', async () => {
    engine = new Engine(store, {
      blobs,
      config: { ...DEFAULT_ENGINE_CONFIG, tickMs: 3_600_000 }, // no round but the ones this test runs
      log: pino({ level: 'silent' }),
      now: () => now,
      random: () => 0,
    });
    engine.start();
    const [a] = await agents(1);
    // The claim's first look (a transaction that finds nothing) ends; before the claim can wait, a job is submitted
    // and placed on the agent, and the agent is woken: as another coordinator's notification would arrive.
    let jobId = '';
    const transaction = store.transaction.bind(store);
    let armed = true;
    store.transaction = (async (fn: Parameters<Store['transaction']>[0]) => {
      const r = await transaction(fn);
      if (armed) {
        armed = false;
        jobId = await submit();
        await engine.schedule();
      }
      return r;
    }) as Store['transaction'];
    // The claim may wait an hour, past the test's timeout: it returns only if the placement woke it.
    const got = await engine.claim(a!, 1, 3_600_000);
    expect(got.map((x) => x.jobId)).toEqual([jobId]);
  });

  it('refuses unknown agents and array jobs that expand too far', async () => {
    expect((await rejection(engine.claim('agent_ghost', 1, 0))).code).toBe('not_found');
    expect((await rejection(engine.heartbeat('agent_ghost', []))).code).toBe('not_found');
    const hundred = Array.from({ length: 100 }, (_, i) => i);
    const err = await rejection(submit({ array: { sweep: { a: hundred, b: hundred, c: [1, 2] } } }));
    expect(err.code).toBe('validation_failed');
    expect(await store.views.listJobs(buyerId, { limit: 10 })).toEqual([]);
  });

  it('does not schedule onto agents that have gone offline', async () => {
    const [a] = await agents(1);
    now += DEFAULT_ENGINE_CONFIG.agentTtlMs + 1;
    const jobId = await submit();
    await engine.schedule();
    expect((await jobView(jobId)).tasks[0]!.executions).toEqual([]);
    await engine.heartbeat(a!, []);
    await engine.schedule();
    expect((await jobView(jobId)).tasks[0]!.executions).toHaveLength(1);
  });
});

describe('adaptive replication and settlement in the engine', () => {
  /** Runs one 2-of-2 job on agents a and b to verification (both results agree). */
  async function replicatedJob(a: string, b: string): Promise<void> {
    await submit({ verification: { replicas: 2, quorum: 2 } });
    await engine.schedule();
    for (const id of [a, b]) {
      const e = await claimOne(id);
      now += 100;
      await engine.report(id, e.executionId, await completed(e, 'same'));
    }
  }

  it('lets an established provider with 10 cross-checked valid results run an adaptive task alone, and refunds the unused replica', async () => {
    const [a, b] = await agents(2);
    for (let i = 0; i < 10; i++) await replicatedJob(a!, b!);
    const providerA = (await store.accounts.getAgent(a!))!.providerId;
    const providerB = (await store.accounts.getAgent(b!))!.providerId;
    // A pair of newcomers cannot confirm each other: neither is established, so neither runs alone yet.
    const newcomer = (await store.reputation.records([providerA], now, DEFAULT_QUOTA)).get(providerA)!.reputation;
    expect(newcomer.confirmed).toBe(0);
    await engine.accounts.vouch(providerA);
    await engine.accounts.vouch(providerB);
    const before = (await store.reputation.records([providerA], now, DEFAULT_QUOTA)).get(providerA)!.reputation;
    expect(before.consecutiveValid).toBe(10);

    // With a draw of 0 (below 1 − 1/10) the first placement runs alone.
    engine = new Engine(store, {
      blobs,
      config: { ...DEFAULT_ENGINE_CONFIG },
      log: pino({ level: 'silent' }),
      now: () => now,
      random: () => 0,
    });
    const jobId = await submit({ verification: { mode: 'adaptive', replicas: 2, quorum: 2 } });
    await engine.schedule();
    let v = await jobView(jobId);
    expect(v.tasks[0]!.executions).toHaveLength(1);
    expect(v.tasks[0]!.targetReplicas).toBe(1);
    const holder = v.tasks[0]!.executions[0]!.agentId;
    const e = await claimOne(holder);
    await engine.report(holder, e.executionId, await completed(e, 'alone'));
    v = await jobView(jobId);
    expect(v.state).toBe('succeeded');
    expect(v.billing.settled).toBe(true);
    // Escrow funded two executions; one was paid, the rest came back.
    expect(toMicro(v.billing.escrowHeld)).toBe(2 * executionMaxCost(v.spec));
    expect(toMicro(v.billing.paid)).toBe(toMicro(v.tasks[0]!.executions[0]!.paid!));
    expect(toMicro(v.billing.refunded)).toBe(toMicro(v.billing.escrowHeld) - toMicro(v.billing.paid));
    expect(v.billing.refunded).toBeGreaterThan(v.billing.escrowHeld / 2);
    // An unchecked result does not raise consecutive valid.
    const holderProvider = (await store.accounts.getAgent(holder))!.providerId;
    expect(
      (await store.reputation.records([holderProvider], now, DEFAULT_QUOTA)).get(holderProvider)!.reputation
        .consecutiveValid,
    ).toBe(10);
    expect(await store.ledger.audit()).toEqual([]);
  });

  it('replicates an adaptive task when the draw says so, or when no provider has earned trust', async () => {
    const [a, b] = await agents(2);
    engine = new Engine(store, {
      blobs,
      config: { ...DEFAULT_ENGINE_CONFIG },
      log: pino({ level: 'silent' }),
      now: () => now,
      random: () => 0,
    });
    const fresh = await submit({ verification: { mode: 'adaptive', replicas: 2, quorum: 2 } });
    await engine.schedule();
    expect((await jobView(fresh)).tasks[0]!.executions).toHaveLength(2); // nobody trusted yet
    for (const id of [a!, b!]) {
      const e = await claimOne(id);
      await engine.report(id, e.executionId, await completed(e, 'x'));
    }
    for (let i = 0; i < 9; i++) await replicatedJob(a!, b!);
    engine = new Engine(store, {
      blobs,
      config: { ...DEFAULT_ENGINE_CONFIG },
      log: pino({ level: 'silent' }),
      now: () => now,
      random: () => 0.95,
    }); // ≥ 1 − 1/10
    const jobId = await submit({ verification: { mode: 'adaptive', replicas: 2, quorum: 2 } });
    await engine.schedule();
    expect((await jobView(jobId)).tasks[0]!.executions).toHaveLength(2);
  });
});
