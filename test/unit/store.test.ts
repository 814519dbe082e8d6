/**
 * The store over real SQLite and real PostgreSQL (the same suite on each), driven as the engine drives it
 * (test/helpers/store-world.ts): accounts, scheduling snapshot + conditional plan apply, leases, reports,
 * verification decisions, lease expiry, cancellation, results and listings; writes outside a transaction are
 * refused. Then SQLite's file mode. PostgreSQL's concurrency guarantees: store-postgres.test.ts.
 */
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { accountLedger, DeqoError, grantTxn, ISSUER, MAX_MICRO, toMicro } from '../../src/core/index.js';
import { JobSpecSchema, type JobSpec, type JobSpecInput } from '../../src/protocol/index.js';
import { openSqliteStore, type Store } from '../../src/store/index.js';
import { DEFAULT_QUOTA, failureOf } from '../../src/core/index.js';
import { DEFAULT_MARKET_POLICY, jobResults } from '../../src/engine/index.js';
import {
  applyPlan,
  AVAILABLE,
  CAPACITY,
  claim,
  decide,
  engineAt,
  expireLeases,
  H1,
  H2,
  manifestFor,
  OFFER,
  plan,
  recordEnd,
  renew,
  reported,
  scheduleRound,
  snapshotAt,
  submit,
  T0,
  TTL,
} from '../helpers/store-world.js';
import { storeKinds } from '../helpers/stores.js';

interface World {
  store: Store;
  buyerId: string;
  providerIds: string[];
  agentIds: string[];
  jobId: string;
  spec: JobSpec;
}

async function makeWorld(store: Store, specInput: Partial<JobSpecInput> = {}): Promise<World> {
  const buyerId = await store.transaction((tx) => tx.accounts.createAccount('alice', ['buyer'], T0));
  await store.transaction((tx) => tx.ledger.post(grantTxn(buyerId, toMicro(1000), 'test credits'), T0));
  const providerIds: string[] = [];
  const agentIds: string[] = [];
  for (let i = 0; i < 3; i++) {
    const providerId = await store.transaction((tx) => tx.accounts.createAccount(`prov${i}`, ['provider'], T0));
    providerIds.push(providerId);
    const agentId = `agent_${i}`;
    await store.transaction((tx) =>
      tx.accounts.registerAgent(
        {
          id: agentId,
          providerId,
          name: `box${i}`,
          publicKey: `pk${i}`,
          capacity: CAPACITY,
          offer: OFFER,
          availability: AVAILABLE,
        },
        T0,
      ),
    );
    agentIds.push(agentId);
  }
  const spec = JobSpecSchema.parse({
    image: 'deqo/busybox:test',
    command: ['true'],
    array: { count: 2 },
    verification: { replicas: 3, quorum: 2 },
    ...specInput,
  });
  const jobId = await submit(store, buyerId, spec, T0);
  return { store, buyerId, providerIds, agentIds, jobId, spec };
}

async function view(w: World) {
  const v = await w.store.views.jobView(w.jobId, w.buyerId);
  if (!v) throw new Error('job view missing');
  return v;
}

describe.each(storeKinds())('store over $name', (kind) => {
  beforeAll(() => kind.setup());
  afterAll(() => kind.teardown());

  describe('AccountStore', () => {
    let store: Store;
    beforeEach(async () => {
      store = await kind.open();
    });
    afterEach(async () => {
      await store.close();
    });

    it('creates accounts, refuses a taken name, and authenticates by key hash', async () => {
      const id = await store.transaction((tx) => tx.accounts.createAccount('bob', ['buyer', 'provider'], T0));
      await expect(store.transaction((tx) => tx.accounts.createAccount('bob', ['buyer'], T0))).rejects.toMatchObject({
        code: 'conflict',
      });
      expect(await store.accounts.findAccountByName('bob')).toBe(id);
      expect(await store.accounts.findAccountByName('nobody')).toBeNull();
      await store.transaction((tx) => tx.accounts.addApiKey(id, 'hash-of-key', 'provider', T0));
      expect(await store.accounts.authenticate('hash-of-key')).toEqual({
        accountId: id,
        accountName: 'bob',
        roles: ['buyer', 'provider'],
        scope: 'provider',
      });
      expect(await store.accounts.authenticate('hash-of-other-key')).toBeNull();
    });

    it('refuses a grant past MAX_MICRO in circulation (validation_failed naming amount), keeping the ledger sound', async () => {
      const a = await store.transaction((tx) => tx.accounts.createAccount('rich', ['buyer'], T0));
      await store.transaction((tx) => tx.ledger.post(grantTxn(a, MAX_MICRO - 5, 'most of it'), T0));
      const err = await store
        .transaction((tx) => tx.ledger.post(grantTxn(a, 6, 'one too many'), T0))
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(DeqoError);
      expect(err).toMatchObject({ code: 'validation_failed', details: [{ path: 'amount' }] });
      await store.transaction((tx) => tx.ledger.post(grantTxn(a, 5, 'the rest'), T0));
      expect(await store.ledger.balance(accountLedger(a))).toBe(MAX_MICRO);
      expect(await store.ledger.balance(ISSUER)).toBe(-MAX_MICRO);
      expect(await store.ledger.audit()).toEqual([]);
    });

    it('keeps an agent identity with its provider and refreshes its capacity', async () => {
      const p1 = await store.transaction((tx) => tx.accounts.createAccount('p1', ['provider'], T0));
      const p2 = await store.transaction((tx) => tx.accounts.createAccount('p2', ['provider'], T0));
      await store.transaction((tx) =>
        tx.accounts.registerAgent(
          {
            id: 'agent_x',
            providerId: p1,
            name: 'x',
            publicKey: 'pk',
            capacity: CAPACITY,
            offer: OFFER,
            availability: AVAILABLE,
          },
          T0,
        ),
      );
      const err = await store
        .transaction((tx) =>
          tx.accounts.registerAgent(
            {
              id: 'agent_x',
              providerId: p2,
              name: 'x',
              publicKey: 'pk',
              capacity: CAPACITY,
              offer: OFFER,
              availability: AVAILABLE,
            },
            T0,
          ),
        )
        .then(
          () => null,
          (e: unknown) => e,
        );
      expect(err).toBeInstanceOf(DeqoError);
      expect((err as DeqoError).code).toBe('forbidden');
      await store.transaction((tx) =>
        tx.accounts.registerAgent(
          {
            id: 'agent_x',
            providerId: p1,
            name: 'x2',
            publicKey: 'pk',
            capacity: { ...CAPACITY, cpus: 8 },
            offer: OFFER,
            availability: AVAILABLE,
          },
          T0 + 5,
        ),
      );
      const a = await store.accounts.getAgent('agent_x');
      expect(a).toMatchObject({ providerId: p1, name: 'x2', registeredAt: T0, lastSeenAt: T0 + 5 });
      expect(a?.capacity.cpus).toBe(8);
      expect(await store.transaction((tx) => tx.accounts.touchAgent('agent_x', T0 + 9))).toBe(true);
      expect(await store.transaction((tx) => tx.accounts.touchAgent('agent_nope', T0 + 9))).toBe(false);
    });

    it('records blobs idempotently', async () => {
      await store.transaction((tx) => tx.accounts.recordBlob('a'.repeat(64), 10, T0));
      await store.transaction((tx) => tx.accounts.recordBlob('a'.repeat(64), 99, T0));
      expect(await store.accounts.blobSize('a'.repeat(64))).toBe(10);
      expect(await store.accounts.blobSize('b'.repeat(64))).toBeNull();
    });
  });

  describe('ExecutionStore and JobStore', () => {
    let w: World;
    beforeEach(async () => {
      w = await makeWorld(await kind.open());
    });
    afterEach(async () => {
      await w.store.close();
    });

    it('stores a job as queued with its tasks', async () => {
      const v = await view(w);
      expect(v.state).toBe('queued');
      expect(v.tasks.map((t) => [t.index, t.state, t.targetReplicas])).toEqual([
        [0, 'queued', 3],
        [1, 'queued', 3],
      ]);
      expect(v.spec).toEqual(w.spec);
      expect(await w.store.views.jobView(w.jobId, w.providerIds[0]!)).toBeNull(); // not the buyer's
    });

    it('snapshots tasks wanting executions and free agents, then applies the plan as assigned executions on distinct providers', async () => {
      const snap = await snapshotAt(w.store, T0 - TTL);
      expect(snap.tasks.map((t) => t.need)).toEqual([3, 3]);
      expect(snap.agents.map((a) => a.freeCpus)).toEqual([2, 2, 2]);
      const placements = plan(snap);
      expect(placements).toHaveLength(6);
      const touched = await applyPlan(w.store, placements, { ...snap, now: T0 });
      expect([...touched].sort()).toEqual(w.agentIds);

      const v = await view(w);
      expect(v.state).toBe('running');
      for (const t of v.tasks) {
        expect(t.state).toBe('running');
        expect(t.executions).toHaveLength(3);
        expect(t.executions.every((e) => e.state === 'assigned' && e.desired === 'run')).toBe(true);
        expect(new Set(t.executions.map((e) => e.providerId)).size).toBe(3);
      }
      // Capacity is now used: nothing more is wanted and every agent is full.
      const after = await snapshotAt(w.store, T0 - TTL);
      expect(after.tasks).toEqual([]);
      expect(after.agents.map((a) => [a.freeCpus, a.freeMemoryMb, a.running])).toEqual([
        [0, 3072, 2],
        [0, 3072, 2],
        [0, 3072, 2],
      ]);
    });

    it("keeps each task's execution counts on its row as executions are placed, end and expire", async () => {
      /** The counts recounted from the job view's executions, per task id. */
      const recount = async () =>
        new Map(
          (await view(w)).tasks.map((t) => {
            const failed = t.executions.filter((e) => e.state === 'lost' || e.state === 'failed');
            return [
              t.id,
              {
                active: t.executions.filter((e) => ['assigned', 'running', 'reported'].includes(e.state)).length,
                total: t.executions.length,
                failures: failed.length,
                lastFailureAt: failed.length > 0 ? Math.max(...failed.map((e) => e.finishedAt!)) : null,
              },
            ];
          }),
        );
      const stored = async () =>
        new Map(
          (await w.store.snapshot.openTasks()).map((t) => [
            t.taskId,
            { active: t.active, total: t.total, failures: t.failures, lastFailureAt: t.lastFailureAt },
          ]),
        );
      expect([...(await stored()).values()].every((c) => c.total === 0 && c.lastFailureAt === null)).toBe(true);
      await scheduleRound(w.store, T0);
      const [c] = await claim(w.store, w.agentIds[0]!, 1, T0 + 10);
      await recordEnd(w.store, c!.executionId, w.agentIds[0]!, 1, reported(H1), T0 + 20);
      await claim(w.store, w.agentIds[1]!, 2, T0 + 30);
      await expireLeases(w.store, T0 + 30 + TTL + 1, 60_000);
      const counts = await stored();
      expect(counts).toEqual(await recount());
      expect([...counts.values()].map((x) => x.failures).sort()).toEqual([1, 1]);
      expect([...counts.values()].every((x) => x.lastFailureAt === T0 + 30 + TTL + 1)).toBe(true);
      // The scheduler's bounded read agrees: each task wants the replica it lost, and a limit of 1 reads one task.
      const jobs = await w.store.snapshot.openJobs();
      expect(jobs.map((j) => [j.jobId, j.openTasks])).toEqual([[w.jobId, 2]]);
      expect((await w.store.snapshot.wantingTasks(jobs, 10)).map((t) => t.index)).toEqual([0, 1]);
      expect((await w.store.snapshot.wantingTasks(jobs, 1)).map((t) => t.index)).toEqual([0]);
      expect(await w.store.snapshot.wantingCount()).toBe(2);
    });

    it("finds tasks past their job's queue timeout job by job, and counts running executions per buyer", async () => {
      const day = 86_400_000;
      expect(await w.store.snapshot.anyTaskWanting()).toBe(true);
      expect(await w.store.tasks.queueTimedOut(T0 + day - 1, 100)).toEqual([]);
      const late = await w.store.tasks.queueTimedOut(T0 + day + 1, 100);
      expect(late.map((t) => [t.jobId, t.queueTimeoutMs]).sort()).toEqual([
        [w.jobId, day],
        [w.jobId, day],
      ]);
      expect(await w.store.tasks.queueTimedOut(T0 + day + 1, 1)).toHaveLength(1);
      const running = async () =>
        (await w.store.snapshot.agents(T0, T0 - TTL, false, DEFAULT_MARKET_POLICY)).runningByBuyer;
      expect(await running()).toEqual(new Map());
      await scheduleRound(w.store, T0);
      expect(await w.store.tasks.queueTimedOut(T0 + day + 1, 100)).toEqual([]); // placed: nothing waits
      expect(await running()).toEqual(new Map([[w.buyerId, 6]]));
      expect(await w.store.snapshot.anyTaskWanting()).toBe(false); // every replica placed
    });

    it('leaves out agents not seen since onlineSince', async () => {
      await w.store.transaction((tx) => tx.accounts.touchAgent(w.agentIds[1]!, T0 + 60_000));
      const snap = await snapshotAt(w.store, T0 + 60_000 - TTL);
      expect(snap.agents.map((a) => a.agentId)).toEqual([w.agentIds[1]]);
    });

    it('applies nothing for a plan made from a stale snapshot (conditional on revision)', async () => {
      const s1 = await snapshotAt(w.store, T0 - TTL);
      const s2 = await snapshotAt(w.store, T0 - TTL);
      await applyPlan(w.store, plan(s1), { ...s1, now: T0 });
      const touched = await applyPlan(w.store, plan(s2), { ...s2, now: T0 + 1 });
      expect(touched.size).toBe(0);
      const v = await view(w);
      expect(v.tasks.flatMap((t) => t.executions)).toHaveLength(6);
    });

    it('claims assigned executions under a lease with fencing token 1, once', async () => {
      await scheduleRound(w.store, T0);
      const claimed = await claim(w.store, w.agentIds[0]!, 10, T0 + 100);
      expect(claimed).toHaveLength(2);
      for (const c of claimed) {
        expect(c.fencingToken).toBe(1);
        expect(c.leaseExpiresAt).toBe(T0 + 100 + TTL);
        expect(c.jobId).toBe(w.jobId);
        expect(c.taskCount).toBe(2);
        expect(c.spec).toEqual(w.spec);
      }
      expect(claimed.map((c) => c.taskIndex).sort()).toEqual([0, 1]);
      expect(await claim(w.store, w.agentIds[0]!, 10, T0 + 200)).toEqual([]);
      expect(await claim(w.store, w.agentIds[1]!, 1, T0 + 200)).toHaveLength(1); // max respected
      const running = (await view(w)).tasks.flatMap((t) => t.executions).filter((e) => e.state === 'running');
      expect(running).toHaveLength(3);
      expect(running.filter((e) => e.agentId === w.agentIds[0]).every((e) => e.startedAt === T0 + 100)).toBe(true);
    });

    it('renews leases only for the right token and agent, and tells the agent what to stop', async () => {
      await scheduleRound(w.store, T0);
      const [c] = await claim(w.store, w.agentIds[0]!, 1, T0);
      const id = c!.executionId;
      expect(await renew(w.store, w.agentIds[0]!, [{ executionId: id, fencingToken: 1 }], T0 + 5000, TTL)).toEqual([]);
      expect(await renew(w.store, w.agentIds[0]!, [{ executionId: id, fencingToken: 2 }], T0 + 5000, TTL)).toEqual([
        id,
      ]);
      expect(await renew(w.store, w.agentIds[1]!, [{ executionId: id, fencingToken: 1 }], T0 + 5000, TTL)).toEqual([
        id,
      ]);
      expect(await renew(w.store, w.agentIds[0]!, [{ executionId: 'exec_unknown', fencingToken: 1 }], T0, TTL)).toEqual(
        ['exec_unknown'],
      );
      // The renewal moved the expiry: at T0 + TTL + 1 the lease still holds.
      expect(await w.store.leases.expired(T0 + TTL + 1, T0 + TTL + 1 - 60_000, 100)).toEqual([]);
    });

    it('records an end only under the current lease', async () => {
      await scheduleRound(w.store, T0);
      const [c] = await claim(w.store, w.agentIds[0]!, 1, T0);
      const id = c!.executionId;
      expect(await recordEnd(w.store, id, w.agentIds[0]!, 2, reported(H1), T0 + 10)).toBeNull();
      expect(await recordEnd(w.store, id, w.agentIds[1]!, 1, reported(H1), T0 + 10)).toBeNull();
      const taskId = await recordEnd(w.store, id, w.agentIds[0]!, 1, reported(H1), T0 + 10);
      const v = await view(w);
      const task = v.tasks.find((t) => t.executions.some((e) => e.id === id))!;
      expect(taskId).toBe(task.id);
      const e = task.executions.find((x) => x.id === id)!;
      expect(e).toMatchObject({
        state: 'reported',
        resultHash: H1,
        exitCode: 0,
        finishedAt: T0 + 10,
        outputsBlob: 'o'.repeat(64),
      });
      // A second report of the same execution is stale.
      expect(await recordEnd(w.store, id, w.agentIds[0]!, 1, reported(H2), T0 + 20)).toBeNull();
    });

    it('verifies tasks 2-of-3, grades a late result, and rolls the job up to succeeded', async () => {
      await scheduleRound(w.store, T0);
      const claims = new Map<string, { id: string; agentId: string; index: number }[]>();
      for (const agentId of w.agentIds) {
        for (const c of await claim(w.store, agentId, 10, T0 + 10)) {
          claims.set(String(c.taskIndex), [
            ...(claims.get(String(c.taskIndex)) ?? []),
            { id: c.executionId, agentId, index: c.taskIndex },
          ]);
        }
      }
      const t0 = claims.get('0')!;
      const t1 = claims.get('1')!;
      expect(t0).toHaveLength(3);

      // Task 0: H1, H2 → pending; then H1 → verified (2 of 3), the H2 result invalid.
      const taskId0 = (await recordEnd(w.store, t0[0]!.id, t0[0]!.agentId, 1, reported(H1), T0 + 100))!;
      // Pending: the three replicas already placed can still reach the quorum (the target stays 3).
      expect(await decide(w.store, taskId0, T0 + 100)).toBe('unchanged');
      await recordEnd(w.store, t0[1]!.id, t0[1]!.agentId, 1, reported(H2), T0 + 200);
      expect(await decide(w.store, taskId0, T0 + 200)).toBe('unchanged');
      await recordEnd(w.store, t0[2]!.id, t0[2]!.agentId, 1, reported(H1), T0 + 300);
      expect(await decide(w.store, taskId0, T0 + 300)).toBe('verified');

      let v = await view(w);
      const task0 = v.tasks[0]!;
      expect(task0.state).toBe('verified');
      expect(task0.resultHash).toBe(H1);
      const stateOf = (id: string) => task0.executions.find((e) => e.id === id)?.state;
      expect([stateOf(t0[0]!.id), stateOf(t0[1]!.id), stateOf(t0[2]!.id)]).toEqual(['valid', 'invalid', 'valid']);
      expect(v.state).toBe('running'); // task 1 is still open

      // Task 1: two agree → verified while the third replica is still running (it is not cancelled).
      const taskId1 = (await recordEnd(w.store, t1[0]!.id, t1[0]!.agentId, 1, reported(H2), T0 + 400))!;
      await recordEnd(w.store, t1[1]!.id, t1[1]!.agentId, 1, reported(H2), T0 + 500);
      expect(await decide(w.store, taskId1, T0 + 500)).toBe('verified');
      v = await view(w);
      expect(v.tasks[1]!.resultHash).toBe(H2);
      expect(v.state).toBe('succeeded');
      expect(v.finishedAt).toBe(T0 + 500);
      const straggler = v.tasks[1]!.executions.find((e) => e.id === t1[2]!.id)!;
      expect(straggler).toMatchObject({ state: 'running', desired: 'run' });

      // The straggler reports late and agrees: graded valid.
      expect(await recordEnd(w.store, t1[2]!.id, t1[2]!.agentId, 1, reported(H2), T0 + 600)).toBe(taskId1);
      expect(await decide(w.store, taskId1, T0 + 600)).toBe('closed'); // late results graded
      v = await view(w);
      expect(v.tasks[1]!.executions.every((e) => e.state === 'valid')).toBe(true);

      // Results: canonical execution's manifest and who agreed.
      const results = await jobResults(w.store, w.jobId, w.buyerId);
      expect(results?.state).toBe('succeeded');
      const res0 = results!.tasks[0]!;
      expect(res0).toMatchObject({
        taskIndex: 0,
        state: 'verified',
        resultHash: H1,
        manifest: manifestFor('1'),
        stdoutBlob: manifestFor('1').stdoutSha256,
      });
      expect(res0.agreedBy.map((a) => a.agentId).sort()).toEqual([t0[0]!.agentId, t0[2]!.agentId].sort());
      expect(res0.agreedBy.map((a) => a.agentName).sort()).toEqual(
        [t0[0]!.agentId, t0[2]!.agentId].map((a) => a.replace('agent_', 'box')).sort(),
      );
      expect(results!.tasks[1]!.agreedBy).toHaveLength(3);
      expect(await jobResults(w.store, w.jobId, w.providerIds[0]!)).toBeNull();
    });

    it('refuses a write made on an old revision of the task, and a move its transitions do not allow', async () => {
      await scheduleRound(w.store, T0);
      const claimed = await claim(w.store, w.agentIds[0]!, 1, T0);
      const taskId = (await recordEnd(w.store, claimed[0]!.executionId, w.agentIds[0]!, 1, reported(H1), T0 + 1))!;
      const old = (await w.store.tasks.forVerification(taskId))!;
      // Someone else changes the task meanwhile (here: raises its target).
      expect(await w.store.transaction((tx) => tx.tasks.write(taskId, old.revision, T0 + 2, { target: 4 }))).toBe(
        w.jobId,
      );
      expect(await w.store.transaction((tx) => tx.tasks.write(taskId, old.revision, T0 + 3, { target: 5 }))).toBeNull();
      const failure = { reason: 'no_quorum', blame: 'none', message: 'x' } as const;
      expect(
        await w.store.transaction((tx) => tx.tasks.write(taskId, old.revision, T0 + 3, { failure }, 'failed')),
      ).toBeNull();
      const fresh = (await w.store.tasks.forVerification(taskId))!;
      expect(fresh.target).toBe(4);
      expect(fresh.revision).toBe(old.revision + 1);
      expect(fresh.state).toBe('running');
      // core/states.ts: a running task cannot go back to queued; the store refuses the write.
      expect(
        await w.store.transaction((tx) => tx.tasks.write(taskId, fresh.revision, T0 + 4, {}, 'queued')),
      ).toBeNull();
      // And every write runs inside a transaction.
      await expect(w.store.tasks.write(taskId, fresh.revision, T0 + 4, { target: 9 })).rejects.toThrow(
        'store writes run inside store.transaction',
      );
    });

    it('fails a task and the job when the decision is a failure, cancelling its active executions', async () => {
      await scheduleRound(w.store, T0);
      const [c] = await claim(w.store, w.agentIds[0]!, 1, T0);
      const taskId = (await recordEnd(w.store, c!.executionId, w.agentIds[0]!, 1, reported(H1), T0 + 1))!;
      const t = (await w.store.tasks.forVerification(taskId))!;
      const active = t.votes.filter((x) => x.state === 'assigned' || x.state === 'running').map((x) => x.id);
      expect(active).toHaveLength(2);
      const failure = failureOf('too_many_errors', 'x');
      await w.store.transaction(async (tx) => {
        expect(await tx.tasks.write(taskId, t.revision, T0 + 2, { verdict: null, failure }, 'failed')).toBe(w.jobId);
        expect(await tx.executions.move([c!.executionId], 'invalid', T0 + 2)).toEqual([c!.executionId]);
        const cancelled = await tx.executions.move(active, 'cancelled', T0 + 2, failureOf('cancelled', 'decided'));
        expect(cancelled.sort()).toEqual([...active].sort());
        // An execution already ended cannot be moved again (core's transitions).
        expect(await tx.executions.move([c!.executionId], 'valid', T0 + 2)).toEqual([]);
      });
      // The job's task counts moved with the task: one failed, one still running.
      expect((await w.store.jobs.taskCounts(w.jobId))?.counts).toMatchObject({ failed: 1, running: 1, queued: 0 });
      const v = await view(w);
      const task = v.tasks.find((x) => x.id === taskId)!;
      expect(task.state).toBe('failed');
      expect(task.failure?.reason).toBe('too_many_errors');
      expect(task.resultHash).toBeNull();
      expect(task.executions.map((e) => e.state).sort()).toEqual(['cancelled', 'cancelled', 'invalid']);
      expect(task.executions.filter((e) => e.state === 'cancelled').every((e) => e.desired === 'stop')).toBe(true);
      expect(v.state).toBe('running'); // the other task is open
    });

    it('expires leases: expired running → lost (lease_expired), unclaimed-too-long assigned → lost (not_claimed)', async () => {
      await scheduleRound(w.store, T0);
      const claimed = await claim(w.store, w.agentIds[0]!, 2, T0 + 1000); // lease to T0 + 16 000
      const [keep, drop] = claimed;
      await renew(w.store, w.agentIds[0]!, [{ executionId: keep!.executionId, fencingToken: 1 }], T0 + 10_000, TTL); // to T0 + 25 000

      const first = await expireLeases(w.store, T0 + 20_000, 30_000);
      let execs = (await view(w)).tasks.flatMap((t) => t.executions);
      const byId = (id: string) => execs.find((e) => e.id === id)!;
      expect(byId(drop!.executionId)).toMatchObject({
        state: 'lost',
        desired: 'stop',
        failure: { reason: 'lease_expired', blame: 'provider' },
      });
      expect(byId(keep!.executionId).state).toBe('running');
      expect(execs.filter((e) => e.state === 'assigned')).toHaveLength(4); // not yet past the claim timeout
      expect(first).toHaveLength(1);

      const second = await expireLeases(w.store, T0 + 31_000, 30_000);
      execs = (await view(w)).tasks.flatMap((t) => t.executions);
      expect(byId(keep!.executionId).state).toBe('lost');
      const notClaimed = execs.filter((e) => e.failure?.reason === 'not_claimed');
      expect(notClaimed).toHaveLength(4);
      expect(notClaimed.every((e) => e.state === 'lost')).toBe(true);
      expect([...new Set(second.map((l) => l.taskId))].sort()).toEqual((await view(w)).tasks.map((t) => t.id).sort());
      expect(second.map((l) => l.reason).sort()).toEqual([
        'lease_expired',
        'not_claimed',
        'not_claimed',
        'not_claimed',
        'not_claimed',
      ]);
      expect(second.find((l) => l.reason === 'lease_expired')).toMatchObject({
        executionId: keep!.executionId,
        jobId: keep!.jobId,
        taskId: keep!.taskId,
      });
      // A report under the lost lease is stale.
      expect(await recordEnd(w.store, keep!.executionId, w.agentIds[0]!, 1, reported(H1), T0 + 32_000)).toBeNull();
    });

    it('after a loss, wants a replacement execution; the provider that lost it may only retry when nobody else can', async () => {
      await scheduleRound(w.store, T0);
      await claim(w.store, w.agentIds[0]!, 2, T0);
      await expireLeases(w.store, T0 + TTL + 1, 60_000);
      for (const a of w.agentIds) await w.store.transaction((tx) => tx.accounts.touchAgent(a, T0 + TTL + 1));
      const snap = await snapshotAt(w.store, T0 + 1);
      expect(snap.tasks.map((t) => t.need)).toEqual([1, 1]);
      for (const t of snap.tasks) expect(t.excludedProviders).toHaveLength(2); // the replicas still held
      expect(snap.tasks[0]!.excludedProviders).not.toContain(w.providerIds[0]);
      expect(snap.tasks[0]!.retryProviders).toEqual([w.providerIds[0]]);
    });

    it('lists open tasks with results or errors but nothing in flight as awaiting a decision', async () => {
      await scheduleRound(w.store, T0);
      expect(await w.store.tasks.awaitingDecision(100)).toEqual([]); // all assigned
      const claimed: Array<{ agentId: string; executionId: string; taskIndex: number }> = [];
      for (const agentId of w.agentIds) {
        for (const c of await claim(w.store, agentId, 10, T0)) claimed.push({ agentId, ...c });
      }
      const first = claimed.find((c) => c.taskIndex === 0)!;
      expect(await recordEnd(w.store, first.executionId, first.agentId, 1, reported(H1), T0 + 1)).not.toBeNull();
      expect(await w.store.tasks.awaitingDecision(100)).toEqual([]); // replicas still running
      await expireLeases(w.store, T0 + TTL + 1, 60_000);
      const ids = (await view(w)).tasks.map((t) => t.id);
      const awaiting = await w.store.tasks.awaitingDecision(100);
      expect(awaiting.map((t) => t.taskId).sort()).toEqual([...ids].sort());
      expect(awaiting.every((t) => t.jobId === w.jobId)).toBe(true);
      expect(await w.store.tasks.awaitingDecision(1)).toHaveLength(1);
      await engineAt(w.store, T0 + TTL + 2).cancelJob(w.jobId);
      expect(await w.store.tasks.awaitingDecision(100)).toEqual([]); // closed tasks are not open
    });

    it('cancels a job: open tasks and active executions, once', async () => {
      await scheduleRound(w.store, T0);
      await claim(w.store, w.agentIds[0]!, 2, T0);
      expect(await engineAt(w.store, T0 + 50).cancelJob(w.jobId)).toBe(true);
      const v = await view(w);
      expect(v.state).toBe('cancelled');
      expect(v.finishedAt).toBe(T0 + 50);
      expect(v.tasks.every((t) => t.state === 'cancelled')).toBe(true);
      const execs = v.tasks.flatMap((t) => t.executions);
      expect(execs).toHaveLength(6);
      expect(
        execs.every((e) => e.state === 'cancelled' && e.desired === 'stop' && e.failure?.reason === 'cancelled'),
      ).toBe(true);
      expect(await engineAt(w.store, T0 + 60).cancelJob(w.jobId)).toBe(false);
      // Nothing is scheduled or claimable any more; a running agent is told to stop.
      expect((await snapshotAt(w.store, T0 - TTL)).tasks).toEqual([]);
      expect(await claim(w.store, w.agentIds[1]!, 10, T0 + 70)).toEqual([]);
      const running = execs.filter((e) => e.agentId === w.agentIds[0]);
      expect(
        await renew(
          w.store,
          w.agentIds[0]!,
          running.map((e) => ({ executionId: e.id, fencingToken: 1 })),
          T0 + 70,
          TTL,
        ),
      ).toEqual(running.map((e) => e.id));
    });

    it('lists a buyer’s jobs newest first, filtered by state, and nobody else’s', async () => {
      const second = await submit(
        w.store,
        w.buyerId,
        JobSpecSchema.parse({ image: 'alpine:3', command: ['true'], name: 'two' }),
        T0 + 1000,
      );
      const other = await w.store.transaction((tx) => tx.accounts.createAccount('mallory', ['buyer'], T0));
      expect(await w.store.views.listJobs(other, { limit: 50 })).toEqual([]);
      const all = await w.store.views.listJobs(w.buyerId, { limit: 50 });
      expect(all.map((j) => j.id)).toEqual([second, w.jobId]);
      expect(all[0]).toMatchObject({
        name: 'two',
        image: 'alpine:3',
        state: 'queued',
        tasks: { total: 1, verified: 0, failed: 0 },
      });
      expect(all[1]!.tasks.total).toBe(2);
      expect((await w.store.views.listJobs(w.buyerId, { limit: 1 })).map((j) => j.id)).toEqual([second]);
      await engineAt(w.store, T0 + 2000).cancelJob(second);
      expect((await w.store.views.listJobs(w.buyerId, { state: 'cancelled', limit: 50 })).map((j) => j.id)).toEqual([
        second,
      ]);
      expect((await w.store.views.listJobs(w.buyerId, { state: 'queued', limit: 50 })).map((j) => j.id)).toEqual([
        w.jobId,
      ]);
      expect(await w.store.views.listJobs(w.buyerId, { state: 'succeeded', limit: 50 })).toEqual([]);
      expect(await w.store.jobs.header(second)).toMatchObject({ buyerId: w.buyerId, state: 'cancelled' });
      expect(await w.store.jobs.header('job_nope')).toBeNull();
    });

    it('keeps fractional cpus and epoch-ms times exact (numbers, not strings or 4-byte floats)', async () => {
      await engineAt(w.store, T0).cancelJob(w.jobId);
      const jobId = await submit(
        w.store,
        w.buyerId,
        JobSpecSchema.parse({ image: 'alpine:3', command: ['true'], resources: { cpus: 1.23456789 } }),
        T0 + 1,
      );
      await scheduleRound(w.store, T0 + 2);
      const snap = await snapshotAt(w.store, T0 - TTL);
      expect(snap.agents.map((a) => a.freeCpus).sort()).toEqual([2, 2, 2 - 1.23456789].sort());
      const row = await w.store.views.jobView(jobId, w.buyerId);
      expect(row?.spec.resources.cpus).toBe(1.23456789);
      expect(row?.createdAt).toBe(T0 + 1);
      expect((await w.store.jobs.header(jobId))?.createdAt).toBe(T0 + 1);
      expect(await w.store.jobs.oldestOpenTaskUpdate(jobId)).toBe(T0 + 2);
    });

    it('settles each ended execution and the job once, in the transaction that ends them: pays from escrow, records reputation, refunds the rest, audits clean', async () => {
      await scheduleRound(w.store, T0);
      const tasks = new Set<string>();
      for (const agentId of w.agentIds) {
        for (const c of await claim(w.store, agentId, 10, T0 + 10)) {
          tasks.add((await recordEnd(w.store, c.executionId, agentId, c.fencingToken, reported(H1), T0 + 60_000))!);
        }
      }
      expect((await w.store.settlement.unsettledExecutions(100)).length).toBe(0); // reported, not ended yet
      for (const taskId of tasks) expect(await decide(w.store, taskId, T0 + 60_000)).toBe('verified');
      expect((await view(w)).state).toBe('succeeded');
      // Decided, paid and refunded in the same transactions: nothing is left for the sweep, and a sweep pays nothing twice.
      expect(await w.store.settlement.unsettledExecutions(100)).toEqual([]);
      expect(await w.store.settlement.unsettledJobs(100)).toEqual([]);
      await engineAt(w.store, T0 + 60_001).settle();
      const ids = (await view(w)).tasks.flatMap((t) => t.executions.map((e) => e.id));
      expect(ids).toHaveLength(6);
      const postings = await w.store.ledger.jobPostings(w.jobId);
      const payments = postings.filter((p) => p.kind === 'payment' && p.amount > 0);
      expect(payments.map((p) => p.executionId).sort()).toEqual([...ids].sort());
      const held = postings.filter((p) => p.kind === 'escrow_hold' && p.amount > 0).reduce((a, p) => a + p.amount, 0);
      const refunded = postings.filter((p) => p.kind === 'refund' && p.amount > 0).reduce((a, p) => a + p.amount, 0);
      expect(held).toBe(payments.reduce((a, p) => a + p.amount, 0) + refunded);
      expect(postings.filter((p) => p.kind === 'refund' && p.amount > 0)).toHaveLength(1);
      expect(await w.store.views.billing(w.jobId)).toMatchObject({ inEscrow: 0, settled: true });
      expect(await w.store.ledger.audit()).toEqual([]);
      const recs = await w.store.reputation.records(w.providerIds, T0 + 60_005, DEFAULT_QUOTA);
      for (const id of w.providerIds)
        expect(recs.get(id)?.reputation).toMatchObject({ valid: 2, consecutiveValid: 2, invalid: 0 });
    });

    it('does not schedule network jobs on agents that refuse network', async () => {
      const spec = JobSpecSchema.parse({ image: 'alpine:3', command: ['true'], network: true });
      await engineAt(w.store, T0).cancelJob(w.jobId);
      const netJob = await submit(w.store, w.buyerId, spec, T0 + 1);
      expect((await scheduleRound(w.store, T0 + 2)).size).toBe(0);
      await w.store.transaction((tx) =>
        tx.accounts.registerAgent(
          {
            id: 'agent_net',
            providerId: w.providerIds[1]!,
            name: 'net',
            publicKey: 'pkn',
            capacity: { ...CAPACITY, allowNetwork: true },
            offer: OFFER,
            availability: AVAILABLE,
          },
          T0 + 3,
        ),
      );
      expect([...(await scheduleRound(w.store, T0 + 4))]).toEqual(['agent_net']);
      expect((await w.store.jobs.header(netJob))?.state).toBe('running');
    });
  });
});

describe('SQLite file store', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'deqo-store-'));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('runs in WAL mode and keeps everything across a reopen (coordinator restart)', async () => {
    const path = join(dir, 'nested', 'deqo.db');
    const w = await makeWorld(await openSqliteStore(path), {
      array: undefined,
      verification: { replicas: 2, quorum: 2 },
    });
    await scheduleRound(w.store, T0);
    const [c] = await claim(w.store, w.agentIds[0]!, 1, T0);
    expect(existsSync(`${path}-wal`)).toBe(true);
    await w.store.close();

    const raw = new SqliteDatabase(path, { readonly: true });
    expect(raw.pragma('journal_mode', { simple: true })).toBe('wal');
    raw.close();

    const store = await openSqliteStore(path); // migrations are idempotent
    try {
      const v = await store.views.jobView(w.jobId, w.buyerId);
      expect(v?.state).toBe('running');
      expect(v?.tasks[0]?.executions.map((e) => e.state).sort()).toEqual(['assigned', 'running']);
      expect(await recordEnd(store, c!.executionId, w.agentIds[0]!, c!.fencingToken, reported(H1), T0 + 5)).toBe(
        v?.tasks[0]?.id,
      );
      expect(await store.accounts.findAccountByName('alice')).toBe(w.buyerId);
    } finally {
      await store.close();
    }
  });
});
