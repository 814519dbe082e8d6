/**
 * store: persistence behind ports in domain words. Kysely over SQLite (better-sqlite3, WAL) today;
 * the queries are dialect-neutral so PostgreSQL can be added behind the same classes.
 */
import type { Kysely } from 'kysely';
import { AccountStore } from './accounts.js';
import { openSqlite, type StoreCapabilities } from './db.js';
import { ExecutionStore } from './executions.js';
import { JobStore } from './jobs.js';
import { LedgerStore } from './ledger.js';
import { ReputationStore } from './reputation.js';
import type { Database } from './schema.js';
import { SettlementStore, type SettlementConfig } from './settlement.js';
import { SnapshotStore } from './snapshot.js';
import { StatsStore } from './stats.js';
import { DEFAULT_QUOTA } from '../core/index.js';

export { AccountStore, type Principal, type Role, type AgentRecord } from './accounts.js';
export { JobStore, type NewJob } from './jobs.js';
export { ExecutionStore, topUpCost, type ClaimedExecution, type ExecutionEnd, type LostExecution, type TaskForVerification } from './executions.js';
export { newId, type StoreCapabilities } from './db.js';
export { LedgerStore, insufficientFunds } from './ledger.js';
export { ReputationStore, reputationView } from './reputation.js';
export { SettlementStore, type SettledExecution, type SettledJob, type SettlementConfig } from './settlement.js';
export { SnapshotStore, type SchedulingSnapshot } from './snapshot.js';
export { StatsStore, type AgentCounts, type StoreCounts } from './stats.js';

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
  config: Readonly<SettlementConfig>;
  capabilities: StoreCapabilities;
  close(): Promise<void>;
}

function wrap(db: Kysely<Database>, capabilities: StoreCapabilities, config: SettlementConfig): Store {
  const reputation = new ReputationStore(db, config.quota);
  const snapshot = new SnapshotStore(db, reputation);
  return { accounts: new AccountStore(db), jobs: new JobStore(db), executions: new ExecutionStore(db), ledger: new LedgerStore(db),
    reputation, settlement: new SettlementStore(db, config), snapshot, stats: new StatsStore(db, snapshot), config: Object.freeze({ ...config }),
    capabilities, close: () => db.destroy() };
}

/** Opens the SQLite store at `path` (':memory:' for tests), migrating it. */
export async function openSqliteStore(path: string, config: SettlementConfig = DEFAULT_STORE_CONFIG): Promise<Store> {
  const { db, capabilities } = await openSqlite(path);
  return wrap(db, capabilities, config);
}

/**
 * Opens the store a URL names: `postgres://…` / `postgresql://…` (PostgreSQL), `sqlite:<path>` or a plain path
 * (SQLite). Throws for an unknown scheme.
 */
export async function openStore(url: string, config: SettlementConfig = DEFAULT_STORE_CONFIG): Promise<Store> {
  if (/^postgres(ql)?:\/\//.test(url)) throw new Error('PostgreSQL support is not built yet');
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) throw new Error(`unsupported database URL ${url.replace(/\/\/[^@]*@/, '//…@')}: expected postgres://… or a SQLite path`);
  return openSqliteStore(url.replace(/^sqlite:/, ''), config);
}
