/**
 * Schema migrations, in order: 001–006 here, 007 onward in migrations-later.ts. Never edit a landed migration; add a
 * new one (in migrations-later.ts).
 * The same migrations serve both databases; where SQL types differ the dialect picks them (`types`), and
 * SQLite gets exactly what it got before PostgreSQL existed.
 */
import {
  type ColumnDataType,
  type CreateTableBuilder,
  type Kysely,
  type Migration,
  type MigrationProvider,
  sql,
} from 'kysely';

import { REPLICA_STATES, type Dialect } from './migration-literals.js';
import { m007, m008, m009, m010, m011, m012 } from './migrations-later.js';

export type { Dialect } from './migration-literals.js';

/**
 * Column types that differ: a floating-point number (SQLite `real` is 8 bytes; PostgreSQL `real` is only
 * 4, so it gets `double precision`), and an auto-numbered primary key (SQLite `integer primary key
 * autoincrement`; PostgreSQL `bigserial`).
 */
function types(d: Dialect): {
  float: ColumnDataType;
  serialKey: (db: Kysely<unknown>, table: string) => CreateTableBuilder<string, 'id'>;
} {
  return d === 'postgres'
    ? {
        float: 'double precision',
        serialKey: (db, t) => db.schema.createTable(t).addColumn('id', 'bigserial', (c) => c.primaryKey()),
      }
    : {
        float: 'real',
        serialKey: (db, t) =>
          db.schema.createTable(t).addColumn('id', 'integer', (c) => c.primaryKey().autoIncrement()),
      };
}

const m001 = (d: Dialect): Migration => ({
  async up(db: Kysely<unknown>) {
    await db.schema
      .createTable('accounts')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('name', 'text', (c) => c.notNull().unique())
      .addColumn('roles', 'text', (c) => c.notNull())
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .execute();
    await db.schema
      .createTable('api_keys')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('account_id', 'text', (c) => c.notNull().references('accounts.id'))
      .addColumn('key_hash', 'text', (c) => c.notNull().unique())
      .addColumn('scope', 'text', (c) => c.notNull())
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .addColumn('revoked_at', 'bigint')
      .execute();
    await db.schema
      .createTable('agents')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('provider_id', 'text', (c) => c.notNull().references('accounts.id'))
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('public_key', 'text', (c) => c.notNull())
      .addColumn('capacity', 'text', (c) => c.notNull())
      .addColumn('registered_at', 'bigint', (c) => c.notNull())
      .addColumn('last_seen_at', 'bigint', (c) => c.notNull())
      .execute();
    await db.schema
      .createTable('jobs')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('buyer_id', 'text', (c) => c.notNull().references('accounts.id'))
      .addColumn('name', 'text')
      .addColumn('spec', 'text', (c) => c.notNull())
      .addColumn('state', 'text', (c) => c.notNull())
      .addColumn('cpus', types(d).float, (c) => c.notNull())
      .addColumn('memory_mb', 'integer', (c) => c.notNull())
      .addColumn('network', 'integer', (c) => c.notNull())
      .addColumn('task_count', 'integer', (c) => c.notNull())
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .addColumn('finished_at', 'bigint')
      .addColumn('revision', 'integer', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('jobs_buyer_created').on('jobs').columns(['buyer_id', 'created_at']).execute();
    await db.schema
      .createTable('tasks')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('job_id', 'text', (c) => c.notNull().references('jobs.id'))
      .addColumn('idx', 'integer', (c) => c.notNull())
      .addColumn('params', 'text', (c) => c.notNull())
      .addColumn('state', 'text', (c) => c.notNull())
      .addColumn('target', 'integer', (c) => c.notNull())
      .addColumn('quorum', 'integer', (c) => c.notNull())
      .addColumn('max_executions', 'integer', (c) => c.notNull())
      .addColumn('max_errors', 'integer', (c) => c.notNull())
      .addColumn('verdict', 'text')
      .addColumn('failure', 'text')
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .addColumn('updated_at', 'bigint', (c) => c.notNull())
      .addColumn('revision', 'integer', (c) => c.notNull())
      .addUniqueConstraint('tasks_job_idx', ['job_id', 'idx'])
      .execute();
    await db.schema.createIndex('tasks_state').on('tasks').columns(['state']).execute();
    await db.schema
      .createTable('executions')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('task_id', 'text', (c) => c.notNull().references('tasks.id'))
      .addColumn('job_id', 'text', (c) => c.notNull().references('jobs.id'))
      .addColumn('agent_id', 'text', (c) => c.notNull().references('agents.id'))
      .addColumn('provider_id', 'text', (c) => c.notNull())
      .addColumn('state', 'text', (c) => c.notNull())
      .addColumn('desired', 'text', (c) => c.notNull())
      .addColumn('fencing_token', 'integer', (c) => c.notNull())
      .addColumn('lease_expires_at', 'bigint')
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .addColumn('started_at', 'bigint')
      .addColumn('finished_at', 'bigint')
      .addColumn('exit_code', 'integer')
      .addColumn('result_hash', 'text')
      .addColumn('verdict', 'text')
      .addColumn('failure', 'text')
      .addColumn('usage', 'text')
      .addColumn('manifest', 'text')
      .addColumn('stdout_blob', 'text')
      .addColumn('stderr_blob', 'text')
      .addColumn('outputs_blob', 'text')
      .addColumn('revision', 'integer', (c) => c.notNull())
      // One execution per provider per task: replicas never share a provider (enforced here as well as in the scheduler).
      .addUniqueConstraint('executions_task_provider', ['task_id', 'provider_id'])
      .execute();
    await db.schema.createIndex('executions_task').on('executions').columns(['task_id']).execute();
    await db.schema.createIndex('executions_agent_state').on('executions').columns(['agent_id', 'state']).execute();
    await db.schema
      .createIndex('executions_state_lease')
      .on('executions')
      .columns(['state', 'lease_expires_at'])
      .execute();
    await db.schema
      .createTable('blobs')
      .addColumn('sha256', 'text', (c) => c.primaryKey())
      .addColumn('size', 'bigint', (c) => c.notNull())
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .execute();
    await sql`SELECT 1`.execute(db);
  },
});

/** The marketplace: offers, escrow funding, the ledger, reputation, blob access. */
const m002 = (d: Dialect): Migration => ({
  async up(db: Kysely<unknown>) {
    const add = (table: string, col: string, type: 'text' | 'integer' | 'bigint', dflt?: string | number) =>
      db.schema
        .alterTable(table)
        .addColumn(col, type, (c) => (dflt === undefined ? c : c.notNull().defaultTo(dflt)))
        .execute();
    await add('api_keys', 'label', 'text');
    await add('agents', 'offer', 'text', '{}');
    await add('agents', 'availability', 'text', '{"state":"available"}');
    await add('jobs', 'image', 'text', '');
    await add('jobs', 'demand', 'text', '{}');
    await add('jobs', 'mode', 'text', 'replicate');
    await add('jobs', 'execution_max_cost', 'bigint', 0);
    await add('jobs', 'queue_timeout_ms', 'bigint', 86_400_000);
    await add('jobs', 'settled_at', 'bigint');
    await add('tasks', 'funded', 'integer', 0);
    await add('tasks', 'alone', 'integer', 0);
    await add('executions', 'price', 'text');
    await add('executions', 'paid', 'bigint');
    await add('executions', 'settled_at', 'bigint');
    await db.schema.createIndex('executions_unsettled').on('executions').columns(['settled_at', 'state']).execute();
    await db.schema
      .createIndex('executions_provider_created')
      .on('executions')
      .columns(['provider_id', 'created_at'])
      .execute();
    await db.schema.createIndex('jobs_settled_state').on('jobs').columns(['settled_at', 'state']).execute();

    // Append-only double-entry ledger: rows are inserted, never updated or deleted.
    await types(d)
      .serialKey(db, 'ledger_entries')
      .addColumn('txn_id', 'text', (c) => c.notNull())
      .addColumn('kind', 'text', (c) => c.notNull())
      .addColumn('account', 'text', (c) => c.notNull())
      .addColumn('amount', 'bigint', (c) => c.notNull())
      .addColumn('job_id', 'text')
      .addColumn('execution_id', 'text')
      .addColumn('memo', 'text', (c) => c.notNull())
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      // An execution is paid at most once: one posting per (execution, ledger account).
      .addUniqueConstraint('ledger_execution_account', ['execution_id', 'account'])
      .execute();
    await db.schema.createIndex('ledger_account').on('ledger_entries').columns(['account', 'id']).execute();
    await db.schema.createIndex('ledger_job').on('ledger_entries').columns(['job_id']).execute();
    // Cached projection of the ledger (rebuilt and compared in tests): balance per ledger account.
    await db.schema
      .createTable('balances')
      .addColumn('account', 'text', (c) => c.primaryKey())
      .addColumn('balance', 'bigint', (c) => c.notNull())
      .execute();

    await db.schema
      .createTable('reputation')
      .addColumn('provider_id', 'text', (c) => c.primaryKey())
      .addColumn('consecutive_valid', 'integer', (c) => c.notNull())
      .addColumn('valid', 'integer', (c) => c.notNull())
      .addColumn('invalid', 'integer', (c) => c.notNull())
      .addColumn('errors', 'integer', (c) => c.notNull())
      .addColumn('daily_quota', 'integer', (c) => c.notNull())
      .addColumn('turnaround_ms_total', 'bigint', (c) => c.notNull())
      .addColumn('turnaround_count', 'integer', (c) => c.notNull())
      .addColumn('updated_at', 'bigint', (c) => c.notNull())
      .execute();
    await types(d)
      .serialKey(db, 'reputation_events')
      .addColumn('provider_id', 'text', (c) => c.notNull())
      .addColumn('at', 'bigint', (c) => c.notNull())
      .addColumn('kind', 'text', (c) => c.notNull())
      .addColumn('cross_checked', 'integer', (c) => c.notNull())
      .addColumn('execution_id', 'text')
      .addColumn('job_id', 'text')
      .addColumn('consecutive_valid', 'integer', (c) => c.notNull())
      .addColumn('daily_quota', 'integer', (c) => c.notNull())
      .addColumn('score', types(d).float, (c) => c.notNull())
      .execute();
    await db.schema
      .createIndex('reputation_events_provider')
      .on('reputation_events')
      .columns(['provider_id', 'id'])
      .execute();

    // Who may read a blob: its uploaders, the buyer of a job that produced or uses it, providers running it.
    await db.schema
      .createTable('blob_access')
      .addColumn('sha256', 'text', (c) => c.notNull())
      .addColumn('account_id', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('blob_access_pk', ['sha256', 'account_id'])
      .execute();
  },
});

/** Indexes for the dashboard's charts (store/live.ts): time ranges of jobs and executions, recently decided tasks. */
const m003 = (): Migration => ({
  async up(db) {
    await db.schema.createIndex('jobs_created').on('jobs').columns(['created_at']).execute();
    await db.schema.createIndex('jobs_finished').on('jobs').columns(['finished_at']).execute();
    await db.schema.createIndex('executions_finished').on('executions').columns(['finished_at']).execute();
    await db.schema.createIndex('tasks_state_updated').on('tasks').columns(['state', 'updated_at']).execute();
    await db.schema
      .createIndex('ledger_account_created')
      .on('ledger_entries')
      .columns(['account', 'created_at'])
      .execute();
  },
});

/**
 * Per-job task counts by state, kept as tasks move, so a job's roll-up and the job list read no task rows (a
 * 10,000-task array used to re-read every task on each decision); the index that per-job reads of executions need.
 */
const m004 = (): Migration => ({
  async up(db) {
    for (const state of ['queued', 'running', 'verified', 'failed', 'cancelled']) {
      await db.schema
        .alterTable('jobs')
        .addColumn(`tasks_${state}`, 'integer', (c) => c.notNull().defaultTo(0))
        .execute();
      await sql`UPDATE jobs SET ${sql.ref(`tasks_${state}`)} = (SELECT COUNT(*) FROM tasks WHERE tasks.job_id = jobs.id AND tasks.state = ${state})`.execute(
        db,
      );
    }
    await db.schema.createIndex('executions_job').on('executions').columns(['job_id']).execute();
  },
});

/**
 * Verification against cheating providers: a provider's standing (results confirmed in a row, an operator's vouch,
 * when it was caught lying), the network address prefix an agent registers from, a task's error bound, an
 * execution's deadline (claim + timeout + grace). And one execution per (task, provider) only among replicas: a
 * provider whose execution of a task failed on its side may run it again (the only machine that can), so the unique
 * constraint of 001 becomes a partial unique index. SQLite cannot drop a table constraint: the table is rebuilt from
 * its own CREATE statement without it, and its indexes re-created.
 */
const m005 = (d: Dialect): Migration => ({
  async up(db) {
    await db.schema
      .alterTable('reputation')
      .addColumn('confirmed', 'integer', (c) => c.notNull().defaultTo(0))
      .execute();
    await db.schema
      .alterTable('reputation')
      .addColumn('vouched', 'integer', (c) => c.notNull().defaultTo(0))
      .execute();
    await db.schema.alterTable('reputation').addColumn('caught_at', 'bigint').execute();
    await db.schema
      .alterTable('agents')
      .addColumn('network_prefix', 'text', (c) => c.notNull().defaultTo(''))
      .execute();
    await db.schema.alterTable('tasks').addColumn('max_error', types(d).float).execute();
    await db.schema.alterTable('executions').addColumn('deadline_at', 'bigint').execute();
    if (d === 'postgres') {
      await sql`ALTER TABLE executions DROP CONSTRAINT executions_task_provider`.execute(db);
    } else {
      const table = await sql<{
        sql: string;
      }>`SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'executions'`.execute(db);
      const indexes = await sql<{
        sql: string;
      }>`SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'executions' AND sql IS NOT NULL`.execute(
        db,
      );
      const create = table.rows[0]!.sql.replace(
        /,\s*constraint\s+"?executions_task_provider"?\s+unique\s*\([^)]*\)/i,
        '',
      );
      if (create === table.rows[0]!.sql)
        throw new Error('migration 005: executions_task_provider not found in the executions table');
      await sql.raw(create.replace(/^create table "?executions"?/i, 'CREATE TABLE "executions_005"')).execute(db);
      await sql`INSERT INTO executions_005 SELECT * FROM executions`.execute(db);
      await sql`DROP TABLE executions`.execute(db);
      await sql`ALTER TABLE executions_005 RENAME TO executions`.execute(db);
      for (const i of indexes.rows) await sql.raw(i.sql).execute(db);
    }
    await sql
      .raw(
        `CREATE UNIQUE INDEX executions_task_provider_replica ON executions (task_id, provider_id) WHERE state IN ${REPLICA_STATES}`,
      )
      .execute(db);
  },
});

/**
 * Spot-checks and backtracking: a job's kind (a buyer's, the platform's spot-check, or the platform's re-verification
 * of a task), a task's part in them (a canary its buyer allows to be replayed; the answer a spot-check expects; the
 * task a replay replays; the state of a re-verification; the execution whose result stands in for it), and each job's
 * history of such events, which its buyer reads.
 */
const m006 = (d: Dialect): Migration => ({
  async up(db) {
    await db.schema
      .alterTable('jobs')
      .addColumn('kind', 'text', (c) => c.notNull().defaultTo('buyer'))
      .execute();
    await db.schema
      .alterTable('tasks')
      .addColumn('canary', 'integer', (c) => c.notNull().defaultTo(0))
      .execute();
    await db.schema.alterTable('tasks').addColumn('expected_verdict', 'text').execute();
    await db.schema.alterTable('tasks').addColumn('replay_of', 'text').execute();
    await db.schema.alterTable('tasks').addColumn('audit', 'text').execute();
    await db.schema.alterTable('tasks').addColumn('result_execution_id', 'text').execute();
    await db.schema.createIndex('tasks_canary').on('tasks').columns(['canary', 'updated_at']).execute();
    await db.schema.createIndex('tasks_replay_of').on('tasks').columns(['replay_of']).execute();
    await types(d)
      .serialKey(db, 'job_events')
      .addColumn('job_id', 'text', (c) => c.notNull())
      .addColumn('at', 'bigint', (c) => c.notNull())
      .addColumn('kind', 'text', (c) => c.notNull())
      .addColumn('task_index', 'integer')
      .addColumn('message', 'text', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('job_events_job').on('job_events').columns(['job_id', 'id']).execute();
  },
});

/** All migrations by name for a dialect; Kysely runs them in name order. */
export function migrationProvider(d: Dialect): MigrationProvider {
  return {
    async getMigrations() {
      return {
        '001_initial': m001(d),
        '002_marketplace': m002(d),
        '003_charts': m003(),
        '004_task_counts': m004(),
        '005_standing': m005(d),
        '006_spot_checks': m006(d),
        '007_flat_reads': m007(),
        '008_task_pages': m008(),
        '009_blob_quota': m009(),
        '010_probe': m010(),
        '011_queue': m011(d),
        '012_backtrack_reads': m012(),
      };
    },
  };
}
