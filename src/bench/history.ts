/**
 * History benchmark: how the reads the dashboard and the CLI make cost as finished jobs accumulate (issue 12).
 *
 * A `deqo coordinator` process on SQLite runs `seedJobs` trivial 2-of-2 jobs to the end with simulated agents (the
 * real HTTP API, real verification and settlement). The coordinator is stopped and those finished jobs are cloned
 * in the database file (every row that belongs to them: job, tasks, executions, ledger entries, history), each clone
 * with fresh ids and its times shifted further into the past (a history of 10 jobs/s), until the store holds each size of
 * `sizes`; at each size the coordinator is started again and the reads are timed over HTTP: `GET /v1/jobs?limit=50`,
 * `GET /v1/network/stats`, `GET /v1/balance`, `GET /v1/jobs/:id`. Cloning is a benchmark shortcut (a million jobs
 * through the API would take hours here); the rows are the real ones. `DEQO_BENCH_KEEP=1` keeps the data folder.
 */
import Database from 'better-sqlite3';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeqoClient } from '../client/index.js';
import { TERMINAL_JOB_STATES } from '../core/index.js';
import { createBenchAccounts, startCoordinatorProcess, type BenchCoordinator } from './coordinator-process.js';
import { SIM_CAPACITY, TRIVIAL_JOB } from './dispatch.js';
import { SimAgent, simAgents } from './sim-agent.js';
import { distribution, mapPool, round, type Distribution } from './stats.js';

/** Options of the history benchmark. */
export interface HistoryOptions {
  /** Finished-job counts to measure at, ascending (default 0, 10,000, 100,000). */
  sizes: number[];
  /** Jobs run for real before cloning (default 100). */
  seedJobs: number;
  /** Timed requests per read and size (default 30). */
  samples: number;
}

/** One read's latency at one history size, ms. */
export interface ReadTiming {
  read: string;
  ms: Distribution;
}

/** What the history benchmark measured. */
export interface HistoryResult {
  benchmark: 'history';
  database: 'sqlite';
  seedJobs: number;
  curve: Array<{ finishedJobs: number; reads: ReadTiming[] }>;
  /** The issue's target for every dashboard and CLI read at 1,000,000 finished jobs, ms. */
  targetP99Ms: number;
}

/** Target p99 of a read at any history size, ms (issue 12). */
export const HISTORY_TARGET_P99_MS = 50;

/** Tables whose rows belong to one job (cloned with it), and the id prefixes a clone renames. */
const JOB_TABLES = ['jobs', 'tasks', 'executions', 'ledger_entries', 'job_events', 'reputation_events'] as const;
const RENAMED = ['job_', 'task_', 'exec_', 'txn_', 'escrow:job_'];
/** How far each clone's times move into the past per seed job, ms: a history of 10 jobs/s (864,000 a day). */
const CLONE_SHIFT_MS = 100;

/** Runs the history benchmark; see the file comment. */
export async function runHistory(o: HistoryOptions): Promise<HistoryResult> {
  const dir = await mkdtemp(join(tmpdir(), 'deqo-bench-history-'));
  const dataDir = join(dir, 'coordinator');
  const adminKeyFile = join(dir, 'admin.key');
  let coord: BenchCoordinator | null = null;
  const agents: SimAgent[] = [];
  try {
    coord = await startCoordinatorProcess({ dataDir, adminKeyFile, logLevel: 'warn' });
    const accounts = await createBenchAccounts(coord.url, coord.adminKey, 1, 2, 1_000_000);
    agents.push(
      ...(await simAgents({
        dir,
        count: 2,
        providerKeys: accounts.providerKeys,
        urlOf: () => coord!.url,
        capacity: SIM_CAPACITY,
      })),
    );
    for (const a of agents) await a.start();
    const buyer = new DeqoClient(coord.url, accounts.buyerKeys[0]!);
    const spec = { ...TRIVIAL_JOB, verification: { mode: 'replicate' as const, replicas: 2, quorum: 2 } };
    const seeded = await mapPool(
      Array.from({ length: o.seedJobs }, (_, i) => i),
      16,
      async () => (await buyer.submitJob(spec)).jobId,
    );
    await waitFinished(buyer, seeded);
    for (const a of agents) await a.stop();
    await coord.stop();
    coord = null;

    const curve: HistoryResult['curve'] = [];
    let clones = 0;
    for (const size of o.sizes) {
      const want = Math.max(0, Math.ceil((size - o.seedJobs) / Math.max(1, o.seedJobs)));
      if (want > clones) {
        cloneJobs(join(dataDir, 'deqo.db'), seeded, clones + 1, want);
        clones = want;
      }
      coord = await startCoordinatorProcess({ dataDir, adminKeyFile, logLevel: 'warn' });
      const reader = new DeqoClient(coord.url, accounts.buyerKeys[0]!);
      const reads: Array<[string, () => Promise<unknown>]> = [
        ['GET /v1/jobs?limit=50', () => reader.listJobs({ limit: 50 })],
        ['GET /v1/network/stats', () => reader.networkStats()],
        ['GET /v1/balance', () => reader.balance()],
        ['GET /v1/jobs/:id', () => reader.getJob(seeded[seeded.length - 1]!)],
      ];
      const timings: ReadTiming[] = [];
      for (const [read, call] of reads) {
        await call(); // warm
        const ms: number[] = [];
        for (let i = 0; i < o.samples; i++) {
          const t = performance.now();
          await call();
          ms.push(performance.now() - t);
        }
        timings.push({ read, ms: distribution(ms) });
      }
      curve.push({ finishedJobs: o.seedJobs * (clones + 1), reads: timings });
      await coord.stop();
      coord = null;
    }
    return {
      benchmark: 'history',
      database: 'sqlite',
      seedJobs: o.seedJobs,
      curve,
      targetP99Ms: HISTORY_TARGET_P99_MS,
    };
  } finally {
    for (const a of agents) await a.stop().catch(() => undefined);
    await coord?.stop().catch(() => undefined);
    if (process.env.DEQO_BENCH_KEEP) process.stderr.write(`history: kept ${dir}\n`);
    else await rm(dir, { recursive: true, force: true });
  }
}

/** Waits until every job of `ids` ended (polls the job list), at most 5 minutes. */
async function waitFinished(client: DeqoClient, ids: readonly string[]): Promise<void> {
  const deadline = Date.now() + 300_000;
  const want = new Set(ids);
  for (;;) {
    const jobs = await client.listJobs({ limit: 1000 });
    const open = jobs.filter((j) => want.has(j.id) && !TERMINAL_JOB_STATES.includes(j.state));
    if (open.length === 0) return;
    if (Date.now() > deadline) throw new Error(`${open.length} seed jobs did not finish within 5 minutes`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/**
 * Clones the rows of jobs `ids` into copies number `from`…`to` in the SQLite file at `path` (the coordinator must be
 * stopped): ids with a RENAMED prefix get the suffix `_c<k>`, integer keys are assigned anew, and every `*_at` time
 * moves k × CLONE_SHIFT_MS × ids.length into the past. Balances are not touched (the clones' money is not real).
 */
function cloneJobs(path: string, ids: readonly string[], from: number, to: number): void {
  const db = new Database(path);
  try {
    db.pragma('journal_mode = WAL');
    db.exec('CREATE TEMP TABLE seed(id TEXT PRIMARY KEY)');
    const add = db.prepare('INSERT INTO seed(id) VALUES (?)');
    for (const id of ids) add.run(id);
    const statements = JOB_TABLES.map((table) => {
      const cols = db.prepare(`PRAGMA table_info(${table})`).all() as Array<{ name: string; type: string; pk: number }>;
      const expr = cols.map((c) => {
        const q = `"${c.name}"`;
        if (c.pk === 1 && /INT/i.test(c.type)) return 'NULL';
        if (c.name.endsWith('_at'))
          return `CASE WHEN ${q} IS NULL THEN NULL ELSE ${q} - @k * ${CLONE_SHIFT_MS * ids.length} END`;
        if (!/TEXT|^$/i.test(c.type)) return q;
        const like = RENAMED.map((p) => `${q} LIKE '${p}%'`).join(' OR ');
        return `CASE WHEN ${like} THEN ${q} || '_c' || CAST(@k AS INTEGER) ELSE ${q} END`;
      });
      const owner = table === 'jobs' ? 'id' : 'job_id';
      return db.prepare(
        `INSERT INTO ${table} (${cols.map((c) => `"${c.name}"`).join(', ')}) SELECT ${expr.join(', ')} FROM ${table} WHERE ${owner} IN (SELECT id FROM seed)`,
      );
    });
    const cloneOne = db.transaction((k: number) => {
      for (const s of statements) s.run({ k });
    });
    for (let k = from; k <= to; k++) cloneOne(k);
  } finally {
    db.close();
  }
}

/** Rounds a history result's figures for printing. */
export function summarizeHistory(r: HistoryResult): unknown {
  return {
    ...r,
    curve: r.curve.map((c) => ({
      finishedJobs: c.finishedJobs,
      reads: Object.fromEntries(c.reads.map((t) => [t.read, { p50: round(t.ms.p50), p99: round(t.ms.p99) }])),
    })),
  };
}
