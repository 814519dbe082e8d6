/**
 * Blob records over real SQLite and real PostgreSQL: an account's uploaded bytes (all, or what no job uses), a job's
 * references, and which blobs are expired — unused since the cutoff and used by no open job, no job that ended after
 * the retention cutoff, and no job with a canary task; a deletion re-checks, so a blob taken up meanwhile stays.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { grantTxn, toMicro } from '../../src/core/index.js';
import { JobSpecSchema } from '../../src/protocol/index.js';
import { openSqliteStore, type Store } from '../../src/store/index.js';
import { submit, T0 } from '../helpers/store-world.js';
import { storeKinds } from '../helpers/stores.js';

const A = 'a'.repeat(64);
const B = 'b'.repeat(64);
const C = 'c'.repeat(64);
const HOUR = 3_600_000;
/** Blobs unused for an hour that no job open or ended within two hours uses. */
const expiry = (now: number) => ({ unusedBefore: now - HOUR, endedBefore: now - 2 * HOUR });

describe.each(storeKinds())('blob records over $name', (kind) => {
  let store: Store;
  let buyer: string;
  beforeAll(() => kind.setup());
  afterAll(() => kind.teardown());
  beforeEach(async () => {
    store = await kind.open();
    buyer = await store.transaction((tx) => tx.accounts.createAccount('buyer', ['buyer'], T0));
    await store.transaction((tx) => tx.ledger.post(grantTxn(buyer, toMicro(100), 'test credits'), T0));
    for (const [sha, size] of [
      [A, 100],
      [B, 200],
      [C, 300],
    ] as const)
      await store.transaction(async (tx) => {
        await tx.accounts.recordBlob(sha, size, T0);
        await tx.blobs.recordUpload(sha, buyer, T0);
      });
  });
  afterEach(() => store.close());

  const jobUsing = (sha: string) =>
    submit(
      store,
      buyer,
      JobSpecSchema.parse({ image: 'x', command: ['true'], inputs: [{ path: 'in', blob: sha }] }),
      T0,
    );

  it("counts an account's uploaded bytes, and what no job uses", async () => {
    await jobUsing(A);
    expect(await store.blobs.uploadedBytes(buyer)).toBe(600);
    expect(await store.blobs.uploadedBytes(buyer, true)).toBe(500);
  });

  it('expires unused blobs no job holds; keeps an open job’s, and an ended one’s until the retention cutoff', async () => {
    const jobA = await jobUsing(A);
    const now = T0 + HOUR + 1;
    expect((await store.blobs.expired(expiry(now), 10)).sort()).toEqual([B, C]);
    // The job ends at T0 + 10 min: kept while that is after the retention cutoff.
    await store.transaction((tx) => tx.jobs.setState(jobA, 'cancelled', T0 + 10 * 60_000));
    expect((await store.blobs.expired(expiry(now), 10)).sort()).toEqual([B, C]);
    const later = T0 + 10 * 60_000 + 2 * HOUR + 1;
    expect((await store.blobs.expired(expiry(later), 10)).sort()).toEqual([A, B, C]);
  });

  it('keeps the blobs of a job with a canary task (spot-checks replay it)', async () => {
    const jobA = await jobUsing(A);
    await store.transaction(async (tx) => {
      const [task] = await tx.tasks.ofJob(jobA);
      await tx.tasks.write(task!.id, task!.revision, T0, { canary: true });
      await tx.jobs.setState(jobA, 'cancelled', T0);
    });
    expect(await store.blobs.expired(expiry(T0 + 10 * HOUR), 10)).not.toContain(A);
  });

  it('deletes only what is still expired, with its access rows', async () => {
    const now = T0 + HOUR + 1;
    const candidates = await store.blobs.expired(expiry(now), 10);
    // B is taken up by a new job after the candidates were read.
    await store.transaction((tx) => tx.blobs.touch([B], now));
    const gone = await store.transaction((tx) => tx.blobs.deleteExpired(candidates, expiry(now)));
    expect(gone.sort()).toEqual([A, C]);
    expect(await store.accounts.blobSize(A)).toBeNull();
    expect(await store.accounts.canReadBlob(A, buyer)).toBe(false);
    expect(await store.blobs.uploadedBytes(buyer)).toBe(200);
    expect(await store.transaction((tx) => tx.blobs.touch([A, B], now))).toBe(1);
  });
});

describe('migration 009 on an existing SQLite database', () => {
  it("backfills the blobs each job uses: its inputs and its executions' logs and outputs", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'deqo-m008-'));
    const file = join(dir, 'deqo.db');
    try {
      let store = await openSqliteStore(file);
      const buyer = await store.transaction((tx) => tx.accounts.createAccount('buyer', ['buyer'], T0));
      await store.transaction((tx) => tx.ledger.post(grantTxn(buyer, toMicro(100), 'test credits'), T0));
      await store.transaction(async (tx) => {
        for (const sha of [A, B, C]) await tx.accounts.recordBlob(sha, 1, T0);
        await tx.accounts.grantBlobAccess([A], buyer);
      });
      const spec = JobSpecSchema.parse({ image: 'x', command: ['true'], inputs: [{ path: 'in', blob: A }] });
      const jobId = await submit(store, buyer, spec, T0);
      await store.close();
      // Back to the schema before 008, with an execution that reported logs and outputs.
      const raw = new SqliteDatabase(file);
      raw.pragma('foreign_keys = OFF'); // the execution's agent is not stored
      const taskId = (raw.prepare('SELECT id FROM tasks WHERE job_id = ?').get(jobId) as { id: string }).id;
      // Migrations 012, 011 and 010 undone first (they ran after 009), then 009 itself; reopening runs them again.
      raw.exec(`DROP INDEX executions_provider_state; DROP TRIGGER executions_task_counts_insert; DROP TRIGGER executions_task_counts_update;
        DROP INDEX jobs_open; DROP INDEX tasks_open_job; DROP INDEX tasks_open_job_updated; DROP INDEX tasks_state_placed;
        ALTER TABLE tasks DROP COLUMN executions_active; ALTER TABLE tasks DROP COLUMN executions_total;
        ALTER TABLE tasks DROP COLUMN executions_failed; ALTER TABLE tasks DROP COLUMN last_failure_at;
        DROP INDEX jobs_probe; ALTER TABLE jobs DROP COLUMN probe; DROP INDEX executions_task_provider_replica;
        ALTER TABLE executions DROP COLUMN probe;
        CREATE UNIQUE INDEX executions_task_provider_replica ON executions (task_id, provider_id)
          WHERE state IN ('assigned', 'running', 'reported', 'valid', 'invalid');
        DROP INDEX blobs_used; ALTER TABLE blobs DROP COLUMN used_at;
        DROP INDEX blob_access_account; ALTER TABLE blob_access DROP COLUMN uploaded_at;
        DROP TABLE blob_refs;
        DELETE FROM kysely_migration WHERE name IN ('009_blob_quota', '010_probe', '011_queue', '012_backtrack_reads');`);
      raw
        .prepare(
          `INSERT INTO executions (id, task_id, job_id, agent_id, provider_id, state, desired, fencing_token,
            created_at, revision, stdout_blob, stderr_blob, outputs_blob) VALUES ('exec_1', ?, ?, 'agent', 'p',
            'valid', 'run', 1, ?, 0, ?, ?, NULL)`,
        )
        .run(taskId, jobId, T0, B, C);
      raw.close();
      store = await openSqliteStore(file);
      try {
        // Used by the open job: none of them expires, whatever its age.
        expect(await store.blobs.expired(expiry(T0 + 100 * HOUR), 10)).toEqual([]);
        await store.transaction((tx) => tx.jobs.setState(jobId, 'cancelled', T0));
        expect((await store.blobs.expired(expiry(T0 + 100 * HOUR), 10)).sort()).toEqual([A, B, C]);
      } finally {
        await store.close();
      }
      // Migration 011 backfilled the task's execution counts from the execution inserted above.
      const check = new SqliteDatabase(file);
      expect(check.prepare('SELECT executions_total, executions_active FROM tasks WHERE id = ?').get(taskId)).toEqual({
        executions_total: 1,
        executions_active: 0,
      });
      check.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
