/**
 * The end-of-run checks every fault test makes, read straight from the coordinator's database after it stopped:
 * jobs and executions by state, and the money rules (audit clean, each execution paid at most once and only
 * when valid, every ended job settled with its escrow at zero, all balances summing to zero).
 */
import Database from 'better-sqlite3';
import pg from 'pg';
import { openPostgresStore, openSqliteStore } from '../../src/store/index.js';

/** What a run ended with, for assertions and for printing. */
export interface RunCounts {
  jobs: Record<string, number>;
  taskFailures: Record<string, number>;
  executions: Record<string, number>;
  lostReasons: Record<string, number>;
  paidExecutions: number;
  /** Problems found; empty when every invariant holds. */
  problems: string[];
}

/** A paid execution as the payment check reads it. */
interface PaidExecution {
  id: string;
  state: string;
  /** Its failure reason, if any. */
  reason: string | null;
  /** Its task's re-verification: `changed` when one overturned the task's result. */
  audit: string | null;
  payments: number;
}

/**
 * Each execution paid at most once, and only for its work: a valid result, one stopped before a verdict
 * (core/failures.ts: `cancelled` is charged), a determinism probe execution (`probe`, charged), or one valid when paid that a re-verification later overturned (its
 * pay taken back as far as the provider's balance allowed).
 */
function paymentProblems(paid: readonly PaidExecution[]): string[] {
  const problems: string[] = [];
  for (const p of paid) {
    if (p.payments > 1) problems.push(`execution ${p.id} was paid ${p.payments} times`);
    const payable =
      p.state === 'valid' ||
      (p.state === 'cancelled' && (p.reason === 'cancelled' || p.reason === 'probe')) ||
      (p.state === 'invalid' && p.audit === 'changed');
    if (!payable) problems.push(`execution ${p.id} was paid but is ${p.state}${p.reason ? ` (${p.reason})` : ''}`);
  }
  return problems;
}

/** Reads the SQLite database at `dbPath` (the coordinator must be stopped) and checks the invariants. */
export async function checkRun(dbPath: string): Promise<RunCounts> {
  const store = await openSqliteStore(dbPath);
  const problems = (await store.ledger.audit()).map((p) => `audit: ${p}`);
  await store.close();
  const db = new Database(dbPath, { readonly: true });
  try {
    const countBy = (sql: string) =>
      Object.fromEntries((db.prepare(sql).all() as Array<{ k: string; n: number }>).map((r) => [r.k ?? 'null', r.n]));
    const jobs = countBy('SELECT state AS k, count(*) AS n FROM jobs GROUP BY state');
    const executions = countBy('SELECT state AS k, count(*) AS n FROM executions GROUP BY state');
    const taskFailures = countBy(
      `SELECT json_extract(failure, '$.reason') AS k, count(*) AS n FROM tasks WHERE state = 'failed' GROUP BY k`,
    );
    const lostReasons = countBy(
      `SELECT json_extract(failure, '$.reason') AS k, count(*) AS n FROM executions WHERE state IN ('lost', 'failed') GROUP BY k`,
    );
    const paid = db
      .prepare(
        `SELECT e.id, e.state, json_extract(e.failure, '$.reason') AS reason, t.audit, count(DISTINCT l.txn_id) AS payments
      FROM ledger_entries l JOIN executions e ON e.id = l.execution_id JOIN tasks t ON t.id = e.task_id
      WHERE l.kind = 'payment' GROUP BY e.id`,
      )
      .all() as PaidExecution[];
    problems.push(...paymentProblems(paid));
    const unsettled = db
      .prepare(`SELECT id, state FROM jobs WHERE state IN ('succeeded', 'failed', 'cancelled') AND settled_at IS NULL`)
      .all() as Array<{ id: string }>;
    for (const j of unsettled) problems.push(`job ${j.id} ended but is not settled`);
    const escrow = db
      .prepare(`SELECT account, balance FROM balances WHERE account LIKE 'escrow:%' AND balance != 0`)
      .all() as Array<{ account: string; balance: number }>;
    for (const j of db.prepare(`SELECT id FROM jobs WHERE settled_at IS NOT NULL`).all() as Array<{ id: string }>) {
      const left = escrow.find((e) => e.account === `escrow:${j.id}`);
      if (left) problems.push(`settled job ${j.id} still holds ${left.balance} µcr in escrow`);
    }
    const total = (db.prepare('SELECT coalesce(sum(balance), 0) AS s FROM balances').get() as { s: number }).s;
    if (total !== 0) problems.push(`balances sum to ${total}, not 0`);
    return { jobs, taskFailures, executions, lostReasons, paidExecutions: paid.length, problems };
  } finally {
    db.close();
  }
}

/**
 * The same checks as checkRun over a PostgreSQL database at `url` (the coordinators on it must be stopped): the
 * ledger audit, payments (at most once, only valid executions), ended jobs settled with escrow zero, balances
 * summing to zero.
 */
export async function checkPgRun(url: string): Promise<RunCounts> {
  const store = await openPostgresStore(url);
  const problems = (await store.ledger.audit()).map((p) => `audit: ${p}`);
  await store.close();
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const rows = async <R extends pg.QueryResultRow>(sql: string) => (await c.query<R>(sql)).rows;
    const countBy = async (sql: string) =>
      Object.fromEntries((await rows<{ k: string | null; n: string }>(sql)).map((r) => [r.k ?? 'null', Number(r.n)]));
    const jobs = await countBy('SELECT state AS k, count(*) AS n FROM jobs GROUP BY state');
    const executions = await countBy('SELECT state AS k, count(*) AS n FROM executions GROUP BY state');
    const taskFailures = await countBy(
      `SELECT failure::json->>'reason' AS k, count(*) AS n FROM tasks WHERE state = 'failed' GROUP BY k`,
    );
    const lostReasons = await countBy(
      `SELECT failure::json->>'reason' AS k, count(*) AS n FROM executions WHERE state IN ('lost', 'failed') GROUP BY k`,
    );
    const paid = await rows<PaidExecution>(
      `SELECT e.id, e.state, e.failure::json->>'reason' AS reason, t.audit, count(DISTINCT l.txn_id)::int AS payments
      FROM ledger_entries l JOIN executions e ON e.id = l.execution_id JOIN tasks t ON t.id = e.task_id
      WHERE l.kind = 'payment' GROUP BY e.id, e.state, e.failure, t.audit`,
    );
    problems.push(...paymentProblems(paid));
    for (const j of await rows<{ id: string }>(
      `SELECT id FROM jobs WHERE state IN ('succeeded', 'failed', 'cancelled') AND settled_at IS NULL`,
    ))
      problems.push(`job ${j.id} ended but is not settled`);
    for (const j of await rows<{ id: string; balance: string }>(
      `SELECT j.id, b.balance FROM jobs j JOIN balances b ON b.account = 'escrow:' || j.id
      WHERE j.settled_at IS NOT NULL AND b.balance <> 0`,
    ))
      problems.push(`settled job ${j.id} still holds ${j.balance} µcr in escrow`);
    const total = Number((await rows<{ s: string }>('SELECT coalesce(sum(balance), 0) AS s FROM balances'))[0]!.s);
    if (total !== 0) problems.push(`balances sum to ${total}, not 0`);
    return { jobs, taskFailures, executions, lostReasons, paidExecutions: paid.length, problems };
  } finally {
    await c.end();
  }
}
