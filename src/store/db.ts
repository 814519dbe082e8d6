/** Opening a store: the Kysely instance, migrations, capability flags. */
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { Kysely, Migrator } from 'kysely';
import { migrationProvider } from './migrations.js';
import { FairSqliteDialect } from './sqlite-fair.js';
import { withStatementCache } from './sqlite-statements.js';
import type { Database } from './schema.js';

/** What the underlying database can do, so callers never test the dialect themselves. */
export interface StoreCapabilities { dialect: 'sqlite' | 'postgres'; skipLocked: boolean; listenNotify: boolean }

/** A new random id with a readable prefix, e.g. `job_5f2c...` (80 random bits). */
export function newId(prefix: string): string {
  return `${prefix}_${randomBytes(10).toString('hex')}`;
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
  const db = new Kysely<Database>({ dialect: new FairSqliteDialect({ database: withStatementCache(sqlite) }) });
  await migrate(db);
  return { db, capabilities: { dialect: 'sqlite', skipLocked: false, listenNotify: false } };
}

/** Runs pending migrations; throws with the failing migration's error. */
export async function migrate(db: Kysely<Database>): Promise<void> {
  const { error, results } = await new Migrator({ db, provider: migrationProvider }).migrateToLatest();
  if (error) {
    const failed = results?.find((r) => r.status === 'Error')?.migrationName ?? '?';
    throw new Error(`migration ${failed} failed: ${String(error)}`);
  }
}
