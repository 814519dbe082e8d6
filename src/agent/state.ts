/**
 * The agent's local record of the executions it holds: `<dataDir>/state.db` (SQLite via better-sqlite3, WAL,
 * synchronous FULL so a committed step survives a crash of the agent or of the machine). One row per
 * execution, written before each step it protects:
 *
 *   record(assignment)          phase preparing  — before inputs are fetched
 *   containerCreated(id)        phase running    — after the container exists, before it starts
 *   finished(outcome)           phase finished   — the executor's outcome, before outputs are packaged
 *   reportReady(report)         phase finished   — the report body (blobs uploaded), before it is sent
 *   remove()                    row gone         — the coordinator acknowledged or refused the report, or the
 *                                                  execution was abandoned (coordinator said stop, grace ran out)
 *
 * After a restart the agent reads every row back (recovery.ts decides what to do with each).
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { z } from 'zod';
import {
  AssignmentSchema,
  ReportRequestSchema,
  UsageSchema,
  type Assignment,
  type ReportRequest,
} from '../protocol/index.js';
import type { ExecutionOutcome, ExecutorFailureReason } from './executor.js';
import { isFailureReason } from '../core/index.js';

/** Where an execution is: fetching inputs, its container exists, or it ended (report pending). */
export type Phase = 'preparing' | 'running' | 'finished';

/** One execution the agent holds, as recorded. Times are epoch ms. */
export interface HeldRecord {
  executionId: string;
  fencingToken: number;
  assignment: Assignment;
  /** Docker container id, once created. */
  containerId: string | null;
  phase: Phase;
  /** How the execution ended (phase finished). */
  outcome: ExecutionOutcome | null;
  /** The report to send, once packaged (blobs uploaded). */
  report: ReportRequest | null;
  createdAt: number;
  updatedAt: number;
}

const OutcomeSchema: z.ZodType<ExecutionOutcome> = z.discriminatedUnion('kind', [
  z.object({
    kind: z.literal('exited'),
    exitCode: z.number().int(),
    usage: UsageSchema,
    stdoutTruncated: z.boolean(),
    stderrTruncated: z.boolean(),
  }),
  z.object({
    kind: z.literal('failed'),
    // Written by this agent from an ExecutorFailureReason; read back as any reason the catalogue knows.
    reason: z.custom<ExecutorFailureReason>((v) => typeof v === 'string' && isFailureReason(v)),
    message: z.string(),
    usage: UsageSchema,
    stdoutTruncated: z.boolean(),
    stderrTruncated: z.boolean(),
  }),
]);

const RowSchema = z.object({
  execution_id: z.string(),
  fencing_token: z.number().int(),
  assignment: z.string(),
  container_id: z.string().nullable(),
  phase: z.enum(['preparing', 'running', 'finished']),
  outcome: z.string().nullable(),
  report: z.string().nullable(),
  created_at: z.number(),
  updated_at: z.number(),
});

/** A row that cannot be read back (corrupted, or written by an incompatible version): its id and why. */
export interface UnreadableRecord {
  executionId: string;
  problem: string;
}

const SCHEMA_VERSION = 1;

/** The agent's state database. Methods are synchronous (better-sqlite3) and throw on database errors. */
export class AgentState {
  private constructor(private readonly db: SqliteDatabase.Database) {}

  /** Opens (creating if needed) `<dataDir>/state.db`. Throws when the file is not a database or has a newer schema. */
  static open(dataDir: string): AgentState {
    mkdirSync(dataDir, { recursive: true });
    const db = new SqliteDatabase(join(dataDir, 'state.db'));
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.pragma('busy_timeout = 5000');
    const version = db.pragma('user_version', { simple: true }) as number;
    if (version > SCHEMA_VERSION) {
      db.close();
      throw new Error(`${join(dataDir, 'state.db')} was written by a newer agent (schema ${version}); upgrade deqo`);
    }
    db.exec(`CREATE TABLE IF NOT EXISTS executions (
      execution_id TEXT PRIMARY KEY,
      fencing_token INTEGER NOT NULL,
      assignment TEXT NOT NULL,
      container_id TEXT,
      phase TEXT NOT NULL CHECK (phase IN ('preparing', 'running', 'finished')),
      outcome TEXT,
      report TEXT,
      created_at INTEGER NOT NULL,
      updated_at INTEGER NOT NULL
    )`);
    db.pragma(`user_version = ${SCHEMA_VERSION}`);
    return new AgentState(db);
  }

  /** Records a newly claimed execution (phase preparing); replaces an older row of the same id. */
  record(a: Assignment, now: number): void {
    this.db
      .prepare(
        `INSERT OR REPLACE INTO executions (execution_id, fencing_token, assignment, container_id, phase, outcome, report, created_at, updated_at)
      VALUES (?, ?, ?, NULL, 'preparing', NULL, NULL, ?, ?)`,
      )
      .run(a.executionId, a.fencingToken, JSON.stringify(a), now, now);
  }

  /** The execution's container exists (phase running). */
  containerCreated(executionId: string, containerId: string, now: number): void {
    this.update(executionId, `container_id = ?, phase = 'running'`, [containerId], now);
  }

  /** The execution ended with `outcome` (phase finished); its report is still to be built. */
  finished(executionId: string, outcome: ExecutionOutcome, now: number): void {
    this.update(executionId, `phase = 'finished', outcome = ?`, [JSON.stringify(outcome)], now);
  }

  /** The report is built (its blobs uploaded) and only has to be sent (phase finished). */
  reportReady(executionId: string, report: ReportRequest, now: number): void {
    this.update(executionId, `phase = 'finished', report = ?`, [JSON.stringify(report)], now);
  }

  /** Forgets an execution; nothing when it is not recorded. */
  remove(executionId: string): void {
    this.db.prepare('DELETE FROM executions WHERE execution_id = ?').run(executionId);
  }

  /** Every recorded execution, oldest first, and the rows that could not be read back (left in place). */
  list(): { records: HeldRecord[]; unreadable: UnreadableRecord[] } {
    const records: HeldRecord[] = [];
    const unreadable: UnreadableRecord[] = [];
    for (const raw of this.db.prepare('SELECT * FROM executions ORDER BY created_at, execution_id').all()) {
      const id = String((raw as { execution_id?: unknown }).execution_id);
      try {
        const r = RowSchema.parse(raw);
        records.push({
          executionId: r.execution_id,
          fencingToken: r.fencing_token,
          assignment: AssignmentSchema.parse(JSON.parse(r.assignment)),
          containerId: r.container_id,
          phase: r.phase,
          outcome: r.outcome === null ? null : OutcomeSchema.parse(JSON.parse(r.outcome)),
          report: r.report === null ? null : ReportRequestSchema.parse(JSON.parse(r.report)),
          createdAt: r.created_at,
          updatedAt: r.updated_at,
        });
      } catch (err) {
        unreadable.push({ executionId: id, problem: (err as Error).message.slice(0, 500) });
      }
    }
    return { records, unreadable };
  }

  /** Closes the database (idempotent). */
  close(): void {
    if (this.db.open) this.db.close();
  }

  private update(executionId: string, set: string, values: unknown[], now: number): void {
    const r = this.db
      .prepare(`UPDATE executions SET ${set}, updated_at = ? WHERE execution_id = ?`)
      .run(...values, now, executionId);
    if (r.changes === 0) throw new Error(`execution ${executionId} is not recorded in the agent's state`);
  }
}
