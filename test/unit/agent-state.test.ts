/**
 * The agent's fault-handling logic without a network: its state database (a real SQLite file, reopened to play
 * a restart), the recovery decision, the grace-period clock and the retry rules of report delivery.
 */
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { ConnectionMonitor } from '../../src/agent/connection.js';
import { isTransient, retryDelayMs } from '../../src/agent/delivery.js';
import type { ExecutionOutcome, OwnContainer } from '../../src/agent/executor.js';
import { planRecovery } from '../../src/agent/recovery.js';
import { AgentState, type HeldRecord } from '../../src/agent/state.js';
import { ApiError } from '../../src/client/index.js';
import { LimitsSchema, ResourcesSchema, type Assignment, type ReportRequest } from '../../src/protocol/index.js';

function assignment(executionId: string, fencingToken = 1): Assignment {
  return {
    executionId,
    fencingToken,
    leaseExpiresAt: 1,
    jobId: 'job_1',
    taskIndex: 0,
    image: 'deqo/busybox:test',
    command: ['true'],
    env: {},
    resources: ResourcesSchema.parse({}),
    limits: LimitsSchema.parse({}),
    inputs: [],
    outputDir: '/outputs',
    network: false,
  };
}
const outcome: ExecutionOutcome = {
  kind: 'exited',
  exitCode: 0,
  usage: { wallMs: 5, cpuMs: 1, maxMemoryBytes: 10 },
  stdoutTruncated: false,
  stderrTruncated: false,
};
const report: ReportRequest = { outcome: 'failed', fencingToken: 1, reason: 'agent_error', message: 'x' };
const tmp = () => mkdtemp(join(tmpdir(), 'deqo-state-'));

describe('AgentState', () => {
  it('keeps each step across a restart: the stored report of an execution that finished before the restart is what is resent', async () => {
    const dir = await tmp();
    const s1 = AgentState.open(dir);
    s1.record(assignment('ex_a', 3), 100);
    s1.containerCreated('ex_a', 'c1', 110);
    s1.finished('ex_a', outcome, 120);
    s1.reportReady('ex_a', { ...report, fencingToken: 3 }, 130);
    s1.record(assignment('ex_b'), 140);
    s1.close(); // the agent dies here, between finishing ex_a and reporting it

    const s2 = AgentState.open(dir);
    const { records, unreadable } = s2.list();
    expect(unreadable).toEqual([]);
    expect(records.map((r) => [r.executionId, r.phase, r.containerId])).toEqual([
      ['ex_a', 'finished', 'c1'],
      ['ex_b', 'preparing', null],
    ]);
    const a = records[0]!;
    expect(a).toMatchObject({
      fencingToken: 3,
      outcome,
      report: { ...report, fencingToken: 3 },
      createdAt: 100,
      updatedAt: 130,
    });
    expect(a.assignment).toEqual(assignment('ex_a', 3));
    const plan = planRecovery(records, []);
    expect(plan.actions[0]).toEqual({ kind: 'resend', record: a, report: { ...report, fencingToken: 3 } });
    s2.remove('ex_a');
    s2.remove('ex_a'); // idempotent
    expect(s2.list().records.map((r) => r.executionId)).toEqual(['ex_b']);
    s2.close();
  });

  it('uses WAL and refuses to update an execution it does not hold', async () => {
    const dir = await tmp();
    const s = AgentState.open(dir);
    expect(() => s.finished('ex_missing', outcome, 1)).toThrow(/not recorded/);
    s.close();
    const raw = new SqliteDatabase(join(dir, 'state.db'));
    expect(raw.pragma('journal_mode', { simple: true })).toBe('wal');
    raw.close();
  });

  it('returns unreadable rows apart instead of failing the whole list', async () => {
    const dir = await tmp();
    const s = AgentState.open(dir);
    s.record(assignment('ex_ok'), 1);
    s.record(assignment('ex_bad'), 2);
    s.close();
    const raw = new SqliteDatabase(join(dir, 'state.db'));
    raw.prepare(`UPDATE executions SET assignment = '{"executionId": 5}' WHERE execution_id = 'ex_bad'`).run();
    raw.close();
    const again = AgentState.open(dir);
    const { records, unreadable } = again.list();
    expect(records.map((r) => r.executionId)).toEqual(['ex_ok']);
    expect(unreadable).toEqual([{ executionId: 'ex_bad', problem: expect.any(String) }]);
    again.close();
  });

  it('refuses a database written by a newer agent, and a file that is not a database', async () => {
    const dir = await tmp();
    AgentState.open(dir).close();
    const raw = new SqliteDatabase(join(dir, 'state.db'));
    raw.pragma('user_version = 99');
    raw.close();
    expect(() => AgentState.open(dir)).toThrow(/newer agent/);
    const other = await tmp();
    await writeFile(join(other, 'state.db'), 'not a database, just text that is long enough to have a header');
    expect(() => AgentState.open(other)).toThrow();
  });
});

describe('planRecovery', () => {
  const rec = (executionId: string, over: Partial<HeldRecord> = {}): HeldRecord => ({
    executionId,
    fencingToken: 1,
    assignment: assignment(executionId),
    containerId: null,
    phase: 'running',
    outcome: null,
    report: null,
    createdAt: 0,
    updatedAt: 0,
    ...over,
  });
  const box = (containerId: string, state: string, executionId?: string, fencingToken?: number): OwnContainer => ({
    containerId,
    state,
    ...(executionId ? { executionId } : {}),
    ...(fencingToken !== undefined ? { fencingToken } : {}),
  });

  it('resends, packages, reattaches (running, exited or never started) and reports what is gone', () => {
    const records = [
      rec('ex_report', { phase: 'finished', outcome, report }),
      rec('ex_outcome', { phase: 'finished', outcome }),
      rec('ex_running', { containerId: 'c_run' }),
      rec('ex_exited'),
      rec('ex_created', { phase: 'preparing' }),
      rec('ex_gone', { containerId: 'c_gone' }),
      rec('ex_unstarted', { phase: 'preparing' }),
    ];
    const containers = [
      box('c_run', 'running', 'ex_running', 1),
      box('c_exit', 'exited', 'ex_exited', 1),
      box('c_new', 'created', 'ex_created', 1),
    ];
    const plan = planRecovery(records, containers);
    expect(
      plan.actions.map((a) => [
        a.record.executionId,
        a.kind,
        a.kind === 'reattach' ? a.container.containerId : undefined,
      ]),
    ).toEqual([
      ['ex_report', 'resend', undefined],
      ['ex_outcome', 'package', undefined],
      ['ex_running', 'reattach', 'c_run'],
      ['ex_exited', 'reattach', 'c_exit'],
      ['ex_created', 'reattach', 'c_new'],
      ['ex_gone', 'gone', undefined],
      ['ex_unstarted', 'gone', undefined],
    ]);
    const gone = plan.actions.filter((a) => a.kind === 'gone').map((a) => (a.kind === 'gone' ? a.message : ''));
    expect(gone[0]).toMatch(/container was gone/);
    expect(gone[1]).toMatch(/before its container was created/);
    expect(plan.orphans).toEqual([]);
    expect([...plan.workDirs].sort()).toEqual(records.map((r) => r.executionId).sort());
  });

  it('removes every other container, reporting only those whose labels name an execution the state does not know', () => {
    const records = [rec('ex_done', { phase: 'finished', outcome, report }), rec('ex_dead')];
    const containers = [
      box('c_unknown', 'running', 'ex_lost', 4), // state row lost: orphan, reported with its label's token
      box('c_twin', 'exited', 'ex_lost', 4), // a second container of it: removed, reported once
      box('c_nolabel', 'running'), // only the agent label: removed, nothing to report
      box('c_notoken', 'exited', 'ex_old'), // no fencing token label (older agent): removed, not reported
      box('c_done', 'exited', 'ex_done', 1), // left behind by a finished execution: removed, its stored report covers it
      box('c_dead', 'dead', 'ex_dead', 1), // dead: the execution is reported gone, the container removed
      box('c_stale', 'running', 'ex_dead', 9), // other token: not this record's
    ];
    const plan = planRecovery(records, containers);
    expect(plan.actions.map((a) => [a.record.executionId, a.kind])).toEqual([
      ['ex_done', 'resend'],
      ['ex_dead', 'gone'],
    ]);
    expect(plan.orphans.map((o) => [o.container.containerId, o.report])).toEqual([
      ['c_unknown', { executionId: 'ex_lost', fencingToken: 4 }],
      ['c_twin', null],
      ['c_nolabel', null],
      ['c_notoken', null],
      ['c_done', null],
      ['c_dead', null],
      ['c_stale', null],
    ]);
  });
});

describe('ConnectionMonitor (grace period)', () => {
  it('tolerates failures for the grace period, then says the leases are certainly gone', () => {
    const c = new ConnectionMonitor(10_000, 1_000);
    expect(c.disconnected).toBe(false);
    expect(c.failed(3_000)).toEqual({ sinceOkMs: 2_000, first: true, graceExceeded: false });
    expect(c.failed(11_000)).toEqual({ sinceOkMs: 10_000, first: false, graceExceeded: false });
    expect(c.failed(11_001)).toMatchObject({ graceExceeded: true });
    expect(c.disconnected).toBe(true);
    expect(c.succeeded(12_000)).toBe(9_000);
    expect(c.succeeded(13_000)).toBeUndefined();
    expect(c.failed(14_000)).toMatchObject({ sinceOkMs: 1_000, first: true, graceExceeded: false });
  });

  it('tells whether a lease taken at some time may have lapsed during an outage', () => {
    const c = new ConnectionMonitor(60_000, 0);
    expect(c.disconnectedSince(0)).toBe(false);
    c.failed(5_000);
    expect(c.disconnectedSince(10_000)).toBe(true); // still disconnected
    c.succeeded(8_000);
    expect(c.disconnectedSince(7_000)).toBe(true);
    expect(c.disconnectedSince(9_000)).toBe(false);
  });
});

describe('report delivery rules', () => {
  it('retries only what may work later', () => {
    expect(isTransient(new ApiError(0, 'unreachable', 'down', undefined, true))).toBe(true);
    expect(isTransient(new ApiError(502, 'http_error', 'HTTP 502'))).toBe(true);
    expect(isTransient(new ApiError(503, 'unavailable', 'busy', undefined, true))).toBe(true);
    expect(isTransient(new ApiError(200, 'bad_response', 'cut off'))).toBe(true);
    expect(isTransient(new ApiError(409, 'stale_lease', 'stale'))).toBe(false);
    expect(isTransient(new ApiError(404, 'not_found', 'gone'))).toBe(false);
    expect(isTransient(new ApiError(400, 'validation_failed', 'bad'))).toBe(false);
    expect(isTransient(new Error('disk full'))).toBe(false);
  });

  it('backs off exponentially from 500 ms, capped at 15 s', () => {
    expect([0, 1, 2, 3, 4, 5, 100].map(retryDelayMs)).toEqual([500, 1_000, 2_000, 4_000, 8_000, 15_000, 15_000]);
  });
});
