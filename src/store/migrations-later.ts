/**
 * Schema migrations 007 onward (001–006 and the provider that lists them all are in migrations.ts): reads that stay
 * flat as history, queues and arrays grow, blob quotas, the determinism probe. Never edit a landed migration.
 */
import { type Migration, sql } from 'kysely';
import { OPEN_STATES, REPLICA_STATES, type Dialect } from './migration-literals.js';

/**
 * Reads that stay flat as history grows (issue 12): a buyer's unsettled jobs (the balance's escrow) without reading
 * its settled ones; payments summed from a covering index; per-minute graded executions by finish time, covering
 * the state (the planner otherwise scans by state).
 */
export const m007 = (): Migration => ({
  async up(db) {
    await db.schema.createIndex('jobs_buyer_settled').on('jobs').columns(['buyer_id', 'settled_at']).execute();
    await db.schema
      .createIndex('ledger_account_kind')
      .on('ledger_entries')
      .columns(['account', 'kind', 'amount'])
      .execute();
    await db.schema.dropIndex('executions_finished').execute();
    await db.schema
      .createIndex('executions_finished_state')
      .on('executions')
      .columns(['finished_at', 'state'])
      .execute();
  },
});

/** A page of an array job's tasks in one state (`GET /v1/jobs/:id?taskState=failed`) reads that page, not the array. */
export const m008 = (): Migration => ({
  async up(db) {
    await db.schema.createIndex('tasks_job_state_idx').on('tasks').columns(['job_id', 'state', 'idx']).execute();
  },
});

/**
 * Blob quotas and expiry: when a blob was last uploaded or taken up by a new job (`blobs.used_at`; its
 * unreferenced lifetime counts from it), which account uploaded it (`blob_access.uploaded_at`; the account's quota
 * counts it), and which jobs use it (`blob_refs`: a job's inputs, its executions' logs and outputs), backfilled.
 */
export const m009 = (): Migration => ({
  async up(db) {
    await db.schema.alterTable('blobs').addColumn('used_at', 'bigint').execute();
    await sql`UPDATE blobs SET used_at = created_at`.execute(db);
    await db.schema.createIndex('blobs_used').on('blobs').columns(['used_at']).execute();
    await db.schema.alterTable('blob_access').addColumn('uploaded_at', 'bigint').execute();
    await db.schema.createIndex('blob_access_account').on('blob_access').columns(['account_id']).execute();
    await db.schema
      .createTable('blob_refs')
      .addColumn('sha256', 'text', (c) => c.notNull())
      .addColumn('job_id', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('blob_refs_pk', ['sha256', 'job_id'])
      .execute();
    for (const col of ['stdout_blob', 'stderr_blob', 'outputs_blob']) {
      await sql`INSERT INTO blob_refs (sha256, job_id) SELECT DISTINCT ${sql.ref(col)}, job_id FROM executions
        WHERE ${sql.ref(col)} IS NOT NULL ON CONFLICT DO NOTHING`.execute(db);
    }
    // Inputs live in each job's spec (JSON): read in pages, inserted per job.
    let after = '';
    for (;;) {
      const { rows } = await sql<{ id: string; spec: string }>`SELECT id, spec FROM jobs WHERE id > ${after}
        ORDER BY id LIMIT 1000`.execute(db);
      if (rows.length === 0) break;
      for (const r of rows) {
        const inputs = (JSON.parse(r.spec) as { inputs?: Array<{ blob: string }> }).inputs ?? [];
        for (const sha of new Set(inputs.map((i) => i.blob))) {
          await sql`INSERT INTO blob_refs (sha256, job_id) VALUES (${sha}, ${r.id}) ON CONFLICT DO NOTHING`.execute(db);
        }
      }
      after = rows[rows.length - 1]!.id;
    }
  },
});

/**
 * The determinism probe (core/probe.ts): a job's probe state (null without one; pending, passed, failed), and each
 * execution's probe pair (0: an ordinary execution). One execution per (task, provider) holds among ordinary
 * executions only: the two executions of a probe pair share their provider by design. Partial indexes are dropped and
 * created the same way on both databases.
 */
export const m010 = (): Migration => ({
  async up(db) {
    await db.schema.alterTable('jobs').addColumn('probe', 'text').execute();
    await db.schema
      .alterTable('executions')
      .addColumn('probe', 'integer', (c) => c.notNull().defaultTo(0))
      .execute();
    await db.schema.dropIndex('executions_task_provider_replica').execute();
    await sql
      .raw(
        `CREATE UNIQUE INDEX executions_task_provider_replica ON executions (task_id, provider_id) WHERE state IN ${REPLICA_STATES} AND probe = 0`,
      )
      .execute(db);
    await db.schema.createIndex('jobs_probe').on('jobs').columns(['probe']).execute();
  },
});

/** Execution states counted as a task's active executions (assigned, running, reported). */
const COUNTED_ACTIVE = "('assigned', 'running', 'reported')";
/** Execution states counted as a task's provider-side failures. */
const COUNTED_FAILED = "('lost', 'failed')";

/**
 * A queue whose scheduling cost does not grow with its length (issues 12, 13): each task row keeps the counts of its
 * ordinary executions (probe = 0: a determinism probe pair counts for none) that scheduling reads (active, ever
 * placed, failed provider-side, when the latest failure ended), kept by triggers on the executions table wherever an
 * execution is inserted or changes state — so a round reads a bounded set of candidate tasks without counting
 * executions of every open task. Partial indexes over open jobs and open tasks let a round read a job's wanting tasks
 * in index order, the reaper find tasks past their job's queue timeout job by job, and tasks awaiting a decision among
 * those ever placed (by state and executions_total). Existing rows are backfilled.
 */
export const m011 = (d: Dialect): Migration => ({
  async up(db) {
    for (const col of ['executions_active', 'executions_total', 'executions_failed'])
      await db.schema
        .alterTable('tasks')
        .addColumn(col, 'integer', (c) => c.notNull().defaultTo(0))
        .execute();
    await db.schema.alterTable('tasks').addColumn('last_failure_at', 'bigint').execute();
    // Ordinary executions only (probe = 0, migration 010): a probe pair counts toward no replica, retry or decision.
    const count = (states: string | null) =>
      `(SELECT COUNT(*) FROM executions e WHERE e.task_id = tasks.id AND e.probe = 0${states ? ` AND e.state IN ${states}` : ''})`;
    await sql
      .raw(
        `UPDATE tasks SET executions_active = ${count(COUNTED_ACTIVE)}, executions_total = ${count(null)},
         executions_failed = ${count(COUNTED_FAILED)},
         last_failure_at = (SELECT MAX(e.finished_at) FROM executions e WHERE e.task_id = tasks.id AND e.probe = 0 AND e.state IN ${COUNTED_FAILED})`,
      )
      .execute(db);
    const isActive = (row: string) => `(CASE WHEN ${row}.state IN ${COUNTED_ACTIVE} THEN 1 ELSE 0 END)`;
    const isFailed = (row: string) => `(CASE WHEN ${row}.state IN ${COUNTED_FAILED} THEN 1 ELSE 0 END)`;
    const greatest = d === 'postgres' ? 'GREATEST' : 'MAX';
    const lastFailure = `CASE WHEN NEW.state IN ${COUNTED_FAILED} THEN ${greatest}(COALESCE(last_failure_at, 0), COALESCE(NEW.finished_at, 0)) ELSE last_failure_at END`;
    const onInsert = `UPDATE tasks SET executions_total = executions_total + 1,
      executions_active = executions_active + ${isActive('NEW')}, executions_failed = executions_failed + ${isFailed('NEW')},
      last_failure_at = ${lastFailure} WHERE id = NEW.task_id`;
    const onUpdate = `UPDATE tasks SET executions_active = executions_active + ${isActive('NEW')} - ${isActive('OLD')},
      executions_failed = executions_failed + ${isFailed('NEW')} - ${isFailed('OLD')},
      last_failure_at = ${lastFailure} WHERE id = NEW.task_id`;
    const changed = `${isActive('OLD')} <> ${isActive('NEW')} OR ${isFailed('OLD')} <> ${isFailed('NEW')}`;
    if (d === 'postgres') {
      await sql
        .raw(
          `CREATE FUNCTION deqo_task_execution_counts() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN
             IF NEW.probe <> 0 THEN RETURN NULL;
             ELSIF TG_OP = 'INSERT' THEN ${onInsert};
             ELSIF ${changed} THEN ${onUpdate};
             END IF;
             RETURN NULL;
           END $$`,
        )
        .execute(db);
      await sql
        .raw(
          `CREATE TRIGGER executions_task_counts AFTER INSERT OR UPDATE OF state ON executions
           FOR EACH ROW EXECUTE FUNCTION deqo_task_execution_counts()`,
        )
        .execute(db);
    } else {
      await sql
        .raw(
          `CREATE TRIGGER executions_task_counts_insert AFTER INSERT ON executions WHEN NEW.probe = 0 BEGIN ${onInsert}; END`,
        )
        .execute(db);
      await sql
        .raw(
          `CREATE TRIGGER executions_task_counts_update AFTER UPDATE OF state ON executions WHEN NEW.probe = 0 AND (${changed}) BEGIN ${onUpdate}; END`,
        )
        .execute(db);
    }
    await sql.raw(`CREATE INDEX jobs_open ON jobs (created_at) WHERE state IN ${OPEN_STATES}`).execute(db);
    await sql.raw(`CREATE INDEX tasks_open_job ON tasks (job_id, idx) WHERE state IN ${OPEN_STATES}`).execute(db);
    await sql
      .raw(`CREATE INDEX tasks_open_job_updated ON tasks (job_id, updated_at) WHERE state IN ${OPEN_STATES}`)
      .execute(db);
    await db.schema.createIndex('tasks_state_placed').on('tasks').columns(['state', 'executions_total']).execute();
  },
});

/**
 * Backtracking reads a provider's valid executions (`TaskStore.verifiedWith`, after each outvote or catch): by
 * provider and state, so the read is that provider's history, not every verified task of the network.
 */
export const m012 = (): Migration => ({
  async up(db) {
    await db.schema
      .createIndex('executions_provider_state')
      .on('executions')
      .columns(['provider_id', 'state', 'task_id'])
      .execute();
  },
});
