/**
 * store: persistence behind ports in domain words. Kysely over SQLite (better-sqlite3, WAL; the default) or
 * PostgreSQL (pg; several coordinators may share it). The same classes serve both; where the databases
 * differ, capability flags decide (see README.md for the invariants and how each holds on both).
 *
 * The store decides nothing: the engine decides (with core's rules) and the store applies conditional writes,
 * all inside one unit, `store.transaction(tx => ...)`, whose repositories are bound to that transaction. A write
 * reached outside a transaction throws. Reads may use `store.<repository>` directly.
 */
import type { Kysely } from 'kysely';
import { AccountStore } from './accounts.js';
import { BlobRecordStore } from './blobs.js';
import { SINGLE_COORDINATOR, type Coordination, type ExclusiveStep, type Notifier } from './coordination.js';
import { openSqlite, transact, type StoreCapabilities } from './db.js';
import { ExecutionStore } from './executions.js';
import { JobStore } from './jobs.js';
import { LeaseStore } from './leases.js';
import { LedgerStore } from './ledger.js';
import { LiveStore } from './live.js';
import { openPostgres, redactUrl } from './postgres.js';
import { ReputationStore } from './reputation.js';
import type { Database } from './schema.js';
import { SettlementStore } from './settlement.js';
import { SnapshotStore } from './snapshot.js';
import { StatsStore } from './stats.js';
import { TaskStore } from './tasks.js';
import { ViewStore } from './views.js';

export { AccountStore, type Principal, type Role, type AgentRecord } from './accounts.js';
export { JobStore, type NewJob, type JobHeader } from './jobs.js';
export { BlobRecordStore, type BlobExpiry } from './blobs.js';
export {
  TaskStore,
  type TaskForVerification,
  type TaskChanges,
  type Canary,
  type BacktrackCandidate,
} from './tasks.js';
export {
  ExecutionStore,
  type ExecutionEnd,
  type NewExecution,
  type LeaseInfo,
  type ValidExecution,
  type ComparableResult,
  type ProbeResult,
} from './executions.js';
export { LeaseStore, type ClaimedExecution, type ExpiredLease } from './leases.js';
export { newId, type StoreCapabilities } from './db.js';
export type { Coordination, ExclusiveStep, Notifier } from './coordination.js';
export { LedgerStore, insufficientFunds } from './ledger.js';
export { ReputationStore, type ReputationChange } from './reputation.js';
export { SettlementStore, ENDED_EXECUTION_STATES, type ClaimedJob } from './settlement.js';
export { SnapshotStore } from './snapshot.js';
export { StatsStore, type AgentCounts, type StoreCounts } from './stats.js';
export { LiveStore, type LiveJob, type LiveNetwork } from './live.js';
export { ViewStore } from './views.js';

/** The repositories over one database handle: the root (reads, autocommit) or a transaction. */
export interface Repositories {
  accounts: AccountStore;
  /** Blob uploads, uses and expiry (quotas, the sweep). */
  blobs: BlobRecordStore;
  jobs: JobStore;
  tasks: TaskStore;
  executions: ExecutionStore;
  leases: LeaseStore;
  ledger: LedgerStore;
  reputation: ReputationStore;
  settlement: SettlementStore;
  snapshot: SnapshotStore;
  stats: StatsStore;
  /** Read models for buyers (job view, job list, billing). */
  views: ViewStore;
  /** Reads for live views (event stream, charts). */
  live: LiveStore;
}

/** The whole store: its repositories for reads, and the transaction unit every write runs in. */
export interface Store extends Repositories {
  /**
   * Runs `fn` in one database transaction with repositories bound to it: everything it writes commits together,
   * or nothing does when it throws. On PostgreSQL a deadlock or serialization failure runs `fn` again (up to 5
   * times), so `fn` must keep its effects inside the transaction. Inside `fn` use only `tx`, never the store's
   * own repositories (on SQLite they wait for this very transaction).
   */
  transaction<T>(fn: (tx: Repositories) => Promise<T>): Promise<T>;
  capabilities: StoreCapabilities;
  /** Tells the other coordinators on this database which agents got work (no-op on SQLite). */
  notifier: Notifier;
  /** Runs `fn` while no other coordinator on this database runs `step` (waits its turn); SQLite runs it at once. */
  exclusive<T>(step: ExclusiveStep, fn: () => Promise<T>): Promise<T>;
  /** Stops listening and closes the database connections. */
  close(): Promise<void>;
}

function repositories(db: Kysely<Database>, caps: StoreCapabilities): Repositories {
  const reputation = new ReputationStore(db, caps);
  const snapshot = new SnapshotStore(db, reputation);
  return {
    accounts: new AccountStore(db),
    blobs: new BlobRecordStore(db),
    jobs: new JobStore(db, caps),
    tasks: new TaskStore(db),
    executions: new ExecutionStore(db),
    leases: new LeaseStore(db, caps),
    ledger: new LedgerStore(db),
    reputation,
    settlement: new SettlementStore(db, caps),
    snapshot,
    stats: new StatsStore(db, snapshot),
    views: new ViewStore(db),
    live: new LiveStore(db, snapshot),
  };
}

function wrap(db: Kysely<Database>, capabilities: StoreCapabilities, coordination: Coordination): Store {
  return {
    ...repositories(db, capabilities),
    transaction: (fn) => transact(db, (tx) => fn(repositories(tx, capabilities))),
    capabilities,
    notifier: coordination.notifier,
    exclusive: coordination.exclusive,
    async close() {
      await coordination.notifier.close();
      await db.destroy();
    },
  };
}

/** Opens the SQLite store at `path` (':memory:' for tests), migrating it. */
export async function openSqliteStore(path: string): Promise<Store> {
  const { db, capabilities } = await openSqlite(path);
  return wrap(db, capabilities, SINGLE_COORDINATOR);
}

/**
 * Opens the PostgreSQL store at `url` (`postgres://user:pass@host:port/db`), migrating it (serialized with
 * other coordinators starting at once). Throws Error naming the redacted URL when it cannot connect.
 */
export async function openPostgresStore(url: string): Promise<Store> {
  const { db, capabilities, coordination } = await openPostgres(url);
  return wrap(db, capabilities, coordination);
}

/**
 * Opens the store a URL names: `postgres://…` / `postgresql://…` (PostgreSQL), `sqlite:<path>` or a plain path
 * (SQLite). Throws for an unknown scheme.
 */
export async function openStore(url: string): Promise<Store> {
  if (/^postgres(ql)?:\/\//.test(url)) return openPostgresStore(url);
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url))
    throw new Error(`unsupported database URL ${redactUrl(url)}: expected postgres://… or a SQLite path`);
  return openSqliteStore(url.replace(/^sqlite:/, ''));
}
