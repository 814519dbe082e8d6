/**
 * store: persistence behind ports in domain words. Kysely over SQLite (better-sqlite3, WAL) today;
 * the queries are dialect-neutral so PostgreSQL can be added behind the same classes.
 */
import type { Kysely } from 'kysely';
import { AccountStore } from './accounts.js';
import { openSqlite, type StoreCapabilities } from './db.js';
import { ExecutionStore } from './executions.js';
import { JobStore } from './jobs.js';
import type { Database } from './schema.js';

export { AccountStore, type Principal, type Role, type AgentRecord } from './accounts.js';
export { JobStore, type NewJob } from './jobs.js';
export { ExecutionStore, type ClaimedExecution, type ExecutionEnd, type TaskForVerification } from './executions.js';
export { newId, type StoreCapabilities } from './db.js';

/** The whole store: one object per aggregate, sharing one database. */
export interface Store {
  accounts: AccountStore;
  jobs: JobStore;
  executions: ExecutionStore;
  capabilities: StoreCapabilities;
  close(): Promise<void>;
}

function wrap(db: Kysely<Database>, capabilities: StoreCapabilities): Store {
  return { accounts: new AccountStore(db), jobs: new JobStore(db), executions: new ExecutionStore(db), capabilities,
    close: () => db.destroy() };
}

/** Opens the SQLite store at `path` (':memory:' for tests), migrating it. */
export async function openSqliteStore(path: string): Promise<Store> {
  const { db, capabilities } = await openSqlite(path);
  return wrap(db, capabilities);
}
