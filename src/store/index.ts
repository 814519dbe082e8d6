/**
 * store: persistence behind ports in domain words. Kysely over SQLite (better-sqlite3, WAL; the default) or
 * PostgreSQL (pg; several coordinators may share it). The same classes serve both; where the databases
 * differ, capability flags decide (see README.md for the invariants and how each holds on both).
 */
import type { Kysely } from 'kysely';
import { AccountStore } from './accounts.js';
import { SINGLE_COORDINATOR, type Coordination, type ExclusiveStep, type Notifier } from './coordination.js';
import { openSqlite, type StoreCapabilities } from './db.js';
import { ExecutionStore } from './executions.js';
import { JobStore } from './jobs.js';
import { LiveStore } from './live.js';
import { LedgerStore } from './ledger.js';
import { openPostgres, redactUrl } from './postgres.js';
import { ReputationStore } from './reputation.js';
import type { Database } from './schema.js';
import { SettlementStore, type SettlementConfig } from './settlement.js';
import { SnapshotStore } from './snapshot.js';
import { StatsStore } from './stats.js';
import { DEFAULT_QUOTA } from '../core/index.js';

export { AccountStore, type Principal, type Role, type AgentRecord } from './accounts.js';
export { JobStore, type NewJob } from './jobs.js';
export {
  ExecutionStore,
  topUpCost,
  type ClaimedExecution,
  type ExecutionEnd,
  type LostExecution,
  type TaskForVerification,
} from './executions.js';
export { newId, type StoreCapabilities } from './db.js';
export type { Coordination, ExclusiveStep, Notifier } from './coordination.js';
export { LedgerStore, insufficientFunds } from './ledger.js';
export { ReputationStore, reputationView } from './reputation.js';
export { SettlementStore, type SettledExecution, type SettledJob, type SettlementConfig } from './settlement.js';
export { SnapshotStore, type SchedulingSnapshot } from './snapshot.js';
export { StatsStore, type AgentCounts, type StoreCounts } from './stats.js';
export { LiveStore, type LiveJob, type LiveNetwork } from './live.js';

/** Store settings: the platform fee (basis points, default 0) and the reputation quota rules. */
export const DEFAULT_STORE_CONFIG: Readonly<SettlementConfig> = Object.freeze({ feeBps: 0, quota: DEFAULT_QUOTA });

/** The whole store: one object per aggregate, sharing one database. */
export interface Store {
  accounts: AccountStore;
  jobs: JobStore;
  executions: ExecutionStore;
  ledger: LedgerStore;
  reputation: ReputationStore;
  settlement: SettlementStore;
  snapshot: SnapshotStore;
  stats: StatsStore;
  /** Reads for live views (event stream, charts). */
  live: LiveStore;
  config: Readonly<SettlementConfig>;
  capabilities: StoreCapabilities;
  /** Tells the other coordinators on this database which agents got work (no-op on SQLite). */
  notifier: Notifier;
  /** Runs `fn` while no other coordinator on this database runs `step` (waits its turn); SQLite runs it at once. */
  exclusive<T>(step: ExclusiveStep, fn: () => Promise<T>): Promise<T>;
  /** Stops listening and closes the database connections. */
  close(): Promise<void>;
}

function wrap(
  db: Kysely<Database>,
  capabilities: StoreCapabilities,
  coordination: Coordination,
  config: SettlementConfig,
): Store {
  const reputation = new ReputationStore(db, config.quota);
  const snapshot = new SnapshotStore(db, reputation);
  return {
    accounts: new AccountStore(db),
    jobs: new JobStore(db),
    executions: new ExecutionStore(db, capabilities),
    ledger: new LedgerStore(db),
    reputation,
    settlement: new SettlementStore(db, config, capabilities),
    snapshot,
    stats: new StatsStore(db, snapshot),
    live: new LiveStore(db, snapshot),
    config: Object.freeze({ ...config }),
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
export async function openSqliteStore(path: string, config: SettlementConfig = DEFAULT_STORE_CONFIG): Promise<Store> {
  const { db, capabilities } = await openSqlite(path);
  return wrap(db, capabilities, SINGLE_COORDINATOR, config);
}

/**
 * Opens the PostgreSQL store at `url` (`postgres://user:pass@host:port/db`), migrating it (serialized with
 * other coordinators starting at once). Throws Error naming the redacted URL when it cannot connect.
 */
export async function openPostgresStore(url: string, config: SettlementConfig = DEFAULT_STORE_CONFIG): Promise<Store> {
  const { db, capabilities, coordination } = await openPostgres(url);
  return wrap(db, capabilities, coordination, config);
}

/**
 * Opens the store a URL names: `postgres://…` / `postgresql://…` (PostgreSQL), `sqlite:<path>` or a plain path
 * (SQLite). Throws for an unknown scheme.
 */
export async function openStore(url: string, config: SettlementConfig = DEFAULT_STORE_CONFIG): Promise<Store> {
  if (/^postgres(ql)?:\/\//.test(url)) return openPostgresStore(url, config);
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url))
    throw new Error(`unsupported database URL ${redactUrl(url)}: expected postgres://… or a SQLite path`);
  return openSqliteStore(url.replace(/^sqlite:/, ''), config);
}
