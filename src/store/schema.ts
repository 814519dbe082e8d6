/**
 * Table types for Kysely. Times are epoch ms (integers); JSON columns hold text validated on read by the
 * protocol schemas. The same schema serves SQLite and PostgreSQL (column types per dialect: migrations.ts).
 */
import type { Generated } from 'kysely';
import type { ProbeState } from '../core/index.js';
import type { ExecutionState, JobState, TaskState, DesiredState } from '../protocol/index.js';

export interface AccountsTable {
  id: string;
  name: string;
  roles: string;
  created_at: number;
}
export interface ApiKeysTable {
  id: string;
  account_id: string;
  key_hash: string;
  scope: string;
  created_at: number;
  revoked_at: number | null;
  label: string | null;
}
export interface AgentsTable {
  id: string;
  provider_id: string;
  name: string;
  public_key: string;
  capacity: string;
  registered_at: number;
  last_seen_at: number;
  offer: string;
  availability: string;
  /** The network address prefix the agent registers from (IPv4 /24, IPv6 /48), as the coordinator sees it. */
  network_prefix: string;
}
export interface JobsTable {
  id: string;
  buyer_id: string;
  name: string | null;
  spec: string;
  state: JobState;
  cpus: number;
  memory_mb: number;
  network: number;
  task_count: number;
  created_at: number;
  finished_at: number | null;
  revision: number;
  image: string;
  demand: string;
  mode: string;
  execution_max_cost: number;
  queue_timeout_ms: number;
  settled_at: number | null;
  /** How many of the job's tasks are in each state, kept as tasks move (roll-ups and lists read no task). */
  tasks_queued: number;
  tasks_running: number;
  tasks_verified: number;
  tasks_failed: number;
  tasks_cancelled: number;
  /** Whose job: a buyer's, or the platform's spot-check or re-verification (core/spotchecks.ts). */
  kind: JobKind;
  /** The determinism probe's state (core/probe.ts), or null when the job has none. */
  probe: ProbeState | null;
}

/** Whose job: a buyer's, or the platform's spot-check or re-verification (core/spotchecks.ts). */
export type JobKind = 'buyer' | 'spot_check' | 'audit';
export interface TasksTable {
  id: string;
  job_id: string;
  idx: number;
  params: string;
  state: TaskState;
  target: number;
  quorum: number;
  max_executions: number;
  max_errors: number;
  verdict: string | null;
  failure: string | null;
  created_at: number;
  updated_at: number;
  revision: number;
  funded: number;
  alone: number;
  /** The error bound the buyer asked for (verification.maxError), or null for quorum voting alone. */
  max_error: number | null;
  /** 1 when the task may be replayed as a spot-check (core/spotchecks.ts isCanary). */
  canary: number;
  /** A spot-check's known answer (the canary's verdict). */
  expected_verdict: string | null;
  /** The task a spot-check or re-verification replays. */
  replay_of: string | null;
  /** A re-verification of this task: pending, confirmed, changed or inconclusive. */
  audit: string | null;
  /** The execution whose result stands for this task after a re-verification changed it (another job's). */
  result_execution_id: string | null;
  /** Its executions assigned, running or reported; kept by a trigger on executions (migration 011). */
  executions_active: Generated<number>;
  /** Its executions ever placed (trigger, 011). */
  executions_total: Generated<number>;
  /** Its executions lost or failed on the provider side (trigger, 011). */
  executions_failed: Generated<number>;
  /** When the latest of those failures ended, epoch ms (trigger, 011). */
  last_failure_at: Generated<number | null>;
}
export interface ExecutionsTable {
  id: string;
  task_id: string;
  job_id: string;
  agent_id: string;
  provider_id: string;
  state: ExecutionState;
  desired: DesiredState;
  fencing_token: number;
  lease_expires_at: number | null;
  created_at: number;
  started_at: number | null;
  finished_at: number | null;
  exit_code: number | null;
  result_hash: string | null;
  verdict: string | null;
  failure: string | null;
  usage: string | null;
  manifest: string | null;
  stdout_blob: string | null;
  stderr_blob: string | null;
  outputs_blob: string | null;
  revision: number;
  price: string | null;
  paid: number | null;
  settled_at: number | null;
  /** When a running execution's lease stops renewing: claim + job timeout + grace, epoch ms. */
  deadline_at: number | null;
  /** Its determinism probe pair (1, 2, …), or 0 for an ordinary execution (core/probe.ts). */
  probe: number;
}
export interface LedgerEntriesTable {
  id: Generated<number>;
  txn_id: string;
  kind: string;
  account: string;
  amount: number;
  job_id: string | null;
  execution_id: string | null;
  memo: string;
  created_at: number;
}
export interface BalancesTable {
  account: string;
  balance: number;
}
export interface ReputationTable {
  provider_id: string;
  consecutive_valid: number;
  valid: number;
  invalid: number;
  errors: number;
  daily_quota: number;
  turnaround_ms_total: number;
  turnaround_count: number;
  updated_at: number;
  /** Results confirmed in a row (credibility, core/credibility.ts); reset by an invalid result. */
  confirmed: number;
  /** 1 when the operator vouched for the provider. */
  vouched: number;
  /** When the provider was caught lying (blacklisted), epoch ms. */
  caught_at: number | null;
}
export interface ReputationEventsTable {
  id: Generated<number>;
  provider_id: string;
  at: number;
  kind: string;
  cross_checked: number;
  execution_id: string | null;
  job_id: string | null;
  consecutive_valid: number;
  daily_quota: number;
  score: number;
}
export interface BlobAccessTable {
  sha256: string;
  account_id: string;
  /** When this account last uploaded the blob (its quota counts it); null: it may only read it. */
  uploaded_at: number | null;
}
export interface BlobsTable {
  sha256: string;
  size: number;
  created_at: number;
  /** Last upload, or last taken up by a new job; an unreferenced blob's lifetime counts from it. */
  used_at: number | null;
}
/** Which jobs use a blob: as an input, or as an execution's stdout, stderr or outputs. */
export interface BlobRefsTable {
  sha256: string;
  job_id: string;
}

export interface JobEventsTable {
  id: Generated<number>;
  job_id: string;
  at: number;
  kind: string;
  task_index: number | null;
  message: string;
}

export interface Database {
  accounts: AccountsTable;
  api_keys: ApiKeysTable;
  agents: AgentsTable;
  jobs: JobsTable;
  tasks: TasksTable;
  executions: ExecutionsTable;
  blobs: BlobsTable;
  ledger_entries: LedgerEntriesTable;
  balances: BalancesTable;
  reputation: ReputationTable;
  reputation_events: ReputationEventsTable;
  blob_access: BlobAccessTable;
  blob_refs: BlobRefsTable;
  job_events: JobEventsTable;
}
