/**
 * Unit tests of decideTask (quorum, replica targets, caps, failure verdicts, probation, error bounds, giving up without
 * grading) and of the credibility model.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  clampFailureMessage,
  confirmedMembers,
  credibility,
  decideTask,
  groupCredibility,
  isEstablished,
  networkPrefixOf,
  NEWCOMER,
  replicasFor,
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

/** Who ran an execution: its own provider (p-<id>), a newcomer's credibility, on probation, unless given. */
type Who = Partial<Pick<ExecutionVote, 'providerId' | 'credibility' | 'established'>>;
const who = (id: string, w: Who = {}) => ({ providerId: `p-${id}`, credibility: 0.8, established: false, ...w });

/** A successful (exit 0) reported result. */
function ok(id: string, verdict: string, at: number, w: Who = {}): ExecutionVote {
  return { id, state: 'reported', verdict, exitCode: 0, failure: null, at, ...who(id, w) };
}
/** An execution without a result yet, or a provider-side error. */
function open(id: string, state: ExecutionState, at = 0, w: Who = {}): ExecutionVote {
  const failure: Failure | null =
    state === 'failed' || state === 'lost'
      ? { reason: state === 'lost' ? 'lease_expired' : 'agent_error', blame: 'provider', message: `${id} ${state}` }
      : null;
  return { id, state, verdict: null, exitCode: null, failure, at, ...who(id, w) };
}
/** An established provider (off probation), with the credibility of one confirmed 20 times. */
const est: Who = { established: true, credibility: 0.995 };

const policy = (
  quorum: number,
  maxExecutions: number,
  maxErrors = 3,
  maxError: number | null = null,
): VerificationPolicy => ({
  quorum,
  maxExecutions,
  maxErrors,
  maxError,
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

  it('fails with no_quorum once the execution cap is reached without agreement, grading nobody (the job is nondeterministic)', () => {
    const d = expectKind(decideTask(policy(2, 3), 3, [ok('e1', H1, 10), ok('e2', H2, 20), ok('e3', H3, 30)]), 'failed');
    expect(d.failure.reason).toBe('no_quorum');
    expect(d.failure.blame).toBe('job'); // the buyer pays for the executions; no provider is blamed
    expect(d.verdict).toBeNull();
    expect(d.valid).toEqual([]);
    expect(d.invalid).toEqual([]);
    expect(d.ungraded.sort()).toEqual(['e1', 'e2', 'e3']);
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
    expect(d.stop).toEqual(['e3']); // running: stopped (paid for the time it ran)
    expect([d.valid, d.invalid, d.cancel]).toEqual([[], [], []]);
  });

  it('gives up on too many errors without grading the honest result that finished (no free damage)', () => {
    const votes = [ok('honest', H1, 1), open('a1', 'lost', 2), open('a2', 'lost', 3), open('a3', 'lost', 4)];
    const d = expectKind(decideTask(policy(2, 10, 3), 2, votes), 'failed');
    expect(d.failure.reason).toBe('too_many_errors');
    expect(d.invalid).toEqual([]);
    expect(d.ungraded).toEqual(['honest']); // paid for its work, reputation untouched
  });

  it('tolerates provider errors below maxErrors and keeps the target', () => {
    const d = decideTask(policy(1, 10, 3), 1, [open('e1', 'failed', 1), open('e2', 'lost', 2)]);
    expect(d).toEqual({ kind: 'pending', target: 1 });
  });

  it('fails the task with the agreed job failure when a quorum reports the same failure verdict', () => {
    const oom: Failure = { reason: 'out_of_memory', blame: 'job', message: 'the job ran out of memory' };
    const v = (id: string, at: number): ExecutionVote => ({
      ...who(id),
      id,
      state: 'reported',
      verdict: failureVerdict('out_of_memory'),
      exitCode: null,
      failure: oom,
      at,
    });
    const d = expectKind(
      decideTask(policy(2, 5), 2, [v('e1', 1), v('e2', 2), open('e3', 'running'), open('e4', 'assigned')]),
      'failed',
    );
    expect(d.failure).toEqual(oom);
    expect(d.verdict).toBe('failure:out_of_memory');
    expect(d.valid.sort()).toEqual(['e1', 'e2']);
    expect(d.stop).toEqual(['e3']); // a failed task stops even running replicas (paid for their time)
    expect(d.cancel).toEqual(['e4']); // unstarted ones are superseded
  });

  it('does not let one provider fail a task (or bill the buyer for a failure) alone: a failure needs a second provider', () => {
    const oom: Failure = { reason: 'out_of_memory', blame: 'job', message: 'oom' };
    const alone: ExecutionVote = { ...ok('e1', failureVerdict('out_of_memory'), 1), exitCode: null, failure: oom };
    expect(decideTask(policy(1, 4), 1, [alone])).toEqual({ kind: 'pending', target: 2 });
    const exit1: ExecutionVote = { ...ok('e1', H2, 1), exitCode: 1 };
    expect(decideTask(policy(1, 4), 1, [exit1])).toEqual({ kind: 'pending', target: 2 });
    // A second provider that succeeds outvotes the lone failure; one that fails the same way confirms it.
    expect(expectKind(decideTask(policy(1, 4), 2, [exit1, ok('e2', H1, 2)]), 'verified').invalid).toEqual(['e1']);
    expect(
      expectKind(decideTask(policy(1, 4), 2, [exit1, { ...exit1, id: 'e2', providerId: 'p-e2', at: 2 }]), 'failed')
        .failure.reason,
    ).toBe('nonzero_exit');
  });

  it('fails with nonzero_exit when a quorum agrees on a nonzero exit code', () => {
    const exit3 = (id: string, at: number): ExecutionVote => ({
      ...who(id),
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
    expect(d).toEqual({
      kind: 'verified',
      verdict: H1,
      valid: ['e1'],
      invalid: [],
      confirmed: [], // nothing else confirmed it
      ungraded: [],
      cancel: [],
      stop: [],
    });
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
            ...who(`e${i}`),
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

describe('probation, error bounds and confirmations (Sarmenta)', () => {
  it('does not let newcomers outvote an established provider: a quorum must include one once one has voted', () => {
    const c1 = ok('c1', H2, 1);
    const c2 = ok('c2', H2, 2);
    const h1 = ok('h1', H1, 3, est);
    // The colluding pair agrees (2 of quorum 2) but an established provider disagrees: one more replica is wanted.
    expect(decideTask(policy(2, 5), 3, [c1, c2, h1])).toEqual({ kind: 'pending', target: 4 });
    // A second established provider agrees with the first: their verdict wins, the pair is outvoted.
    const d = expectKind(decideTask(policy(2, 5), 4, [c1, c2, h1, ok('h2', H1, 4, est)]), 'verified');
    expect(d.verdict).toBe(H1);
    expect(d.invalid.sort()).toEqual(['c1', 'c2']);
    // With no established provider on the task, plain quorum voting decides.
    expect(expectKind(decideTask(policy(2, 5), 2, [c1, c2]), 'verified').verdict).toBe(H2);
  });

  it('accepts under an error bound only when the agreeing group is credible enough', () => {
    const newcomers = (n: number, verdict = H1) => Array.from({ length: n }, (_, i) => ok(`n${i}`, verdict, i));
    // Two newcomers (credibility 0.8 each) agree: 0.64 / (0.64 + 0.04) = 0.941 < 1 − 1e-3.
    expect(decideTask(policy(2, 8, 3, 1e-3), 2, newcomers(2))).toEqual({ kind: 'pending', target: 3 });
    // Five agree: 0.8^5 / (0.8^5 + 0.2^5) = 0.99902 ≥ 0.999.
    expect(decideTask(policy(2, 8, 3, 1e-3), 5, newcomers(5)).kind).toBe('verified');
    // Two established providers (0.995) are enough for 1e-3 (0.99997) ...
    expect(decideTask(policy(2, 8, 3, 1e-3), 2, [ok('a', H1, 1, est), ok('b', H1, 2, est)]).kind).toBe('verified');
    // ... and a disagreeing newcomer lowers the group's credibility without winning.
    const mixed = decideTask(policy(2, 8, 3, 1e-3), 3, [ok('a', H1, 1, est), ok('b', H1, 2, est), ok('x', H2, 3)]);
    expect(expectKind(mixed, 'verified').invalid).toEqual(['x']);
    // A caught provider (credibility 0) adds nothing: two of them never reach any bound.
    const caught: Who = { credibility: 0 };
    expect(decideTask(policy(2, 8, 3, 1e-2), 2, [ok('q1', H2, 1, caught), ok('q2', H2, 2, caught)]).kind).toBe(
      'pending',
    );
  });

  it('gives up at the cap when the bound cannot be reached, grading nobody', () => {
    const d = expectKind(
      decideTask(policy(2, 3, 3, 1e-4), 3, [ok('a', H1, 1), ok('b', H1, 2), ok('c', H1, 3)]),
      'failed',
    );
    expect(d.failure.reason).toBe('no_quorum');
    expect(d.failure.message).toContain('error bound');
    expect(d.ungraded.sort()).toEqual(['a', 'b', 'c']);
    expect(d.invalid).toEqual([]);
  });

  it('confirms a member only when the rest of its group confirms it independently (a pair of newcomers cannot)', () => {
    expect(confirmedMembers([ok('a', H1, 1), ok('b', H1, 2)])).toEqual([]);
    expect(confirmedMembers([ok('a', H1, 1), ok('b', H1, 2), ok('c', H1, 3)])).toEqual(['a', 'b', 'c']);
    expect(confirmedMembers([ok('a', H1, 1), ok('h', H1, 2, est)])).toEqual(['a']);
    // Two executions of one provider are not independent.
    expect(confirmedMembers([ok('a', H1, 1), ok('a2', H1, 2, { providerId: 'p-a' }), ok('h', H1, 3, est)])).toEqual([
      'a',
      'a2',
    ]);
  });
});

describe('credibility (Sarmenta, FGCS 2002)', () => {
  it('is 1 − f unconfirmed, 1 − f/((1 − f)·k·e) after k confirmations, 0 when caught; established after 10', () => {
    expect(credibility(NEWCOMER)).toBeCloseTo(0.8, 12);
    expect(credibility({ confirmed: 10, vouched: false, caught: false })).toBeCloseTo(
      1 - 0.2 / (0.8 * 10 * Math.E),
      12,
    );
    expect(credibility({ confirmed: 500, vouched: false, caught: true })).toBe(0);
    expect(isEstablished({ confirmed: 9, vouched: false, caught: false })).toBe(false);
    expect(isEstablished({ confirmed: 10, vouched: false, caught: false })).toBe(true);
    expect(isEstablished({ confirmed: 0, vouched: true, caught: false })).toBe(true);
    expect(isEstablished({ confirmed: 0, vouched: true, caught: true })).toBe(false);
  });

  it("computes a group's credibility with Sarmenta's eq. 9 and the replicas an error bound costs", () => {
    expect(groupCredibility([[0.8, 0.8]], 0)).toBeCloseTo(0.64 / 0.68, 12);
    // Against a competing group of one: 0.8²·0.2 / (0.2²·0.2 + 0.8²·0.2 + 0.8·0.2²) = 0.128 / (0.008 + 0.128 + 0.032)
    expect(groupCredibility([[0.8, 0.8], [0.8]], 0)).toBeCloseTo(0.128 / 0.168, 12);
    expect(replicasFor(1e-3, 0.8)).toBe(5);
    expect(replicasFor(1e-4, 0.8)).toBe(7);
    expect(replicasFor(1e-3, 0.9995)).toBe(1);
  });

  it('reads network prefixes as /24 and /48, and loopback as no information', () => {
    expect(networkPrefixOf('203.0.113.7')).toBe('203.0.113');
    expect(networkPrefixOf('::ffff:198.51.100.20')).toBe('198.51.100');
    expect(networkPrefixOf('2001:db8:1:2::5')).toBe('2001:db8:1');
    expect(networkPrefixOf('2001:db8::1')).toBe('2001:db8:0');
    expect(networkPrefixOf('127.0.0.1')).toBe('');
    expect(networkPrefixOf('::1')).toBe('');
    expect(networkPrefixOf(undefined)).toBe('');
  });
});
