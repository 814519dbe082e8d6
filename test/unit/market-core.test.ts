/**
 * Unit tests of the pure marketplace core: money, pricing, ledger rules, reputation (BOINC rules), runtime
 * prediction and the HTCondor-style idle policy.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  accountLedger,
  ADAPTIVE_TRUST_THRESHOLD,
  applyOutcome,
  assertBalanced,
  buildPredictor,
  DEFAULT_QUOTA,
  errorRate,
  escrowHoldTxn,
  escrowLedger,
  executionCost,
  executionMaxCost,
  FEES,
  fromMicro,
  fundedExecutions,
  grantTxn,
  INITIAL_IDLE_STATE,
  ISSUER,
  meanTurnaroundMs,
  lowestBalance,
  MAX_MICRO,
  newReputation,
  paymentTxn,
  platformFee,
  jobEscrow,
  quoteModes,
  refundTxn,
  reputationScore,
  runsAlone,
  stepIdlePolicy,
  toMicro,
  type IdleState,
  type LedgerTxn,
  type Reputation,
  type ReputationOutcome,
  failureOf,
  settleExecution,
  standingOf,
  type EndedExecution,
} from '../../src/core/index.js';
import { JobSpecSchema, type IdlePolicy, type JobSpec } from '../../src/protocol/index.js';

const PRICE = { cpuHour: 0.05, memoryGiBHour: 0.005, gpuHour: 0.5, startFee: 0.001 };
const HOUR = 3_600_000;
const spec = (over: Record<string, unknown> = {}): JobSpec =>
  JobSpecSchema.parse({ image: 'deqo/busybox:test', command: ['true'], ...over });

describe('money', () => {
  it('converts credits to integer micro-credits and back', () => {
    expect(toMicro(1.5)).toBe(1_500_000);
    expect(toMicro(0.1 + 0.2)).toBe(300_000); // 0.30000000000000004 rounds to the micro-credit
    expect(toMicro(0.0000004)).toBe(0);
    expect(toMicro(0.0000006)).toBe(1);
    expect(fromMicro(1_500_000)).toBe(1.5);
    expect(fromMicro(1)).toBe(0.000001);
  });

  it('round-trips every micro-credit amount up to a million credits', () => {
    fc.assert(
      fc.property(fc.integer({ min: -1e12, max: 1e12 }), (m) => {
        expect(toMicro(fromMicro(m))).toBe(m);
      }),
    );
  });
});

describe('pricing', () => {
  const oneCore = { cpus: 1, memoryMb: 1024, gpus: 0 };

  it('charges the start fee plus the hourly rate over the wall time, capped at the timeout', () => {
    expect(executionCost(PRICE, oneCore, HOUR, 2 * HOUR)).toBe(1000 + 55_000); // 0.05 + 1 GiB × 0.005 per hour
    expect(executionCost(PRICE, oneCore, 10 * HOUR, HOUR)).toBe(56_000);
    expect(executionCost(PRICE, oneCore, HOUR / 2, HOUR)).toBe(1000 + 27_500);
    expect(executionCost(PRICE, { cpus: 0, memoryMb: 0, gpus: 2 }, HOUR, HOUR)).toBe(1000 + 1_000_000);
    expect(executionCost(PRICE, oneCore, -5, HOUR)).toBe(1000);
  });

  it('rounds up to the micro-credit (a provider is never short-changed)', () => {
    expect(executionCost(PRICE, { cpus: 1, memoryMb: 0, gpus: 0 }, 1, HOUR)).toBe(1001); // 0.0139 µcr → 1
    expect(executionCost({ ...PRICE, startFee: 0 }, { cpus: 1, memoryMb: 0, gpus: 0 }, 0, HOUR)).toBe(0);
  });

  it('gives the most one execution can cost at the maximum prices and timeout', () => {
    const s = spec({ resources: { cpus: 2, memoryMb: 512, timeoutSeconds: 600 } });
    // 0.002 start + (2 × 0.1 + 0.5 × 0.01) × 600/3600 = 0.002 + 0.0341666… → 36 167 µcr (rounded up)
    expect(executionMaxCost(s)).toBe(36_167);
  });

  it('never charges more than executionMaxCost for prices within the maximum (property)', () => {
    const price = fc.double({ min: 0, max: 1_000_000, noNaN: true });
    fc.assert(
      fc.property(
        fc.record({ cpuHour: price, memoryGiBHour: price, gpuHour: price, startFee: price }),
        fc.record({
          cpuHour: fc.double({ min: 0, max: 1, noNaN: true }),
          memoryGiBHour: fc.double({ min: 0, max: 1, noNaN: true }),
          gpuHour: fc.double({ min: 0, max: 1, noNaN: true }),
          startFee: fc.double({ min: 0, max: 1, noNaN: true }),
        }),
        fc.record({
          cpus: fc.double({ min: 0.01, max: 256, noNaN: true }),
          memoryMb: fc.integer({ min: 16, max: 1_048_576 }),
          gpus: fc.integer({ min: 0, max: 16 }),
          timeoutSeconds: fc.integer({ min: 1, max: 7 * 24 * 3600 }),
        }),
        fc.integer({ min: -1000, max: 30 * 24 * HOUR }),
        (maxPrice, share, res, wallMs) => {
          const offer = {
            cpuHour: maxPrice.cpuHour * share.cpuHour,
            memoryGiBHour: maxPrice.memoryGiBHour * share.memoryGiBHour,
            gpuHour: maxPrice.gpuHour * share.gpuHour,
            startFee: maxPrice.startFee * share.startFee,
          };
          const max = executionMaxCost({ resources: { ...res, pids: 256 }, maxPrice });
          const cost = executionCost(offer, res, wallMs, res.timeoutSeconds * 1000);
          expect(Number.isInteger(cost)).toBe(true);
          expect(cost).toBeGreaterThanOrEqual(0);
          expect(cost).toBeLessThanOrEqual(max);
          // At the maximum prices, running to the timeout costs exactly the maximum.
          expect(executionCost(maxPrice, res, res.timeoutSeconds * 1000, res.timeoutSeconds * 1000)).toBe(max);
        },
      ),
      { numRuns: 1000 },
    );
  });

  it('takes the platform fee in basis points, rounded down', () => {
    expect(platformFee(1_000_000, 250)).toBe(25_000);
    expect(platformFee(39, 250)).toBe(0); // 0.975 µcr rounds down
    expect(platformFee(1_000_000, 0)).toBe(0);
    expect(platformFee(1_000_000, 10_000)).toBe(1_000_000);
  });

  it('takes the fee exactly for every amount up to MAX_MICRO (BigInt reference, property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: MAX_MICRO }), fc.integer({ min: 0, max: 10_000 }), (amount, bps) => {
        expect(BigInt(platformFee(amount, bps))).toBe((BigInt(amount) * BigInt(bps)) / 10_000n);
      }),
    );
    // amount × bps is past 2⁵³ here: the naive floor(amount × bps / 10,000) gives 335502483665838, 1 µcr too many.
    expect(platformFee(710_509_283_493_939, 4_722)).toBe(335_502_483_665_837);
  });

  it('refuses a job whose worst case passes MAX_MICRO, and holds exact integers below it', () => {
    const spec = (over: object): JobSpec => JobSpecSchema.parse({ image: 'x', command: ['x'], ...over });
    const heavy = spec({ resources: { cpus: 256, gpus: 16 }, maxPrice: { cpuHour: 1e6, gpuHour: 1e6 } });
    expect(() => jobEscrow(heavy, 10_000)).toThrow(/ledger's bound/);
    const e = jobEscrow(spec({ verification: { replicas: 2, quorum: 2 } }), 10_000);
    expect(e.total).toBe(e.executionMaxCost * 2 * 10_000);
    expect(e.worstCase).toBe(e.executionMaxCost * 5 * 10_000);
    expect(Number.isSafeInteger(e.total) && e.worstCase <= MAX_MICRO).toBe(true);
  });

  it('funds one execution for none and `replicas` otherwise', () => {
    expect(fundedExecutions('none', 1)).toBe(1);
    expect(fundedExecutions('replicate', 3)).toBe(3);
    expect(fundedExecutions('adaptive', 3)).toBe(3);
  });

  it('quotes none, replicate and adaptive; adaptive expects fewer executions with trusted providers', () => {
    const s = spec({
      verification: { mode: 'replicate', replicas: 3, quorum: 2 },
      resources: { cpus: 1, memoryMb: 1024, timeoutSeconds: 3600 },
    });
    const perMax = executionMaxCost(s);
    const perExpected = 2000 + Math.ceil((0.1 + 0.01) * (60_000 / HOUR) * 1e6 - 1e-6); // one minute at the maximum prices
    const q = quoteModes(s, 10, { expectedWallMs: 60_000, trustedShare: 0.8 });
    expect(q.map((l) => [l.mode, l.executionsPerTask])).toEqual([
      ['none', 1],
      ['replicate', 3],
      ['adaptive', 3],
    ]);
    expect(q.map((l) => l.maxCost)).toEqual([10 * perMax, 30 * perMax, 30 * perMax]);
    expect(q[0]!.expectedCost).toBe(10 * perExpected);
    expect(q[1]!.expectedCost).toBe(30 * perExpected);
    expect(q[2]!.expectedCost).toBe(Math.round((0.8 + 0.2 * 3) * 10 * perExpected));
    // Untrusted providers: adaptive expects what replicate costs; fully trusted: what none costs (share is clamped).
    expect(quoteModes(s, 10, { expectedWallMs: 60_000, trustedShare: 0 })[2]!.expectedCost).toBe(30 * perExpected);
    expect(quoteModes(s, 10, { expectedWallMs: 60_000, trustedShare: 7 })[2]!.expectedCost).toBe(10 * perExpected);
    // The expected wall time is capped at the timeout.
    expect(quoteModes(s, 1, { expectedWallMs: 100 * HOUR, trustedShare: 0 })[0]!.expectedCost).toBe(perMax);
  });

  it('shows replication at 2-of-3 when the spec asks for one execution', () => {
    const q = quoteModes(spec(), 4, { expectedWallMs: 1000, trustedShare: 0 });
    expect(q.find((l) => l.mode === 'replicate')!.executionsPerTask).toBe(3);
    expect(q.find((l) => l.mode === 'replicate')!.maxCost).toBe(12 * executionMaxCost(spec()));
  });
});

describe('ledger', () => {
  const sumOf = (t: LedgerTxn) => t.postings.reduce((s, p) => s + p.amount, 0);
  const at = (t: LedgerTxn, account: string) => t.postings.find((p) => p.account === account)?.amount;

  it('builds balanced grant, escrow hold, payment and refund transactions', () => {
    const txns = [
      grantTxn('buyer1', 5_000_000, 'welcome'),
      escrowHoldTxn('buyer1', 'job1', 300_000, 'hold'),
      paymentTxn('job1', 'ex1', 'prov1', 100_000, 500)!,
      refundTxn('buyer1', 'job1', 200_000),
    ];
    for (const t of txns) {
      expect(() => assertBalanced(t)).not.toThrow();
      expect(sumOf(t)).toBe(0);
    }
    expect(at(txns[0]!, ISSUER)).toBe(-5_000_000);
    expect(at(txns[0]!, accountLedger('buyer1'))).toBe(5_000_000);
    expect(at(txns[1]!, escrowLedger('job1'))).toBe(300_000);
    expect(at(txns[3]!, accountLedger('buyer1'))).toBe(200_000);
    expect(txns.map((t) => t.kind)).toEqual(['grant', 'escrow_hold', 'payment', 'refund']);
  });

  it('splits a payment between the provider and the platform fee', () => {
    const t = paymentTxn('job1', 'ex1', 'prov1', 1_000_000, 250)!;
    expect(t.executionId).toBe('ex1');
    expect(t.jobId).toBe('job1');
    expect(at(t, escrowLedger('job1'))).toBe(-1_000_000);
    expect(at(t, accountLedger('prov1'))).toBe(975_000);
    expect(at(t, FEES)).toBe(25_000);
  });

  it('leaves out zero postings and returns null for a free execution', () => {
    expect(paymentTxn('job1', 'ex1', 'prov1', 0, 250)).toBeNull();
    const noFee = paymentTxn('job1', 'ex1', 'prov1', 5, 250)!; // fee rounds down to 0
    expect(noFee.postings.map((p) => p.account)).toEqual([escrowLedger('job1'), accountLedger('prov1')]);
    const allFee = paymentTxn('job1', 'ex1', 'prov1', 5, 10_000)!;
    expect(allFee.postings.map((p) => p.account)).toEqual([escrowLedger('job1'), FEES]);
    assertBalanced(noFee);
    assertBalanced(allFee);
  });

  it('balances every payment, whatever the cost and fee (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 1e12 }), fc.integer({ min: 0, max: 10_000 }), (cost, bps) => {
        const t = paymentTxn('j', 'e', 'p', cost, bps)!;
        assertBalanced(t);
        expect(at(t, FEES) ?? 0).toBe(platformFee(cost, bps));
      }),
    );
  });

  it('rejects unbalanced, zero, fractional and duplicate postings', () => {
    const txn = (postings: LedgerTxn['postings']): LedgerTxn => ({
      kind: 'grant',
      jobId: null,
      executionId: null,
      memo: '',
      postings,
    });
    expect(() =>
      assertBalanced(
        txn([
          { account: 'acct:a', amount: 5 },
          { account: 'acct:b', amount: -4 },
        ]),
      ),
    ).toThrow(/does not balance/);
    expect(() =>
      assertBalanced(
        txn([
          { account: 'acct:a', amount: 0 },
          { account: 'acct:b', amount: 0 },
        ]),
      ),
    ).toThrow(/non-zero integer/);
    expect(() =>
      assertBalanced(
        txn([
          { account: 'acct:a', amount: 0.5 },
          { account: 'acct:b', amount: -0.5 },
        ]),
      ),
    ).toThrow(/non-zero integer/);
    expect(() =>
      assertBalanced(
        txn([
          { account: 'acct:a', amount: 5 },
          { account: 'acct:a', amount: -5 },
        ]),
      ),
    ).toThrow(/twice/);
    expect(() => assertBalanced(grantTxn('a', 0, 'nothing'))).toThrow(RangeError);
    expect(() => assertBalanced(refundTxn('a', 'j', 0))).toThrow(RangeError);
  });

  it('lets only the issuer go negative', () => {
    expect(lowestBalance(ISSUER)).toBe(-MAX_MICRO);
    expect(lowestBalance(FEES)).toBe(0);
    expect(lowestBalance(escrowLedger('j'))).toBe(0);
    expect(lowestBalance(accountLedger('a'))).toBe(0);
  });
});

describe('reputation', () => {
  const valid = (crossChecked = true, turnaroundMs: number | null = null, confirmed = false): ReputationOutcome => ({
    kind: 'valid',
    crossChecked,
    confirmed,
    turnaroundMs,
  });
  const apply = (r: Reputation, ...os: ReputationOutcome[]) => os.reduce((acc, o) => applyOutcome(acc, o), r);

  it('starts a newcomer at score 0.5 with the initial quota', () => {
    const r = newReputation();
    expect(r).toMatchObject({
      consecutiveValid: 0,
      valid: 0,
      invalid: 0,
      errors: 0,
      dailyQuota: DEFAULT_QUOTA.initialDailyQuota,
    });
    expect(reputationScore(r)).toBe(0.5);
    expect(newReputation({ initialDailyQuota: 7, maxDailyQuota: 50 }).dailyQuota).toBe(7);
  });

  it('counts consecutive valid results only when cross-checked', () => {
    let r = apply(newReputation(), valid(), valid(), valid());
    expect(r.consecutiveValid).toBe(3);
    r = applyOutcome(r, valid(false));
    expect(r.consecutiveValid).toBe(3); // ran alone: nothing checked it
    expect(r.valid).toBe(4);
  });

  it('resets the streak on an invalid result or an error', () => {
    const good = apply(newReputation(), valid(), valid(), valid());
    expect(applyOutcome(good, { kind: 'invalid', turnaroundMs: null }).consecutiveValid).toBe(0);
    expect(applyOutcome(good, { kind: 'error' }).consecutiveValid).toBe(0);
    expect(applyOutcome(good, { kind: 'invalid', turnaroundMs: null }).invalid).toBe(1);
    expect(applyOutcome(good, { kind: 'error' }).errors).toBe(1);
  });

  it('doubles the daily quota on valid results up to the cap, and drops it by one on failures down to 1', () => {
    const q = { initialDailyQuota: 3, maxDailyQuota: 20 };
    let r = newReputation(q);
    const quotas: number[] = [];
    for (let i = 0; i < 4; i++) {
      r = applyOutcome(r, valid(false), q);
      quotas.push(r.dailyQuota);
    }
    expect(quotas).toEqual([6, 12, 20, 20]);
    const down: number[] = [];
    r = { ...r, dailyQuota: 3 };
    for (let i = 0; i < 4; i++) {
      r = applyOutcome(r, i % 2 ? { kind: 'error' } : { kind: 'invalid', turnaroundMs: null }, q);
      down.push(r.dailyQuota);
    }
    expect(down).toEqual([2, 1, 1, 1]);
    expect(applyOutcome({ ...r, dailyQuota: 0 }, valid(), q).dailyQuota).toBe(2);
    // Default cap.
    expect(applyOutcome({ ...newReputation(), dailyQuota: 6400 }, valid()).dailyQuota).toBe(
      DEFAULT_QUOTA.maxDailyQuota,
    );
  });

  it('scores (valid + 1) / (n + 2), with error rate and mean turnaround of reported results', () => {
    const r = apply(
      newReputation(),
      valid(true, 100),
      valid(true, 300),
      { kind: 'invalid', turnaroundMs: 200 },
      { kind: 'error' },
      valid(false, -50),
      valid(true, null),
    );
    expect(r).toMatchObject({ valid: 4, invalid: 1, errors: 1, turnaroundCount: 4, turnaroundMsTotal: 600 });
    expect(reputationScore(r)).toBeCloseTo(5 / 8, 12);
    expect(errorRate(r)).toBeCloseTo(1 / 6, 12);
    expect(meanTurnaroundMs(r)).toBe(150); // the negative turnaround counts as 0
    expect(errorRate(newReputation())).toBe(0);
    expect(meanTurnaroundMs(newReputation())).toBeNull();
    expect(reputationScore({ valid: 98, invalid: 0, errors: 0 })).toBeCloseTo(0.99, 12);
  });

  it('does not modify the record it is given', () => {
    const r = newReputation();
    const before = { ...r };
    applyOutcome(r, valid());
    applyOutcome(r, { kind: 'error' });
    expect(r).toEqual(before);
  });

  it('runs a task alone only from 10 consecutive valid results, with probability 1 − 1/cv (BOINC)', () => {
    expect(ADAPTIVE_TRUST_THRESHOLD).toBe(10);
    expect(runsAlone(9, 0)).toBe(false);
    expect(runsAlone(0, 0)).toBe(false);
    expect(runsAlone(10, 0)).toBe(true);
    expect(runsAlone(10, 0.899)).toBe(true);
    expect(runsAlone(10, 0.9)).toBe(false);
    expect(runsAlone(100, 0.989)).toBe(true);
    expect(runsAlone(100, 0.99)).toBe(false);
    const N = 10_000;
    for (const cv of [10, 20, 50]) {
      let alone = 0;
      for (let i = 0; i < N; i++) if (runsAlone(cv, (i + 0.5) / N)) alone++;
      expect(Math.abs(alone / N - (1 - 1 / cv))).toBeLessThanOrEqual(1 / N);
    }
  });
});

describe('prediction', () => {
  const s = (agentId: string, wallMs: number, image = 'img/x', cpus = 1) => ({ agentId, image, cpus, wallMs });

  it('predicts an agent’s own mean for a pair it ran', () => {
    const p = buildPredictor([s('a', 100), s('a', 140), s('b', 200), s('b', 200), s('c', 300)]);
    expect(p('a', 'img/x', 1)).toBe(120);
    expect(p('b', 'img/x', 1)).toBe(200);
  });

  it('uses only an agent’s last 20 runs of a pair', () => {
    const p = buildPredictor([
      ...Array.from({ length: 5 }, () => s('a', 1000)),
      ...Array.from({ length: 20 }, () => s('a', 100)),
    ]);
    expect(p('a', 'img/x', 1)).toBe(100);
  });

  it('predicts baseline × speed factor for a pair the agent never ran', () => {
    // Baseline of img/x = median(100, 100, 200, 200, 300) = 200; agent a runs at 0.5 × baseline.
    // Baseline of img/y = 400 (only b ran it); a is predicted at 0.5 × 400.
    const p = buildPredictor([s('a', 100), s('a', 100), s('b', 200), s('b', 200), s('c', 300), s('b', 400, 'img/y')]);
    expect(p('a', 'img/y', 1)).toBe(200);
    expect(p('c', 'img/y', 1)).toBe(600); // 300 / 200 = 1.5 × 400
    expect(p('new', 'img/x', 1)).toBe(200); // an unseen agent gets the baseline
  });

  it('returns null when nothing is known of the image and core count', () => {
    const p = buildPredictor([s('a', 100)]);
    expect(p('a', 'img/z', 1)).toBeNull();
    expect(p('a', 'img/x', 2)).toBeNull();
    expect(buildPredictor([])('a', 'img/x', 1)).toBeNull();
  });
});

describe('idle policy (HTCondor desktop)', () => {
  const policy: IdlePolicy = {
    enabled: true,
    startBelow: 0.3,
    suspendAbove: 0.5,
    suspendAfterSeconds: 120,
    resumeAfterSeconds: 300,
  };
  /** Feeds (load, time s) samples and returns every decision. */
  const run = (p: IdlePolicy, samples: [number, number][], start: IdleState = INITIAL_IDLE_STATE) => {
    let state = start;
    return samples.map(([load, t]) => {
      const d = stepIdlePolicy(p, state, load, t * 1000);
      state = d.state;
      return d;
    });
  };

  it('starts work only while the owner load is at most startBelow', () => {
    const [calm, edge, mid] = run(policy, [
      [0.1, 0],
      [0.3, 1],
      [0.4, 2],
    ]);
    expect(calm).toMatchObject({ canStart: true, windDown: false, reason: null });
    expect(edge!.canStart).toBe(true);
    expect(mid).toMatchObject({ canStart: false, windDown: false });
    expect(mid!.reason).toContain('40%');
    expect(mid!.state.suspended).toBe(false);
  });

  it('suspends only after the load stayed at or above suspendAbove for suspendAfterSeconds', () => {
    const ds = run(policy, [
      [0.5, 0],
      [0.9, 60],
      [0.7, 119.999],
      [0.6, 120],
    ]);
    expect(ds.slice(0, 3).map((d) => [d.state.suspended, d.windDown])).toEqual([
      [false, false],
      [false, false],
      [false, false],
    ]);
    expect(ds[3]).toMatchObject({ canStart: false, windDown: true, state: { suspended: true } });
  });

  it('restarts the busy streak when the load drops in between', () => {
    const ds = run(policy, [
      [0.6, 0],
      [0.2, 60],
      [0.6, 100],
      [0.6, 219],
      [0.6, 220],
    ]);
    expect(ds.map((d) => d.state.suspended)).toEqual([false, false, false, false, true]);
  });

  it('resumes only after the load stayed below startBelow for resumeAfterSeconds', () => {
    const suspended = run(policy, [
      [0.9, 0],
      [0.9, 120],
    ])[1]!.state;
    expect(suspended.suspended).toBe(true);
    const ds = run(
      policy,
      [
        [0.1, 200],
        [0.1, 499],
        [0.1, 500],
      ],
      suspended,
    );
    expect(ds.map((d) => [d.canStart, d.windDown])).toEqual([
      [false, true],
      [false, true],
      [true, false],
    ]);
    expect(ds[2]!.state).toEqual({ suspended: false, busySince: null, calmSince: null });
  });

  it('restarts the calm streak on a spike while suspended (load at startBelow is not calm)', () => {
    const suspended = run(policy, [
      [0.9, 0],
      [0.9, 120],
    ])[1]!.state;
    const ds = run(
      policy,
      [
        [0.1, 200],
        [0.3, 400],
        [0.1, 450],
        [0.1, 700],
        [0.1, 750],
      ],
      suspended,
    );
    expect(ds.map((d) => d.canStart)).toEqual([false, false, false, false, true]);
  });

  it('always allows work when the policy is disabled', () => {
    const off = { ...policy, enabled: false };
    const ds = run(
      off,
      [
        [1, 0],
        [1, 1000],
        [1, 100_000],
      ],
      { suspended: true, busySince: 0, calmSince: null },
    );
    expect(ds.every((d) => d.canStart && !d.windDown && d.reason === null && !d.state.suspended)).toBe(true);
  });
});

describe('settlement: pay for what the coordinator observed', () => {
  const base: EndedExecution = {
    executionId: 'e',
    jobId: 'j',
    providerId: 'p',
    state: 'valid',
    failure: null,
    wallMs: 1_200_000,
    price: { cpuHour: 1, memoryGiBHour: 0, gpuHour: 0, startFee: 0 },
    reserved: { cpus: 1, memoryMb: 0, gpus: 0 },
    timeoutMs: 3_600_000,
    executionMaxCost: 10_000_000,
    validInTask: 2,
    confirmed: true,
    startedAt: 1_000,
    finishedAt: 1_257, // 257 ms between claim and report
  };

  it('bills no more wall time than the claim → report the coordinator saw (a self-biller claiming 20 min gets 257 ms)', () => {
    const s = settleExecution(base, 0);
    expect(s.cost).toBe(executionCost(base.price, base.reserved, 257, base.timeoutMs));
    expect(s.cost).toBeLessThan(executionCost(base.price, base.reserved, 1_200_000, base.timeoutMs));
    expect(s.reputation).toEqual({ kind: 'valid', crossChecked: true, confirmed: true, turnaroundMs: 257 });
    // A report of less than it observed is billed as reported.
    expect(settleExecution({ ...base, wallMs: 100 }, 0).cost).toBe(
      executionCost(base.price, base.reserved, 100, base.timeoutMs),
    );
  });

  it('pays a stopped execution for the time it ran (cancelled), nothing for one superseded before it started', () => {
    const stopped = settleExecution(
      { ...base, state: 'cancelled', failure: failureOf('cancelled', 'x'), wallMs: null },
      0,
    );
    expect(stopped).toMatchObject({
      payable: true,
      cost: executionCost(base.price, base.reserved, 257, base.timeoutMs),
      reputation: null,
    });
    const superseded = settleExecution(
      { ...base, state: 'cancelled', failure: failureOf('superseded', 'x'), startedAt: null, finishedAt: 2_000 },
      0,
    );
    expect(superseded).toMatchObject({ payable: false, cost: 0, payment: null, reputation: null });
  });

  it('counts provider-side failures against the provider except the owner coming back; pays none of them', () => {
    for (const reason of ['lease_expired', 'agent_error', 'deadline_exceeded'] as const)
      expect(settleExecution({ ...base, state: 'lost', failure: failureOf(reason, 'x') }, 0)).toMatchObject({
        payable: false,
        reputation: { kind: 'error' },
      });
    expect(
      settleExecution({ ...base, state: 'failed', failure: failureOf('owner_returned', 'x') }, 0).reputation,
    ).toBeNull();
  });
});

describe('standing (credibility) in the reputation record', () => {
  it('counts confirmations in a row, resets them on an invalid result, blacklists for good when caught', () => {
    let r = newReputation();
    const v = (confirmed: boolean): ReputationOutcome => ({
      kind: 'valid',
      crossChecked: true,
      confirmed,
      turnaroundMs: null,
    });
    r = applyOutcome(applyOutcome(applyOutcome(r, v(true)), v(true)), v(false));
    expect(r.confirmed).toBe(2);
    r = applyOutcome(r, { kind: 'spot_check_passed' });
    expect(r.confirmed).toBe(3);
    expect(applyOutcome(r, { kind: 'error' }).confirmed).toBe(3); // a crash is not a lie
    r = applyOutcome(r, { kind: 'invalid', turnaroundMs: null });
    expect(r.confirmed).toBe(0);
    r = applyOutcome(r, { kind: 'caught', at: 5 });
    expect(standingOf(r)).toEqual({ confirmed: 0, vouched: false, caught: true });
    expect(applyOutcome(r, { kind: 'caught', at: 9 }).caughtAt).toBe(5);
    expect(standingOf(applyOutcome(newReputation(), { kind: 'vouched' }))).toEqual({
      confirmed: 0,
      vouched: true,
      caught: false,
    });
  });
});
