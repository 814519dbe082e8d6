/** Opening a store: the Kysely instance, migrations, capability flags, and transactions that retry. */
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { Kysely, Migrator, type Transaction } from 'kysely';
import { migrationProvider, type Dialect } from './migrations.js';
import { FairSqliteDialect } from './sqlite-fair.js';
import { withStatementCache } from './sqlite-statements.js';
import type { Database } from './schema.js';

/**
 * What the underlying database can do, so callers never test the dialect themselves.
 * `skipLocked`: row locks (`SELECT … FOR UPDATE [SKIP LOCKED]`) exist, and are needed because several
 * coordinators write at once (PostgreSQL). SQLite has neither the syntax nor the need: one coordinator per
 * database, and Kysely's SQLite driver runs one transaction at a time over its single connection.
 * `listenNotify`: other coordinators can be told of new work (PostgreSQL LISTEN/NOTIFY).
 */
export interface StoreCapabilities {
  dialect: Dialect;
  skipLocked: boolean;
  listenNotify: boolean;
}

/** Random bytes drawn 4 KiB at a time: one call per 409 ids (a 10,000-task array inserts 10,000). */
const ID_POOL_BYTES = 4096;
let idPool = Buffer.alloc(0);
let idAt = 0;

/** A new random id with a readable prefix, e.g. `job_5f2c...` (80 random bits from node:crypto). */
export function newId(prefix: string): string {
  if (idAt + 10 > idPool.length) {
    idPool = randomBytes(ID_POOL_BYTES);
    idAt = 0;
  }
  const id = idPool.toString('hex', idAt, idAt + 10);
  idAt += 10;
  return `${prefix}_${id}`;
}

/**
 * Opens (creating if needed) a SQLite database in WAL mode and runs migrations.
 * `path` ':memory:' gives a private in-memory database (tests).
 */
export async function openSqlite(path: string): Promise<{ db: Kysely<Database>; capabilities: StoreCapabilities }> {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
  const sqlite = new SqliteDatabase(path);
  sqlite.pragma('journal_mode = WAL');
  sqlite.pragma('synchronous = NORMAL');
  sqlite.pragma('busy_timeout = 5000');
  sqlite.pragma('foreign_keys = ON');
  // A 64 MiB page cache (the default is 2 MB): a coordinator's hot indexes stay in memory as history grows.
  sqlite.pragma('cache_size = -65536');
  const db = new Kysely<Database>({ dialect: new FairSqliteDialect({ database: withStatementCache(sqlite) }) });
  await migrate(db, 'sqlite');
  optimizeSqlite(sqlite);
  return { db, capabilities: { dialect: 'sqlite', skipLocked: false, listenNotify: false } };
}

/**
 * Keeps SQLite's query planner statistics current (sqlite.org/lang_analyze.html, "recommended usage"): without them it
 * picks the `state` indexes for per-task and per-job reads and a dashboard read scans the whole history (seconds at
 * 10,000 finished jobs). At open, `PRAGMA optimize=0x10002` analyses every table that needs it; then
 * `PRAGMA optimize` hourly, so statistics follow a table that grew. `analysis_limit` bounds each ANALYZE to a sample
 * (a few ms on a large table).
 */
function optimizeSqlite(sqlite: SqliteDatabase.Database): void {
  sqlite.pragma('analysis_limit = 1000');
  sqlite.pragma('optimize = 0x10002');
  setInterval(() => {
    if (sqlite.open) sqlite.pragma('optimize');
  }, OPTIMIZE_EVERY_MS).unref();
}

/** How often a long-running coordinator refreshes SQLite's planner statistics, ms. */
const OPTIMIZE_EVERY_MS = 3_600_000;

/** Runs pending migrations for `dialect`; throws with the failing migration's error. */
export async function migrate(db: Kysely<Database>, dialect: Dialect): Promise<void> {
  const { error, results } = await new Migrator({ db, provider: migrationProvider(dialect) }).migrateToLatest();
  if (error) {
    const failed = results?.find((r) => r.status === 'Error')?.migrationName ?? '?';
    throw new Error(`migration ${failed} failed: ${String(error)}`);
  }
}

/**
 * Throws unless `db` is a transaction. Store writes run only inside `store.transaction(tx => ...)`, so what one
 * engine step writes commits together or not at all; a write reached outside one is a bug, caught here.
 */
export function requireTransaction(db: Kysely<Database>): void {
  if (!db.isTransaction) throw new Error('store writes run inside store.transaction(tx => ...)');
}

/** PostgreSQL errors after which the whole transaction may simply run again: deadlock_detected, serialization_failure. */
const RETRYABLE = new Set(['40P01', '40001']);

/** True for an error that rolled back a transaction only because of a concurrent one (see RETRYABLE). */
export function isRetryable(err: unknown): boolean {
  return typeof err === 'object' && err !== null && RETRYABLE.has(String((err as { code?: unknown }).code));
}

/**
 * Runs `fn` in a transaction, running it again (up to 5 times in all, after 5–50 ms) when PostgreSQL aborted
 * it for a deadlock or a serialization failure with a concurrent transaction of another coordinator. `fn`
 * must therefore keep its effects inside the transaction (build results afresh on each call). Other errors,
 * and the last retryable one, are thrown. SQLite never raises a retryable error (writers wait: busy_timeout).
 */
export async function transact<T>(db: Kysely<Database>, fn: (tx: Transaction<Database>) => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await db.transaction().execute(fn);
    } catch (err) {
      if (attempt >= 5 || !isRetryable(err)) throw err;
      await new Promise((r) => setTimeout(r, 5 + Math.floor(Math.random() * 10 * attempt)));
    }
  }
}
