/** Unit tests of decideTask: quorum, adaptive replica targets, caps and failure verdicts. */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  clampFailureMessage,
  decideTask,
  defaultMaxExecutions,
  failureVerdict,
  gradeLateResult,
  MAX_FAILURE_MESSAGE,
  type Decision,
  type ExecutionVote,
  type VerificationPolicy,
} from '../../src/core/index.js';
import type { ExecutionState, Failure } from '../../src/protocol/index.js';

const H1 = 'a'.repeat(64);
const H2 = 'b'.repeat(64);
const H3 = 'c'.repeat(64);

/** A successful (exit 0) reported result. */
function ok(id: string, verdict: string, at: number): ExecutionVote {
  return { id, state: 'reported', verdict, exitCode: 0, failure: null, at };
}
/** An execution without a result yet, or a provider-side error. */
function open(id: string, state: ExecutionState, at = 0): ExecutionVote {
  const failure: Failure | null =
    state === 'failed' || state === 'lost'
      ? { reason: state === 'lost' ? 'lease_expired' : 'agent_error', blame: 'provider', message: `${id} ${state}` }
      : null;
  return { id, state, verdict: null, exitCode: null, failure, at };
}

const policy = (quorum: number, maxExecutions: number, maxErrors = 3): VerificationPolicy => ({
  quorum,
  maxExecutions,
  maxErrors,
});

function expectKind<K extends Decision['kind']>(d: Decision, kind: K): Extract<Decision, { kind: K }> {
  expect(d.kind).toBe(kind);
  return d as Extract<Decision, { kind: K }>;
}

describe('decideTask', () => {
  it('verifies on 2-of-3 agreement and marks the disagreeing result invalid', () => {
    const d = expectKind(
      decideTask(policy(2, 6), 3, [ok('e1', H1, 10), ok('e2', H2, 20), ok('e3', H1, 30)]),
      'verified',
    );
    expect(d.verdict).toBe(H1);
    expect(d.valid.sort()).toEqual(['e1', 'e3']);
    expect(d.invalid).toEqual(['e2']);
    expect(d.cancel).toEqual([]);
  });

  it('stays pending on one disagreement while an execution is still outstanding', () => {
    const d = expectKind(
      decideTask(policy(2, 6), 3, [ok('e1', H1, 10), ok('e2', H2, 20), open('e3', 'running')]),
      'pending',
    );
    expect(d.target).toBe(3);
  });

  it('raises the target by one when three results all differ (more replicas, BOINC style)', () => {
    const d = expectKind(
      decideTask(policy(2, 6), 3, [ok('e1', H1, 10), ok('e2', H2, 20), ok('e3', H3, 30)]),
      'pending',
    );
    expect(d.target).toBe(4);
  });

  it('keeps raising until agreement is possible, one replica per missing vote', () => {
    // quorum 3: two agree, one differs → one more vote is needed.
    const d = expectKind(decideTask(policy(3, 8), 3, [ok('e1', H1, 1), ok('e2', H1, 2), ok('e3', H2, 3)]), 'pending');
    expect(d.target).toBe(4);
  });

  it('fails with no_quorum once the execution cap is reached without agreement', () => {
    const d = expectKind(decideTask(policy(2, 3), 3, [ok('e1', H1, 10), ok('e2', H2, 20), ok('e3', H3, 30)]), 'failed');
    expect(d.failure.reason).toBe('no_quorum');
    expect(d.failure.blame).toBe('none');
    expect(d.verdict).toBeNull();
    expect(d.valid).toEqual([]);
    expect(d.invalid.sort()).toEqual(['e1', 'e2', 'e3']);
  });

  it('does not give up while the cap still leaves room for agreement', () => {
    const d = decideTask(policy(2, 4), 3, [ok('e1', H1, 10), ok('e2', H2, 20), ok('e3', H3, 30)]);
    expect(d).toEqual({ kind: 'pending', target: 4 });
  });

  it('fails with too_many_errors after maxErrors provider-side failures (failed or lost)', () => {
    const votes = [open('e1', 'failed', 1), open('e2', 'lost', 2), open('e3', 'running')];
    const d = expectKind(decideTask(policy(1, 10, 2), 1, votes), 'failed');
    expect(d.failure.reason).toBe('too_many_errors');
    expect(d.failure.blame).toBe('provider');
    expect(d.failure.message).toContain('e2 lost'); // the latest error is quoted
    expect(d.cancel).toEqual(['e3']);
  });

  it('tolerates provider errors below maxErrors and keeps the target', () => {
    const d = decideTask(policy(1, 10, 3), 1, [open('e1', 'failed', 1), open('e2', 'lost', 2)]);
    expect(d).toEqual({ kind: 'pending', target: 1 });
  });

  it('fails the task with the agreed job failure when a quorum reports the same failure verdict', () => {
    const oom: Failure = { reason: 'out_of_memory', blame: 'job', message: 'the job ran out of memory' };
    const v = (id: string, at: number): ExecutionVote => ({
      id,
      state: 'reported',
      verdict: failureVerdict('out_of_memory'),
      exitCode: null,
      failure: oom,
      at,
    });
    const d = expectKind(decideTask(policy(2, 5), 2, [v('e1', 1), v('e2', 2), open('e3', 'running')]), 'failed');
    expect(d.failure).toEqual(oom);
    expect(d.verdict).toBe('failure:out_of_memory');
    expect(d.valid.sort()).toEqual(['e1', 'e2']);
    expect(d.cancel).toEqual(['e3']); // a failed task stops even running replicas
  });

  it('fails with nonzero_exit when a quorum agrees on a nonzero exit code', () => {
    const exit3 = (id: string, at: number): ExecutionVote => ({
      id,
      state: 'reported',
      verdict: H2,
      exitCode: 3,
      failure: null,
      at,
    });
    const d = expectKind(decideTask(policy(2, 5), 2, [exit3('e1', 1), exit3('e2', 2)]), 'failed');
    expect(d.failure.reason).toBe('nonzero_exit');
    expect(d.failure.blame).toBe('job');
    expect(d.failure.message).toContain('code 3');
    expect(d.verdict).toBe(H2);
  });

  it('verifies a single success with quorum 1 and one replica', () => {
    const d = expectKind(decideTask(policy(1, defaultMaxExecutions(1)), 1, [ok('e1', H1, 5)]), 'verified');
    expect(d).toEqual({ kind: 'verified', verdict: H1, valid: ['e1'], invalid: [], cancel: [] });
  });

  it('gives ties to the verdict reported first, whatever the input order', () => {
    const votes = [ok('late', H2, 50), ok('early', H1, 10)];
    const d = expectKind(decideTask(policy(1, 4), 2, votes), 'verified');
    expect(d.verdict).toBe(H1);
    expect(d.valid).toEqual(['early']);
    expect(d.invalid).toEqual(['late']);
    const swapped = expectKind(decideTask(policy(1, 4), 2, [ok('late', H2, 5), ok('early', H1, 10)]), 'verified');
    expect(swapped.verdict).toBe(H2);
  });

  it('cancels unclaimed (assigned) executions on verification but lets running ones finish', () => {
    const votes = [
      ok('e1', H1, 1),
      ok('e2', H1, 2),
      open('e3', 'assigned'),
      open('e4', 'running'),
      open('e5', 'assigned'),
    ];
    const d = expectKind(decideTask(policy(2, 8), 5, votes), 'verified');
    expect(d.cancel.sort()).toEqual(['e3', 'e5']);
    expect(d.cancel).not.toContain('e4');
  });

  it('does not count disagreeing results as errors', () => {
    const d = decideTask(policy(2, 10, 1), 2, [ok('e1', H1, 1), ok('e2', H2, 2)]);
    expect(d.kind).toBe('pending');
  });
});

describe('failure messages', () => {
  it('keeps a too_many_errors message within the protocol limit however long the provider message was', () => {
    const long: ExecutionVote = {
      ...open('e1', 'failed', 1),
      failure: { reason: 'agent_error', blame: 'provider', message: 'x'.repeat(4096) },
    };
    const d = expectKind(decideTask(policy(1, 5, 1), 1, [long]), 'failed');
    expect(d.failure.message.length).toBe(MAX_FAILURE_MESSAGE);
    expect(d.failure.message.endsWith('…')).toBe(true);
  });

  it('clamps only messages that are too long', () => {
    expect(clampFailureMessage('short')).toBe('short');
    const exact = 'y'.repeat(MAX_FAILURE_MESSAGE);
    expect(clampFailureMessage(exact)).toBe(exact);
    expect(clampFailureMessage(`${exact}z`)).toHaveLength(MAX_FAILURE_MESSAGE);
  });
});

describe('gradeLateResult', () => {
  it('grades against the canonical verdict; nothing is valid for an undecided or cancelled task', () => {
    expect(gradeLateResult(H1, H1)).toBe('valid');
    expect(gradeLateResult(H1, H2)).toBe('invalid');
    expect(gradeLateResult(null, H1)).toBe('invalid');
  });
});

describe('decideTask properties', () => {
  const states: ExecutionState[] = ['assigned', 'running', 'reported', 'reported', 'reported', 'failed', 'lost'];
  const verdicts = [H1, H2, H3, failureVerdict('timeout')];
  const voteArb = fc.record({
    state: fc.constantFrom(...states),
    verdict: fc.constantFrom(...verdicts),
    at: fc.integer({ min: 0, max: 100 }),
  });
  const caseArb = fc.record({
    quorum: fc.integer({ min: 1, max: 5 }),
    extraExecutions: fc.integer({ min: 0, max: 6 }),
    maxErrors: fc.integer({ min: 1, max: 5 }),
    target: fc.integer({ min: 1, max: 8 }),
    votes: fc.array(voteArb, { maxLength: 12 }),
  });

  it('a verified decision has a quorum of agreeing valid results, disjoint from invalid; pending never lowers target', () => {
    fc.assert(
      fc.property(caseArb, (c) => {
        const votes: ExecutionVote[] = c.votes.map((v, i) => {
          if (v.state !== 'reported') return open(`e${i}`, v.state, v.at);
          const isFailure = v.verdict.startsWith('failure:');
          return {
            id: `e${i}`,
            state: 'reported',
            verdict: v.verdict,
            at: v.at,
            // The result hash covers the exit code, so one verdict always means one exit code.
            exitCode: isFailure ? null : v.verdict === H3 ? 1 : 0,
            failure: isFailure ? { reason: 'timeout', blame: 'job', message: 't' } : null,
          };
        });
        const p = policy(c.quorum, c.quorum + c.extraExecutions, c.maxErrors);
        const d = decideTask(p, c.target, votes);
        const byId = new Map(votes.map((v) => [v.id, v]));
        if (d.kind === 'pending') {
          expect(d.target).toBeGreaterThanOrEqual(c.target);
          return;
        }
        const valid = new Set(d.valid);
        for (const id of d.invalid) expect(valid.has(id)).toBe(false);
        for (const id of [...d.valid, ...d.invalid]) expect(byId.get(id)?.state).toBe('reported');
        for (const id of d.cancel) expect(['assigned', 'running']).toContain(byId.get(id)?.state);
        if (d.kind === 'verified') {
          expect(d.valid.length).toBeGreaterThanOrEqual(c.quorum);
          for (const id of d.valid) {
            expect(byId.get(id)?.verdict).toBe(d.verdict);
            expect(byId.get(id)?.exitCode).toBe(0);
          }
          for (const id of d.invalid) expect(byId.get(id)?.verdict).not.toBe(d.verdict);
          for (const id of d.cancel) expect(byId.get(id)?.state).toBe('assigned');
        }
      }),
      { numRuns: 500 },
    );
  });
});
