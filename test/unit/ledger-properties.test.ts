/**
 * Ledger invariants, property-tested with fast-check: the real Engine over in-memory SQLite, then over
 * PostgreSQL (fewer runs: DEQO_PROPERTY_RUNS_PG, default 8), with a controlled clock runs random sequences of submissions (some refused for lack of credits), honest and corrupted results,
 * job-caused and provider-caused failures, reports refused at the door (an outputs tarball that does not match its
 * manifest, a timeout reported before the time limit passed), cancellations, lost agents, late reports and the passing
 * of time.
 * After every step the ledger audits clean and sums to zero; at the end, with every job driven to an end,
 * every escrow is fully released, each execution is paid at most once (and only when valid) exactly its
 * price for its measured use, and every buyer holds its grants less what it paid.
 */
import { createHash } from 'node:crypto';
import { rm } from 'node:fs/promises';
import fc from 'fast-check';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  accountLedger,
  DeqoError,
  escrowLedger,
  executionCost,
  executionMaxCost,
  FEES,
  fundedExecutions,
  grantTxn,
  ISSUER,
  platformFee,
  TERMINAL_JOB_STATES,
  TIMEOUT_REPORT_TOLERANCE_MS,
  toMicro,
} from '../../src/core/index.js';
import type { BlobStore } from '../../src/coordinator/blobs.js';
import { DEFAULT_ENGINE_CONFIG, DEFAULT_MARKET_POLICY, Engine, PLATFORM_ACCOUNT } from '../../src/engine/index.js';
import { resultHashOf } from '../../src/core/index.js';
import {
  JobSpecSchema,
  OfferSchema,
  type Assignment,
  type Capacity,
  type JobSpec,
  type JobView,
  type Manifest,
  type Price,
  type ReportRequest,
} from '../../src/protocol/index.js';
import type { Store } from '../../src/store/index.js';
import { storeOutputs, tempBlobStore } from '../helpers/outputs.js';
import { storeKinds, type StoreKind } from '../helpers/stores.js';

const T0 = 1_700_000_000_000;
const CFG = { ...DEFAULT_ENGINE_CONFIG };
const CAPACITY: Capacity = {
  cpus: 4,
  memoryMb: 8192,
  arch: 'amd64',
  os: 'linux',
  dockerVersion: 'x',
  gpus: [],
  allowNetwork: false,
};
const silent = pino({ level: 'silent' });
const sha = (s: string) => createHash('sha256').update(s).digest('hex');

/** mulberry32: a small seeded PRNG, so the engine's adaptive-replication draws replay with the run. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ---------- the world one run drives ----------

interface World {
  store: Store;
  engine: Engine;
  blobs: BlobStore;
  /** Outputs tarballs stored so far, by the content of their one file `result.txt`. */
  outputs: Map<string, { outputsBlob: string; files: Manifest['files'] }>;
  clock: { now: number };
  agents: Array<{ id: string; providerId: string; price: Price }>;
  buyers: Array<{ id: string; granted: number }>;
  /** Buyers' jobs (`buyer` indexes `buyers`) and the platform's re-verifications (`buyer` -1), as they appear. */
  jobs: Array<{ id: string; buyer: number; spec: JobSpec }>;
  /** Leases each agent holds (claimed, not reported). */
  held: Map<string, Assignment[]>;
  /** Leases an agent held when it went silent: its later reports must be refused. */
  stale: Map<string, Assignment[]>;
}

async function makeWorld(kind: StoreKind, prices: Price[], grants: number[], seed: number, feeBps = 0): Promise<World> {
  const clock = { now: T0 };
  const store = await kind.open();
  const blobs = await tempBlobStore();
  const engine = new Engine(store, {
    blobs,
    config: CFG,
    policy: { ...DEFAULT_MARKET_POLICY, feeBps },
    log: silent,
    now: () => clock.now,
    random: seeded(seed),
  });
  const w: World = {
    store,
    engine,
    blobs,
    outputs: new Map(),
    clock,
    agents: [],
    buyers: [],
    jobs: [],
    held: new Map(),
    stale: new Map(),
  };
  for (const [i, price] of prices.entries()) {
    const providerId = await store.transaction((tx) =>
      tx.accounts.createAccount(`provider${i}`, ['provider'], clock.now),
    );
    const id = `agent_${i}`;
    await engine.registerAgent({
      id,
      providerId,
      name: `box${i}`,
      publicKey: `pk${i}`,
      capacity: CAPACITY,
      offer: OfferSchema.parse({ prices: price }),
      availability: { state: 'available' },
    });
    w.agents.push({ id, providerId, price: OfferSchema.parse({ prices: price }).prices });
    w.held.set(id, []);
    w.stale.set(id, []);
  }
  for (const [i, amount] of grants.entries()) {
    const id = await store.transaction((tx) => tx.accounts.createAccount(`buyer${i}`, ['buyer'], clock.now));
    if (amount > 0) await store.transaction((tx) => tx.ledger.post(grantTxn(id, amount, 'test credits'), clock.now));
    w.buyers.push({ id, granted: amount });
  }
  return w;
}

/** The execution of assignment `a`, as its job's view shows it (a re-verification's one task keeps its index). */
async function executionOf(w: World, a: Assignment): Promise<JobView['tasks'][number]['executions'][number]> {
  const t = (await view(w, a.jobId)).tasks.find((x) => x.index === a.taskIndex)!;
  return t.executions.find((x) => x.id === a.executionId)!;
}

async function view(w: World, jobId: string): Promise<JobView> {
  const job = w.jobs.find((j) => j.id === jobId)!;
  const owner = job.buyer >= 0 ? w.buyers[job.buyer]!.id : (await syncPlatformJobs(w))!;
  const v = await w.store.views.jobView(jobId, owner);
  if (!v) throw new Error(`missing job ${jobId}`);
  return v;
}

/** A real outputs tarball holding `result.txt` with `content`, stored once per content. */
async function outputsOf(w: World, content: string): Promise<{ outputsBlob: string; files: Manifest['files'] }> {
  let o = w.outputs.get(content);
  if (!o) {
    o = await storeOutputs(w.blobs, { 'result.txt': content });
    w.outputs.set(content, o);
  }
  return o;
}

/**
 * The outcomes a report can have: honest (every honest provider reports the same result), corrupt (a consistent
 * but wrong result, outvoted), corrupt_exit, swapped (an honest manifest with a tarball of other files: refused at
 * the door), job- and provider-caused failures.
 */
type Outcome = 'honest' | 'corrupt' | 'corrupt_exit' | 'swapped' | 'out_of_memory' | 'timeout' | 'agent_error';

async function reportOf(
  w: World,
  a: Assignment,
  outcome: Outcome,
  wallMs: number,
  withUsage: boolean,
): Promise<ReportRequest> {
  const usage = { wallMs, cpuMs: Math.floor(wallMs / 2), maxMemoryBytes: 1 << 20 };
  if (outcome === 'out_of_memory' || outcome === 'timeout' || outcome === 'agent_error') {
    return {
      outcome: 'failed',
      fencingToken: a.fencingToken,
      reason: outcome,
      message: `${outcome} on ${a.executionId}`,
      ...(withUsage ? { usage } : {}),
    };
  }
  const task = `${a.jobId}/${a.taskIndex}`;
  const honest = await outputsOf(w, `file ${task}`);
  // A cheater's stdout is its own, so two cheaters never agree with each other.
  const manifest: Manifest =
    outcome === 'honest' || outcome === 'swapped'
      ? { exitCode: 0, stdoutSha256: sha(`honest ${task}`), files: honest.files }
      : {
          exitCode: outcome === 'corrupt_exit' ? 1 : 0,
          stdoutSha256: sha(`cheat ${a.executionId}`),
          files: (await outputsOf(w, `forged ${task}`)).files,
        };
  const outputsBlob = outcome === 'honest' ? honest.outputsBlob : (await outputsOf(w, `forged ${task}`)).outputsBlob;
  const stdoutBlob = manifest.stdoutSha256;
  const stderrBlob = sha(`stderr ${a.executionId}`);
  for (const b of [stdoutBlob, stderrBlob, outputsBlob])
    await w.store.transaction((tx) => tx.accounts.recordBlob(b, 10, w.clock.now));
  // The reporter uploaded them (a report may only name blobs its provider can read).
  const agent = await w.store.executions.leaseOf(a.executionId);
  if (agent)
    await w.store.transaction((tx) =>
      tx.accounts.grantBlobAccess([stdoutBlob, stderrBlob, outputsBlob], agent.providerId),
    );
  return {
    outcome: 'completed',
    fencingToken: a.fencingToken,
    manifest,
    resultHash: resultHashOf(manifest),
    stdoutBlob,
    stderrBlob,
    outputsBlob,
    usage,
  };
}

/** Heartbeats the agents (but `except`) with the leases they hold; drops the ones they are told to stop. */
async function heartbeatAll(w: World, except?: string): Promise<void> {
  for (const a of w.agents) {
    if (a.id === except) continue;
    const held = w.held.get(a.id)!;
    const { stop } = await w.engine.heartbeat(
      a.id,
      held.map((h) => ({ executionId: h.executionId, fencingToken: h.fencingToken })),
    );
    w.held.set(
      a.id,
      held.filter((h) => !stop.includes(h.executionId)),
    );
  }
}

async function claim(w: World, agentId: string, max: number): Promise<void> {
  await w.engine.schedule();
  const got = await w.engine.claim(agentId, max, 0);
  w.held.get(agentId)!.push(...got);
}

async function expectStale(w: World, p: Promise<unknown>, a: Assignment, states: string[]): Promise<void> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  count(`stale report (${states.join('/')})`);
  expect(err, 'report should be refused').toBeInstanceOf(DeqoError);
  expect((err as DeqoError).code).toBe('stale_lease');
  const e = await executionOf(w, a);
  expect(states).toContain(e.state);
}

// ---------- operations ----------

interface SpecGen {
  mode: 'none' | 'replicate' | 'adaptive';
  replicas: number;
  quorum: number;
  count: number;
  cpus: number;
  memoryMb: number;
  timeoutSeconds: number;
  maxErrors: number;
  cheapOnly: boolean;
}

type Op =
  | { kind: 'submit'; buyer: number; spec: SpecGen }
  | { kind: 'grant'; buyer: number; amount: number }
  | { kind: 'claim'; agent: number }
  /** `early`: a timeout reported before its time limit passed (a provider claiming what did not happen). */
  | { kind: 'report'; agent: number; outcome: Outcome; wallFrac: number; withUsage: boolean; early: boolean }
  | { kind: 'late'; agent: number }
  | { kind: 'cancel'; job: number }
  | { kind: 'lose'; agent: number }
  | { kind: 'advance'; ms: number };

function toSpec(g: SpecGen): JobSpec {
  const replicas = g.mode === 'none' ? 1 : g.replicas;
  const quorum = g.mode === 'none' ? 1 : Math.min(g.quorum, replicas);
  return JobSpecSchema.parse({
    image: 'deqo/busybox:test',
    command: ['run'],
    resources: { cpus: g.cpus, memoryMb: g.memoryMb, timeoutSeconds: g.timeoutSeconds },
    verification: { mode: g.mode, replicas, quorum, maxErrors: g.maxErrors },
    ...(g.count > 1 ? { array: { count: g.count } } : {}),
    ...(g.cheapOnly ? { maxPrice: { cpuHour: 0.05 } } : {}),
  });
}

async function apply(w: World, op: Op): Promise<void> {
  const { engine, store } = w;
  count(`op ${op.kind}`);
  switch (op.kind) {
    case 'submit': {
      const buyer = w.buyers[op.buyer % w.buyers.length]!;
      const spec = toSpec(op.spec);
      const before = await store.ledger.balance(accountLedger(buyer.id));
      const jobsBefore = (await store.views.listJobs(buyer.id, { limit: 1000 })).length;
      const expected =
        executionMaxCost(spec) * fundedExecutions(spec.verification.mode, spec.verification.replicas) * op.spec.count;
      try {
        const r = await engine.submitJob(buyer.id, spec);
        expect(r.escrow).toBe(expected);
        expect(await store.ledger.balance(accountLedger(buyer.id))).toBe(before - expected);
        expect(await store.ledger.balance(escrowLedger(r.jobId))).toBe(expected);
        w.jobs.push({ id: r.jobId, buyer: op.buyer % w.buyers.length, spec });
      } catch (err) {
        if (!(err instanceof DeqoError) || err.code !== 'insufficient_funds') throw err;
        count('submit refused');
        expect(before).toBeLessThan(expected);
        expect(await store.ledger.balance(accountLedger(buyer.id))).toBe(before);
        expect((await store.views.listJobs(buyer.id, { limit: 1000 })).length).toBe(jobsBefore);
      }
      return;
    }
    case 'grant': {
      const buyer = w.buyers[op.buyer % w.buyers.length]!;
      await store.transaction((tx) => tx.ledger.post(grantTxn(buyer.id, op.amount, 'top-up'), w.clock.now));
      buyer.granted += op.amount;
      return;
    }
    case 'claim':
      return claim(w, w.agents[op.agent % w.agents.length]!.id, 2);
    case 'report': {
      // The named agent reports, or the next one that has (or can claim) work.
      let agentId = '';
      let a: Assignment | undefined;
      for (let k = 0; k < w.agents.length && !a; k++) {
        agentId = w.agents[(op.agent + k) % w.agents.length]!.id;
        if (w.held.get(agentId)!.length === 0) await claim(w, agentId, 1);
        a = w.held.get(agentId)!.shift();
      }
      if (!a) return;
      count(`report ${op.outcome}`);
      await syncPlatformJobs(w);
      const job = w.jobs.find((j) => j.id === a.jobId)!;
      const timeoutMs = job.spec.resources.timeoutSeconds * 1000;
      const wallMs = Math.round(op.wallFrac * timeoutMs);
      // Time passes while it runs (well within the lease); an honest timeout ran its whole time limit.
      w.clock.now += op.outcome === 'timeout' && !op.early ? Math.max(wallMs, timeoutMs) : Math.min(wallMs, 5_000);
      const r = await reportOf(w, a, op.outcome, wallMs, op.withUsage);
      // The job was cancelled, or the task failed, since the claim: the agent must drop it (told so at its next heartbeat).
      const before = await executionOf(w, a);
      if (before.state !== 'running') return expectStale(w, engine.report(agentId, a.executionId, r), a, ['cancelled']);
      // Refused at the door, and held against the provider: outputs that do not match the manifest, a timeout the
      // coordinator did not observe (less than the time limit, less the tolerance, since the claim).
      const refused =
        op.outcome === 'swapped'
          ? { code: 'digest_mismatch', reason: 'outputs_mismatch' }
          : op.outcome === 'timeout' && w.clock.now - before.startedAt! < timeoutMs - TIMEOUT_REPORT_TOLERANCE_MS
            ? { code: 'implausible_report', reason: 'implausible_report' }
            : null;
      if (!refused) {
        await engine.report(agentId, a.executionId, r);
        return;
      }
      count(`report refused (${refused.reason})`);
      const err = await engine.report(agentId, a.executionId, r).then(
        () => null,
        (e: unknown) => e,
      );
      expect(err, 'report should be refused').toBeInstanceOf(DeqoError);
      expect((err as DeqoError).code).toBe(refused.code);
      const after = await executionOf(w, a);
      expect(after).toMatchObject({ state: 'failed', failure: { reason: refused.reason, blame: 'provider' } });
      return;
    }
    case 'late': {
      const agentId = w.agents[op.agent % w.agents.length]!.id;
      const a = w.stale.get(agentId)!.shift();
      if (!a) return;
      await expectStale(w, engine.report(agentId, a.executionId, await reportOf(w, a, 'honest', 1000, true)), a, [
        'lost',
        'cancelled',
      ]);
      return;
    }
    case 'cancel': {
      if (w.jobs.length === 0) return;
      const job = w.jobs[op.job % w.jobs.length]!;
      const wasOpen = !TERMINAL_JOB_STATES.includes((await view(w, job.id)).state);
      expect(await engine.cancelJob(job.id)).toBe(wasOpen);
      return;
    }
    case 'lose': {
      const agentId = w.agents[op.agent % w.agents.length]!.id;
      w.clock.now += CFG.leaseTtlMs + 1;
      await heartbeatAll(w, agentId);
      w.stale.get(agentId)!.push(...w.held.get(agentId)!);
      w.held.set(agentId, []);
      await engine.reap();
      return;
    }
    case 'advance':
      w.clock.now += op.ms;
      await heartbeatAll(w);
      await engine.reap();
      return;
  }
}

// ---------- invariants ----------

const ENDED: string[] = ['valid', 'invalid', 'failed', 'lost', 'cancelled'];

/**
 * Adds the platform's jobs (re-verifications started by backtracking when a provider is outvoted) to `w.jobs` as they
 * appear, so their escrow, payments and clawbacks are checked like any job's. Returns the platform account, if any.
 */
async function syncPlatformJobs(w: World): Promise<string | null> {
  const platform = (await w.store.accounts.findAccount(PLATFORM_ACCOUNT))?.id ?? null;
  if (platform === null) return null;
  for (const j of await w.store.views.listJobs(platform, { limit: 10_000, kinds: ['audit', 'spot_check'] })) {
    if (w.jobs.some((x) => x.id === j.id)) continue;
    const spec = await w.store.jobs.spec(j.id);
    if (spec) w.jobs.push({ id: j.id, buyer: -1, spec });
  }
  return platform;
}

/** Every account that may hold money in this world. */
async function ledgerAccounts(w: World): Promise<string[]> {
  const platform = await syncPlatformJobs(w);
  return [
    ISSUER,
    FEES,
    ...(platform === null ? [] : [accountLedger(platform)]),
    ...w.buyers.map((b) => accountLedger(b.id)),
    ...w.agents.map((a) => accountLedger(a.providerId)),
    ...w.jobs.map((j) => escrowLedger(j.id)),
  ];
}

/** After every step: the ledger audits clean, sums to zero, and every settled job's escrow is empty and accounted for. */
async function checkStep(w: World, step: string): Promise<void> {
  expect(await w.store.ledger.audit(), step).toEqual([]);
  let total = 0;
  for (const acct of await ledgerAccounts(w)) {
    const b = await w.store.ledger.balance(acct);
    if (acct !== ISSUER) expect(b, `${acct} ${step}`).toBeGreaterThanOrEqual(0);
    total += b;
  }
  expect(total, step).toBe(0);
  for (const job of w.jobs) {
    const postings = await w.store.ledger.jobPostings(job.id);
    const onEscrow = postings.filter((p) => p.account === escrowLedger(job.id));
    const sum = (k: string) => onEscrow.filter((p) => p.kind === k).reduce((s, p) => s + p.amount, 0);
    const settled = (await w.store.views.billing(job.id)).settled;
    const v = await view(w, job.id);
    const allEnded = v.tasks.every((t) => t.executions.every((e) => ENDED.includes(e.state)));
    if (TERMINAL_JOB_STATES.includes(v.state) && allEnded)
      expect(settled, `ended job ${job.id} with every execution ended is settled ${step}`).toBe(true);
    if (settled) {
      expect(await w.store.ledger.balance(escrowLedger(job.id)), `escrow of settled ${job.id} ${step}`).toBe(0);
      expect(sum('escrow_hold'), `held = paid + refunded for ${job.id} ${step}`).toBe(-sum('payment') - sum('refund'));
    }
  }
}

/** Drives every job to an end: everything in flight is lost, every open job cancelled, and all settled. */
async function driveToEnd(w: World): Promise<void> {
  await w.engine.schedule();
  w.clock.now += CFG.claimTimeoutMs + CFG.leaseTtlMs + 1;
  for (const [id, held] of w.held) {
    w.stale.get(id)!.push(...held);
    w.held.set(id, []);
  }
  await w.engine.reap();
  // Cancelling may end re-verifications that started more; until none is left open.
  for (let round = 0; round < 10; round++) {
    await syncPlatformJobs(w);
    let cancelled = false;
    for (const job of w.jobs) cancelled = (await w.engine.cancelJob(job.id)) || cancelled;
    await w.engine.schedule();
    await w.engine.settle();
    if (!cancelled) break;
  }
}

/** At the end: every job ended and settled; payments exact and unique; every buyer holds grants − paid. */
async function checkEnd(w: World): Promise<void> {
  await checkStep(w, 'at the end');
  const paidByBuyer = new Map<number, number>();
  const earned = new Map<string, number>();
  let fees = 0;
  for (const job of w.jobs) {
    const v = await view(w, job.id);
    const executions = v.tasks.flatMap((t) => t.executions);
    const summary = JSON.stringify({
      state: v.state,
      tasks: v.tasks.map((t) => [t.state, t.executions.map((e) => e.state)]),
    });
    expect(TERMINAL_JOB_STATES, summary).toContain(v.state);
    expect(
      executions.every((e) => ENDED.includes(e.state)),
      `every execution ended: ${summary}`,
    ).toBe(true);
    expect(v.billing.settled, `job settled: ${summary}`).toBe(true);
    expect(await w.store.ledger.balance(escrowLedger(job.id)), `escrow released: ${summary}`).toBe(0);
    expect(v.billing.escrowHeld).toBeCloseTo(v.billing.paid + v.billing.refunded, 9);

    const postings = await w.store.ledger.jobPostings(job.id);
    const payments = postings.filter((p) => p.kind === 'payment' && p.account === escrowLedger(job.id));
    const byExecution = new Map<string, number>();
    for (const p of payments) {
      expect(p.executionId).not.toBeNull();
      expect(byExecution.has(p.executionId!), `execution ${p.executionId} paid twice`).toBe(false);
      byExecution.set(p.executionId!, -p.amount);
    }
    const maxCost = executionMaxCost(job.spec);
    const reserved = {
      cpus: job.spec.resources.cpus,
      memoryMb: job.spec.resources.memoryMb,
      gpus: job.spec.resources.gpus,
    };
    for (const e of executions) {
      const paid = byExecution.get(e.id) ?? 0;
      // Paid for its work: a valid result, or one stopped before a verdict (cancelled, not superseded) that started.
      const observed = e.startedAt !== null && e.finishedAt !== null ? e.finishedAt - e.startedAt : null;
      const payable =
        (e.state === 'valid' || (e.state === 'cancelled' && e.failure?.reason === 'cancelled')) && observed !== null;
      if (!payable) {
        expect(paid, `${e.state} execution ${e.id} paid`).toBe(0);
        expect(e.paid).toBeNull();
        continue;
      }
      const price = w.agents.find((a) => a.id === e.agentId)!.price;
      // Billed for what the coordinator observed: the reported wall time, at most claim → report (or stop).
      const wall = Math.min(e.usage?.wallMs ?? observed, observed);
      const cost = Math.min(executionCost(price, reserved, wall, job.spec.resources.timeoutSeconds * 1000), maxCost);
      expect(paid, `payment of ${e.state} execution ${e.id}`).toBe(cost);
      expect(toMicro(e.paid ?? -1)).toBe(cost);
      const fee = platformFee(cost, w.engine.policy.feeBps);
      earned.set(e.providerId, (earned.get(e.providerId) ?? 0) + cost - fee);
      fees += fee;
      const providerShare = postings.find(
        (p) => p.kind === 'payment' && p.executionId === e.id && p.account === accountLedger(e.providerId),
      );
      expect(providerShare?.amount ?? 0).toBe(cost - fee);
    }
    for (const id of byExecution.keys())
      expect(
        executions.some((e) => e.id === id),
        `payment for a foreign execution ${id}`,
      ).toBe(true);
    const paidTotal = [...byExecution.values()].reduce((s, x) => s + x, 0);
    paidByBuyer.set(job.buyer, (paidByBuyer.get(job.buyer) ?? 0) + paidTotal);
    // What a re-verification took back from an overturned provider went to the job's buyer.
    for (const p of postings.filter((x) => x.kind === 'clawback')) {
      const provider = w.agents.find((a) => accountLedger(a.providerId) === p.account);
      if (provider) earned.set(provider.providerId, (earned.get(provider.providerId) ?? 0) + p.amount);
      else paidByBuyer.set(job.buyer, (paidByBuyer.get(job.buyer) ?? 0) - p.amount);
    }
  }
  // Providers hold what their valid executions cost less the platform's fee; the platform holds the fees.
  expect(await w.store.ledger.balance(FEES)).toBe(fees);
  for (const a of w.agents)
    expect(await w.store.ledger.balance(accountLedger(a.providerId)), `earnings of ${a.id}`).toBe(
      earned.get(a.providerId) ?? 0,
    );
  for (const [i, b] of w.buyers.entries()) {
    expect(await w.store.ledger.balance(accountLedger(b.id)), `buyer${i}: grants − paid`).toBe(
      b.granted - (paidByBuyer.get(i) ?? 0),
    );
  }
}

// ---------- generators ----------

/** Prices in whole micro-credits, within the default maximum prices (cpuHour 0.1, memoryGiBHour 0.01, gpuHour 1, startFee 0.002). */
const priceArb = fc
  .record({
    cpuHour: fc.integer({ min: 0, max: 100_000 }),
    memoryGiBHour: fc.integer({ min: 0, max: 10_000 }),
    gpuHour: fc.integer({ min: 0, max: 1_000_000 }),
    startFee: fc.integer({ min: 0, max: 2_000 }),
  })
  .map((p): Price => ({
    cpuHour: p.cpuHour / 1e6,
    memoryGiBHour: p.memoryGiBHour / 1e6,
    gpuHour: p.gpuHour / 1e6,
    startFee: p.startFee / 1e6,
  }));

const specArb: fc.Arbitrary<SpecGen> = fc.record({
  mode: fc.constantFrom('none' as const, 'replicate' as const, 'adaptive' as const),
  replicas: fc.integer({ min: 1, max: 3 }),
  quorum: fc.integer({ min: 1, max: 3 }),
  count: fc.integer({ min: 1, max: 3 }),
  cpus: fc.constantFrom(0.5, 1, 2),
  memoryMb: fc.constantFrom(128, 512, 1024),
  timeoutSeconds: fc.constantFrom(60, 600, 3600),
  maxErrors: fc.integer({ min: 1, max: 3 }),
  cheapOnly: fc.boolean(),
});

const agentIdx = fc.integer({ min: 0, max: 3 });
const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('submit' as const),
      buyer: fc.integer({ min: 0, max: 1 }),
      spec: specArb,
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('grant' as const),
      buyer: fc.integer({ min: 0, max: 1 }),
      amount: fc.integer({ min: 1, max: 300_000 }),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('claim' as const), agent: agentIdx }) },
  {
    weight: 8,
    arbitrary: fc.record({
      kind: fc.constant('report' as const),
      agent: agentIdx,
      outcome: fc.constantFrom<Outcome>(
        'honest',
        'honest',
        'honest',
        'corrupt',
        'corrupt_exit',
        'swapped',
        'out_of_memory',
        'timeout',
        'agent_error',
      ),
      wallFrac: fc.double({ min: 0, max: 1.5, noNaN: true }),
      withUsage: fc.boolean(),
      early: fc.boolean(),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('late' as const), agent: agentIdx }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('cancel' as const), job: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('lose' as const), agent: agentIdx }) },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 20_000 }) }),
  },
);

const scenarioArb = fc.record({
  prices: fc.array(priceArb, { minLength: 3, maxLength: 4 }),
  /** µcr; 0 to 3 credits, so some submissions are refused. */
  grants: fc.array(fc.integer({ min: 0, max: 3_000_000 }), { minLength: 2, maxLength: 2 }),
  ops: fc.array(opArb, { minLength: 5, maxLength: 50, size: 'max' }),
  seed: fc.integer(),
  feeBps: fc.constantFrom(0, 0, 250, 1000),
});

/** What the runs exercised (printed with DEQO_PROPERTY_STATS=1), to see that the generators reach every path. */
const stats = new Map<string, number>();
const count = (k: string, n = 1) => stats.set(k, (stats.get(k) ?? 0) + n);

async function run(
  kind: StoreKind,
  s: { prices: Price[]; grants: number[]; ops: Op[]; seed: number; feeBps: number },
): Promise<void> {
  const w = await makeWorld(kind, s.prices, s.grants, s.seed, s.feeBps);
  try {
    for (const [i, op] of s.ops.entries()) {
      await apply(w, op);
      await w.engine.settle();
      await checkStep(w, `after op ${i} ${op.kind}`);
    }
    await driveToEnd(w);
    await checkEnd(w);
    for (const job of w.jobs) {
      const v = await view(w, job.id);
      count(`job ${v.state}`);
      for (const t of v.tasks) {
        count(`task ${t.state}${t.failure ? ` ${t.failure.reason}` : ''}`);
        for (const e of t.executions) count(`execution ${e.state}`);
      }
      for (const p of await w.store.ledger.jobPostings(job.id))
        if (p.account === escrowLedger(job.id)) count(`posting ${p.kind}`);
    }
  } finally {
    await w.engine.stop();
    await w.store.close();
    await rm(w.blobs.dir, { recursive: true, force: true });
    // SQLite answers synchronously: let the event loop turn so the test runner's messages get through.
    await new Promise((resolve) => setImmediate(resolve));
  }
}

describe.each(storeKinds())('over $name', (kind) => {
  beforeAll(() => kind.setup());
  afterAll(() => kind.teardown());

  describe('ledger invariants over random runs', () => {
    it('sum zero, nothing negative, escrow fully released, payments exact and unique, buyers pay what providers earn', async () => {
      const numRuns =
        kind.name === 'postgres'
          ? Number(process.env.DEQO_PROPERTY_RUNS_PG ?? 8)
          : Number(process.env.DEQO_PROPERTY_RUNS ?? 50);
      await fc.assert(
        fc.asyncProperty(scenarioArb, (s) => run(kind, s)),
        { numRuns },
      );
      if (process.env.DEQO_PROPERTY_STATS) console.log(Object.fromEntries([...stats].sort()));
    });
  });

  describe('a 2-of-3 job where one provider cheats', () => {
    it('pays the two agreeing providers their exact cost, the cheater nothing, and refunds the buyer the rest to the micro-credit', async () => {
      const prices: Price[] = [
        { cpuHour: 0.031, memoryGiBHour: 0.0043, gpuHour: 0.5, startFee: 0.00017 },
        { cpuHour: 0.077, memoryGiBHour: 0.0091, gpuHour: 0.2, startFee: 0.0019 },
        { cpuHour: 0.05, memoryGiBHour: 0.005, gpuHour: 0.5, startFee: 0.001 },
      ];
      const granted = toMicro(10);
      const w = await makeWorld(kind, prices, [granted], 7);
      try {
        const spec = toSpec({
          mode: 'replicate',
          replicas: 3,
          quorum: 2,
          count: 1,
          cpus: 1.5,
          memoryMb: 1536,
          timeoutSeconds: 900,
          maxErrors: 3,
          cheapOnly: false,
        });
        const { jobId, escrow } = await w.engine.submitJob(w.buyers[0]!.id, spec);
        w.jobs.push({ id: jobId, buyer: 0, spec });
        expect(escrow).toBe(3 * executionMaxCost(spec));
        await w.engine.schedule();
        const leases = [];
        for (const a of w.agents) {
          const got = await w.engine.claim(a.id, 1, 0);
          expect(got).toHaveLength(1);
          leases.push(got[0]!);
        }
        const walls = [123_457, 600_001, 77_777];
        const cheater = 1;
        for (const [i, a] of w.agents.entries()) {
          w.clock.now += walls[i]!; // the coordinator observes at least the wall time each reports
          await w.engine.report(
            a.id,
            leases[i]!.executionId,
            await reportOf(w, leases[i]!, i === cheater ? 'corrupt' : 'honest', walls[i]!, true),
          );
        }
        await w.engine.settle();
        const v = await view(w, jobId);
        expect(v.state).toBe('succeeded');
        const reserved = { cpus: 1.5, memoryMb: 1536, gpus: 0 };
        const cost = (i: number) => executionCost(w.agents[i]!.price, reserved, walls[i]!, 900_000);
        for (const [i, a] of w.agents.entries()) {
          const e = v.tasks[0]!.executions.find((x) => x.agentId === a.id)!;
          expect(e.state).toBe(i === cheater ? 'invalid' : 'valid');
          expect(await w.store.ledger.balance(accountLedger(a.providerId))).toBe(i === cheater ? 0 : cost(i));
        }
        // Hand-checked for provider 0: 0.00017 + (1.5 × 0.031 + 1.5 × 0.0043) × 123.457 s / 3600 s = 0.001986... → 1986 µcr (rounded up).
        expect(cost(0)).toBe(170 + Math.ceil((1.5 * 0.031 + 1.5 * 0.0043) * (123_457 / 3_600_000) * 1e6 - 1e-6));
        expect(cost(0)).toBe(1986);
        const payments = cost(0) + cost(2);
        expect(v.billing).toMatchObject({ settled: true, inEscrow: 0 });
        expect(toMicro(v.billing.paid)).toBe(payments);
        expect(toMicro(v.billing.refunded)).toBe(escrow - payments);
        expect(await w.store.ledger.balance(accountLedger(w.buyers[0]!.id))).toBe(granted - payments);
        expect(await w.store.ledger.audit()).toEqual([]);
        await checkEnd(w);
      } finally {
        await w.engine.stop();
        await w.store.close();
      }
    });
  });

  describe('a cancellation while a result awaits its quorum', () => {
    // Regression (found by the random runs): a `reported` result waiting for its quorum used to stay `reported`
    // after a cancel, so the job was never settled and its escrow stayed held. Now it is cancelled with its task.
    it('releases the escrow of a 2-of-2 job cancelled after one of its two results came in, paying both for the time they ran', async () => {
      const price: Price = { cpuHour: 0.05, memoryGiBHour: 0.005, gpuHour: 0.5, startFee: 0.001 };
      const granted = toMicro(10);
      const w = await makeWorld(kind, [price, price], [granted], 1);
      try {
        const spec = toSpec({
          mode: 'replicate',
          replicas: 2,
          quorum: 2,
          count: 1,
          cpus: 1,
          memoryMb: 512,
          timeoutSeconds: 600,
          maxErrors: 3,
          cheapOnly: false,
        });
        const { jobId } = await w.engine.submitJob(w.buyers[0]!.id, spec);
        w.jobs.push({ id: jobId, buyer: 0, spec });
        await w.engine.schedule();
        const [first] = await w.engine.claim(w.agents[0]!.id, 1, 0);
        await w.engine.claim(w.agents[1]!.id, 1, 0);
        w.clock.now += 1_000;
        await w.engine.report(w.agents[0]!.id, first!.executionId, await reportOf(w, first!, 'honest', 1000, true));
        w.clock.now += 2_000;
        expect(await w.engine.cancelJob(jobId)).toBe(true);
        await w.engine.tick();
        const v = await view(w, jobId);
        expect(v.state).toBe('cancelled');
        expect(v.tasks[0]!.executions.map((e) => e.state)).toEqual(['cancelled', 'cancelled']);
        // Both ran honestly until the buyer cancelled: each is paid pro rata for the time the coordinator observed.
        const reserved = { cpus: 1, memoryMb: 512, gpus: 0 };
        expect(toMicro(v.billing.paid)).toBe(
          executionCost(price, reserved, 1_000, 600_000) + executionCost(price, reserved, 3_000, 600_000),
        );
        expect(v.billing.settled).toBe(true);
        expect(await w.store.ledger.balance(escrowLedger(jobId))).toBe(0);
        expect(await w.store.ledger.balance(accountLedger(w.buyers[0]!.id))).toBe(granted - toMicro(v.billing.paid));
      } finally {
        await w.engine.stop();
        await w.store.close();
      }
    });
  });
});
