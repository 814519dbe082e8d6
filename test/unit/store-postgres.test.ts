/**
 * Several coordinators on one PostgreSQL database, as several store instances (and engines) in this process,
 * each with its own connection pool: the races READ COMMITTED allows and the store's locks must prevent.
 * Every test runs on a fresh database (deqo_pg_<random>) and races real transactions on the real server.
 */
import pg from 'pg';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DEFAULT_QUOTA, grantTxn, toMicro } from '../../src/core/index.js';
import { DEFAULT_ENGINE_CONFIG, Engine } from '../../src/engine/index.js';
import { JobSpecSchema, type JobSpecInput } from '../../src/protocol/index.js';
import { transact } from '../../src/store/db.js';
import { openPostgresStore, openStore, type ExecutionEnd, type Store } from '../../src/store/index.js';
import { openPostgres } from '../../src/store/postgres.js';
import {
  AVAILABLE,
  CAPACITY,
  claim,
  decide,
  engineAt,
  OFFER,
  recordEnd,
  reported,
  scheduleRound,
  submit,
  T0,
} from '../helpers/store-world.js';
import { emptyBlobStore } from '../helpers/outputs.js';
import { createPgDatabase } from '../helpers/stores.js';

const silent = pino({ level: 'silent' });

let db: Awaited<ReturnType<typeof createPgDatabase>>;
let open: Store[] = [];
beforeEach(async () => {
  db = await createPgDatabase();
  open = [];
});
afterEach(async () => {
  for (const s of open) await s.close();
  await db.drop();
});

/** A store on the test database, closed after the test. */
async function store(): Promise<Store> {
  const s = await openPostgresStore(db.url);
  open.push(s);
  return s;
}

/** A plain connection to the test database, ended after `fn`. */
async function withClient<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: db.url });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

const query = <R extends pg.QueryResultRow>(text: string): Promise<R[]> =>
  withClient(async (c) => (await c.query<R>(text)).rows);

/** Deqo's advisory lock keys (store/postgres.ts): namespace 'deqo', then migrate = 1, schedule = 2. */
const lockKeys = (step: 1 | 2) => `${0x6465716f}, ${step}`;

/**
 * Waits until another session of the test database waits on an advisory lock (pg_stat_activity), then returns
 * whether `p` has settled by then: a step that waits for the lock must not have.
 */
async function blockedOnAdvisoryLock(p: Promise<unknown>): Promise<{ settled: boolean }> {
  let settled = false;
  void p.then(
    () => (settled = true),
    () => (settled = true),
  );
  for (let i = 0; ; i++) {
    const waiting = await query<{ n: string }>(
      "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND wait_event = 'advisory'",
    );
    if (Number(waiting[0]!.n) > 0 || settled) return { settled };
    if (i > 600) throw new Error('no session ever waited on the advisory lock');
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A buyer with credits and `providers` providers with one agent each of `cpus` CPUs (64 GiB). */
async function market(s: Store, providers: number, cpus: number) {
  const buyerId = await s.transaction((tx) => tx.accounts.createAccount('buyer', ['buyer'], T0));
  await s.transaction((tx) => tx.ledger.post(grantTxn(buyerId, toMicro(10_000), 'test credits'), T0));
  const agents: Array<{ agentId: string; providerId: string }> = [];
  for (let i = 0; i < providers; i++) {
    const providerId = await s.transaction((tx) => tx.accounts.createAccount(`provider${i}`, ['provider'], T0));
    const agentId = `agent_${i}`;
    await s.transaction((tx) =>
      tx.accounts.registerAgent(
        {
          id: agentId,
          providerId,
          name: `box${i}`,
          publicKey: `pk${i}`,
          capacity: { ...CAPACITY, cpus, memoryMb: 65_536 },
          offer: OFFER,
          availability: AVAILABLE,
        },
        T0,
      ),
    );
    agents.push({ agentId, providerId });
  }
  return { buyerId, agents };
}

const spec = (input: Partial<JobSpecInput> = {}) =>
  JobSpecSchema.parse({
    image: 'deqo/busybox:test',
    command: ['true'],
    resources: { cpus: 1, memoryMb: 64 },
    ...input,
  });

/**
 * `jobs` jobs of `tasks` one-replica tasks on one provider's agent, scheduled, claimed and ended (not yet
 * decided): reported with one result, or for the jobs `failed(jobIndex)` names, failed by the provider.
 * Returns the task ids per job.
 */
async function reportedJobs(
  s: Store,
  jobs: number,
  tasks: number,
  failed: (job: number) => boolean = () => false,
): Promise<{ jobIds: string[]; taskIds: string[][]; providerId: string }> {
  const { buyerId, agents } = await market(s, 1, jobs * tasks);
  const jobIds: string[] = [];
  for (let j = 0; j < jobs; j++) jobIds.push(await submit(s, buyerId, spec({ array: { count: tasks } }), T0));
  await scheduleRound(s, T0);
  const byJob = new Map<string, string[]>();
  for (const c of await claim(s, agents[0]!.agentId, jobs * tasks, T0 + 1)) {
    const end: ExecutionEnd = failed(jobIds.indexOf(c.jobId))
      ? {
          state: 'failed',
          failure: { reason: 'agent_error', blame: 'provider', message: 'x' },
          usage: null,
          stdoutBlob: null,
          stderrBlob: null,
        }
      : reported('1'.repeat(64));
    const taskId = (await recordEnd(s, c.executionId, agents[0]!.agentId, c.fencingToken, end, T0 + 2))!;
    byJob.set(c.jobId, [...(byJob.get(c.jobId) ?? []), taskId]);
  }
  return { jobIds, taskIds: jobIds.map((j) => byJob.get(j) ?? []), providerId: agents[0]!.providerId };
}

describe('several coordinators on one PostgreSQL database', () => {
  it('migrates under an advisory lock: a store waits while another session holds it', async () => {
    await withClient(async (c) => {
      await c.query(`SELECT pg_advisory_lock(${lockKeys(1)})`);
      const opening = store();
      expect(await blockedOnAdvisoryLock(opening)).toEqual({ settled: false });
      await c.query(`SELECT pg_advisory_unlock(${lockKeys(1)})`);
      await opening;
    });
  });

  it('migrates once when several stores open a new database at the same moment, and each works', async () => {
    const stores = await Promise.all(Array.from({ length: 6 }, () => store()));
    const rows = await query<{ name: string }>('SELECT name FROM kysely_migration ORDER BY name');
    expect(rows.map((r) => r.name)).toEqual([
      '001_initial',
      '002_marketplace',
      '003_charts',
      '004_task_counts',
      '005_standing',
      '006_spot_checks',
      '007_flat_reads',
      '008_task_pages',
      '009_blob_quota',
      '010_probe',
      '011_queue',
      '012_backtrack_reads',
    ]);
    for (const [i, s] of stores.entries())
      expect(await s.transaction((tx) => tx.accounts.createAccount(`a${i}`, ['buyer'], T0))).toMatch(/^acct_/);
  });

  it('hands each execution to exactly one of many concurrent claims, and skips rows others hold instead of coming back short', async () => {
    const [a, b] = [await store(), await store()];
    const { buyerId, agents } = await market(a, 1, 24);
    await submit(a, buyerId, spec({ array: { count: 24 } }), T0);
    expect((await scheduleRound(a, T0)).size).toBe(1);
    const claims = await Promise.all(
      Array.from({ length: 8 }, (_, i) => claim(i % 2 ? a : b, agents[0]!.agentId, 4, T0 + 1)),
    );
    const ids = claims.flat().map((c) => c.executionId);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids).toHaveLength(24); // with SKIP LOCKED no claim waits for rows another takes, so all 24 go out
    expect(claims.flat().every((c) => c.fencingToken === 1)).toBe(true);
    const rows = await query<{ n: string }>(
      "SELECT count(*) AS n FROM executions WHERE state = 'running' AND fencing_token = 1",
    );
    expect(Number(rows[0]!.n)).toBe(24);
  });

  it('ends every job when two coordinators decide its last two tasks at the same moment (job row locked for the roll-up)', async () => {
    const [a, b] = [await store(), await store()];
    const { jobIds, taskIds } = await reportedJobs(a, 12, 2);
    const results = await Promise.all(taskIds.flatMap(([t0, t1]) => [decide(a, t0!, T0 + 3), decide(b, t1!, T0 + 3)]));
    expect(results.every((r) => r === 'verified')).toBe(true);
    for (const jobId of jobIds) expect((await a.jobs.header(jobId))?.state).toBe('succeeded');
  });

  it('settles each execution once when two coordinators settle and decide at once, counting every outcome in reputation', async () => {
    const [a, b] = [await store(), await store()];
    // Half the executions end valid (paid: the provider's balance row serializes those), half fail on the
    // provider's side (unpaid: only the reputation row lock keeps their outcomes from overwriting each other).
    const { taskIds, providerId } = await reportedJobs(a, 12, 1, (j) => j % 2 === 1);
    expect(await a.settlement.unsettledExecutions(100)).toHaveLength(6); // the failed half, recorded unsettled
    // The valid half is decided (and paid, in the deciding transaction) by both coordinators at once, while both
    // sweep the failed half at once.
    await Promise.all([
      ...taskIds.filter((_, j) => j % 2 === 0).map(([t], k) => decide(k % 2 ? a : b, t!, T0 + 3)),
      engineAt(a, T0 + 4).settle(),
      engineAt(b, T0 + 4).settle(),
    ]);
    // SKIP LOCKED may leave some for a later round: settle what is left, as the next tick would.
    await engineAt(a, T0 + 5).settle();
    expect(await a.settlement.unsettledExecutions(100)).toEqual([]);
    const payments = await query<{ execution_id: string; n: string }>(
      "SELECT execution_id, count(*) AS n FROM ledger_entries WHERE kind = 'payment' AND account LIKE 'acct:%' GROUP BY execution_id",
    );
    const valid = await query<{ id: string }>("SELECT id FROM executions WHERE state = 'valid'");
    expect(payments.map((p) => p.execution_id).sort()).toEqual(valid.map((v) => v.id).sort());
    expect(payments.every((p) => Number(p.n) === 1)).toBe(true);
    const rec = (await a.reputation.records([providerId], T0 + 6, DEFAULT_QUOTA)).get(providerId)!.reputation;
    expect([rec.valid, rec.errors]).toEqual([6, 6]);
    expect(await query('SELECT id FROM reputation_events')).toHaveLength(12);
    expect(await a.ledger.audit()).toEqual([]);
  });

  it('runs an engine’s scheduling round only while no other coordinator runs one (no two plans from one snapshot of capacity)', async () => {
    const a = await store();
    const { buyerId } = await market(a, 1, 2);
    for (let i = 0; i < 3; i++) await submit(a, buyerId, spec(), T0);
    const executions = async () => Number((await query<{ n: string }>('SELECT count(*) AS n FROM executions'))[0]!.n);
    await withClient(async (c) => {
      await c.query(`SELECT pg_advisory_lock(${lockKeys(2)})`); // another coordinator's round
      const round = new Engine(a, {
        blobs: emptyBlobStore(),
        config: DEFAULT_ENGINE_CONFIG,
        log: silent,
        now: () => T0 + 1_000,
      }).schedule();
      expect(await blockedOnAdvisoryLock(round)).toEqual({ settled: false });
      expect(await executions()).toBe(0);
      await c.query(`SELECT pg_advisory_unlock(${lockKeys(2)})`);
      await round;
    });
    expect(await executions()).toBe(2); // the agent's 2 CPUs
  });

  it('runs exclusive steps one after the other across stores', async () => {
    const [a, b] = [await store(), await store()];
    const spans: Array<[string, number, number]> = [];
    const step = (name: string) => async () => {
      const start = performance.now();
      await new Promise((r) => setTimeout(r, 200));
      spans.push([name, start, performance.now()]);
    };
    await Promise.all([
      a.exclusive('schedule', step('a')),
      b.exclusive('schedule', step('b')),
      a.exclusive('schedule', step('a2')),
    ]);
    spans.sort((x, y) => x[1] - y[1]);
    expect(spans).toHaveLength(3);
    for (let i = 1; i < spans.length; i++) expect(spans[i]![1]).toBeGreaterThanOrEqual(spans[i - 1]![2]);
  });

  it('keeps the ledger audit clean while another coordinator posts (one snapshot)', async () => {
    const [a, b] = [await store(), await store()];
    const buyers = await Promise.all(
      [0, 1, 2].map((i) => a.transaction((tx) => tx.accounts.createAccount(`b${i}`, ['buyer'], T0))),
    );
    const posting = (async () => {
      for (let i = 0; i < 300; i++)
        await a.transaction((tx) => tx.ledger.post(grantTxn(buyers[i % 3]!, 1_000 + i, 'grant'), T0));
    })();
    const audits: string[][] = [];
    for (let i = 0; i < 100; i++) audits.push(await b.ledger.audit());
    await posting;
    expect(audits.flat()).toEqual([]);
    expect(await b.ledger.audit()).toEqual([]);
  });
});

describe('opening a store by URL', () => {
  it('opens PostgreSQL for postgres:// and postgresql://, and names the URL (without its password) when it cannot connect', async () => {
    const s = await openStore(db.url.replace(/^postgres:/, 'postgresql:'));
    open.push(s);
    expect(s.capabilities).toEqual({ dialect: 'postgres', skipLocked: true, listenNotify: true });
    const err = await openStore('postgres://deqo:hunter2@127.0.0.1:1/deqo').then(
      () => null,
      (e: Error) => e,
    );
    expect(err?.message).toMatch(/^cannot open PostgreSQL at postgres:\/\/deqo:…@127\.0\.0\.1:1\/deqo: /);
    expect(err?.message).not.toContain('hunter2');
    await expect(openStore('mysql://root:pw@host/db')).rejects.toThrow(
      'unsupported database URL mysql://root:…@host/db: expected postgres://… or a SQLite path',
    );
  });
});

describe('signals and retries between coordinators', () => {
  it('delivers published agent ids to the other stores (in chunks under the NOTIFY limit), never back to the publisher', async () => {
    const [a, b] = [await store(), await store()];
    const got = { a: [] as string[][], b: [] as string[][] };
    a.notifier.subscribe((ids) => got.a.push(ids));
    b.notifier.subscribe((ids) => got.b.push(ids));
    // LISTEN starts asynchronously: ping until b hears a.
    for (let i = 0; got.b.length === 0; i++) {
      if (i > 100) throw new Error('b never heard a');
      await a.notifier.publish(['ping']);
      await new Promise((r) => setTimeout(r, 50));
    }
    got.b.length = 0;
    const many = Array.from({ length: 300 }, (_, i) => `agent_${String(i).padStart(60, '0')}`);
    await a.notifier.publish(many);
    await b.notifier.publish(['from-b']);
    for (let i = 0; !got.a.some((x) => x.includes('from-b')); i++) {
      if (i > 100) throw new Error('a never heard b');
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(got.b.length).toBeGreaterThan(1); // 300 × 70 bytes do not fit one notification
    expect(got.b.flat()).toEqual(many);
    expect(got.a).toEqual([['from-b']]); // its own messages (ping, many) never came back
  });

  it('wakes an agent long-polling one coordinator when another coordinator gives it work', async () => {
    const [a, b] = [await store(), await store()];
    const { buyerId, agents } = await market(a, 1, 4);
    const ea = new Engine(a, { blobs: emptyBlobStore(), config: DEFAULT_ENGINE_CONFIG, log: silent });
    // b's own loop would only find the work at its next tick: make that an hour away.
    const eb = new Engine(b, {
      blobs: emptyBlobStore(),
      config: { ...DEFAULT_ENGINE_CONFIG, tickMs: 3_600_000 },
      log: silent,
    });
    ea.start();
    eb.start();
    try {
      await eb.registerAgent({
        id: agents[0]!.agentId,
        providerId: agents[0]!.providerId,
        name: 'box0',
        publicKey: 'pk0',
        capacity: { ...CAPACITY, cpus: 4 },
        offer: OFFER,
        availability: AVAILABLE,
      });
      await new Promise((r) => setTimeout(r, 300)); // b's listener connects; b's own rounds find nothing
      // The claim waits up to an hour (past the test's own timeout), and b's loop runs no round in that hour: it
      // can only come back with work because a's notification woke it.
      const claim = eb.claim(agents[0]!.agentId, 1, 3_600_000);
      await new Promise((r) => setTimeout(r, 200)); // the claim is waiting
      const { jobId } = await ea.submitJob(buyerId, spec());
      const got = await claim;
      expect(got.map((x) => x.jobId)).toEqual([jobId]);
    } finally {
      await ea.stop();
      await eb.stop();
    }
  });

  it('runs a transaction again when PostgreSQL aborts it for a deadlock', async () => {
    const { db: kdb, coordination } = await openPostgres(db.url);
    try {
      await kdb
        .insertInto('balances')
        .values([
          { account: 'x', balance: 0 },
          { account: 'y', balance: 0 },
        ])
        .execute();
      let runs = 0;
      let holding = 0;
      let bothHold!: () => void;
      const both = new Promise<void>((r) => {
        bothHold = r;
      });
      const bump = (first: string, second: string) =>
        transact(kdb, async (tx) => {
          runs++;
          await tx
            .updateTable('balances')
            .set((eb) => ({ balance: eb('balance', '+', 1) }))
            .where('account', '=', first)
            .execute();
          if (++holding === 2) bothHold();
          await both; // each holds its first row and now wants the other's: a deadlock PostgreSQL breaks after deadlock_timeout
          await tx
            .updateTable('balances')
            .set((eb) => ({ balance: eb('balance', '+', 1) }))
            .where('account', '=', second)
            .execute();
        });
      await Promise.all([bump('x', 'y'), bump('y', 'x')]);
      expect(runs).toBe(3);
      const rows = await kdb.selectFrom('balances').selectAll().orderBy('account').execute();
      expect(rows).toEqual([
        { account: 'x', balance: 2 },
        { account: 'y', balance: 2 },
      ]);
    } finally {
      await coordination.notifier.close();
      await kdb.destroy();
    }
  });
});
