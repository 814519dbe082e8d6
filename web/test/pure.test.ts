/** Pure helpers of the dashboard: command splitting, plain-words verdicts, earnings from the ledger. */
import { describe, expect, it } from 'vitest';
import { splitCommand } from '../src/command.js';
import { verdict } from '../src/views/JobDetail.js';
import { byJob, cumulative, paymentsOf } from '../src/earnings.js';
import type { ExecutionView, LedgerEntry, TaskView } from '../../src/protocol/index.js';

describe('splitCommand', () => {
  it('splits like a shell without expansion', () => {
    expect(splitCommand(`sh -c "echo 42 > /outputs/a.txt; echo \\"hi\\""`)).toEqual([
      'sh',
      '-c',
      'echo 42 > /outputs/a.txt; echo "hi"',
    ]);
    expect(splitCommand(`python 'my file.py'  --x=1 a\\ b`)).toEqual(['python', 'my file.py', '--x=1', 'a b']);
    expect(splitCommand(`echo ''`)).toEqual(['echo', '']);
  });
  it('refuses an unclosed quote', () => {
    expect(() => splitCommand('echo "oops')).toThrow(/unclosed/);
  });
});

const exec = (agentName: string, state: ExecutionView['state']): ExecutionView => ({
  id: agentName,
  taskId: 't',
  agentId: agentName,
  agentName,
  providerId: 'p',
  state,
  desired: 'run',
  createdAt: 0,
  startedAt: 0,
  finishedAt: 0,
  exitCode: 0,
  resultHash: null,
  failure: null,
  usage: null,
  stdoutBlob: null,
  stderrBlob: null,
  outputsBlob: null,
  paid: null,
});
const task = (
  state: TaskView['state'],
  executions: ExecutionView[],
  failure: TaskView['failure'] = null,
): TaskView => ({
  id: 't',
  index: 0,
  params: {},
  state,
  targetReplicas: 3,
  resultHash: null,
  failure,
  executions,
  audit: null,
});

describe('verdict', () => {
  it('names who agreed and who was outvoted', () => {
    expect(verdict(task('verified', [exec('p1', 'valid'), exec('p2', 'invalid'), exec('p3', 'valid')]))).toBe(
      'Verified: p1 + p3 agreed; p2 was outvoted.',
    );
  });
  it('says a single unreplicated run was not cross-checked', () => {
    expect(verdict(task('verified', [exec('p1', 'valid')]))).toContain('no cross-check');
  });
  it('says when a verified result was re-verified after a provider was caught, and how it ended', () => {
    const t = task('verified', [exec('p1', 'invalid')]);
    expect(verdict({ ...t, audit: 'pending' })).toMatch(/^Being re-verified/);
    expect(verdict({ ...t, audit: 'changed' })).toMatch(/^Re-verified and replaced: .*refunded to you/);
    expect(verdict({ ...t, audit: 'confirmed' })).toMatch(/other providers confirmed it/);
  });
  it('explains a failure in plain words', () => {
    expect(verdict(task('failed', [], { reason: 'no_quorum', blame: 'provider', message: 'no_quorum' }))).toBe(
      'Failed: the providers did not agree on the result; make the program deterministic (fixed seeds, sorted output), or lower the quorum.',
    );
  });
});

describe('earnings from the ledger', () => {
  const entry = (
    at: number,
    amount: number,
    account: string,
    jobId: string,
    kind: LedgerEntry['kind'] = 'payment',
  ): LedgerEntry => ({ id: at, txnId: `t${at}`, at, kind, account, amount, jobId, executionId: null, memo: '' });
  const entries = [
    entry(3, 0.2, 'acct:me', 'j2'),
    entry(1, 0.1, 'acct:me', 'j1'),
    entry(2, 0.05, 'acct:me', 'j1'),
    entry(4, -0.35, 'escrow:j1', 'j1'),
    entry(5, 1, 'acct:me', 'j9', 'grant'),
  ];
  it('keeps payments into the account, oldest first, and sums per job', () => {
    const p = paymentsOf(entries, 'me');
    expect(p.map((e) => e.at)).toEqual([1, 2, 3]);
    expect(cumulative(p)).toEqual({ x: [1, 2, 3], y: [0.1, 0.15, 0.35] });
    expect(byJob(p)).toEqual([
      { jobId: 'j2', credits: 0.2, executions: 1, last: 3 },
      { jobId: 'j1', credits: 0.15, executions: 2, last: 2 },
    ]);
  });
});
