/** Small runs of the verification simulation (src/sim), which drives the real scheduler, verifier and reputation rules. */
import { describe, expect, it } from 'vitest';
import { simulate, type SimOptions } from '../../src/sim/simulate.js';
import { mulberry32 } from '../../src/sim/prng.js';

const small: Partial<SimOptions> = { tasks: 500, providers: 30, cheaters: 0.2, seed: 7 };

describe('verification simulation', () => {
  it('replicate never accepts a wrong result when cheaters always corrupt and do not collude', () => {
    for (const seed of [1, 2, 3]) {
      const r = simulate({ ...small, seed, mode: 'replicate', corruptRate: 1 });
      expect(r.wrongAccepted).toBe(0);
      expect(r.alone).toBe(0);
      expect(r.unfinished).toBe(0);
      expect(r.verified + r.failed).toBe(500);
      // Every task starts its 3 replicas; tasks where two cheaters landed together need more.
      expect(r.executionsPerTask).toBeGreaterThan(3);
      expect(r.executionsPerTask).toBeLessThanOrEqual(6);
    }
  });

  it('adaptive uses fewer executions per task than replicate once honest providers earned trust, still accepting no wrong result', () => {
    const rep = simulate({ ...small, mode: 'replicate', corruptRate: 1 });
    const ada = simulate({ ...small, mode: 'adaptive', corruptRate: 1 });
    expect(ada.alone).toBeGreaterThan(0);
    expect(ada.executionsPerTask).toBeLessThan(rep.executionsPerTask);
    expect(ada.executionsPerTaskSecondHalf).toBeLessThan(ada.executionsPerTask);
    expect(ada.executionsPerTaskSecondHalf).toBeLessThan(2);
    expect(ada.trustedAtEnd.honest).toBeGreaterThan(0);
    expect(ada.trustedAtEnd.cheaters).toBe(0); // a cheater that always corrupts never builds a streak
    expect(ada.wrongAccepted).toBe(0);
    expect(ada.unfinished).toBe(0);
  });

  it('colluding cheaters defeat 2-of-3 when two of them land on the same task', () => {
    const r = simulate({ ...small, mode: 'replicate', corruptRate: 1, collude: true });
    expect(r.wrongAccepted).toBeGreaterThan(0);
    expect(r.wrongAcceptedShare).toBe(r.wrongAccepted / 500);
  });

  it('runs exactly 3 executions per task and accepts nothing wrong without cheaters', () => {
    const r = simulate({ ...small, cheaters: 0, mode: 'replicate' });
    expect(r.executionsPerTask).toBe(3);
    expect(r.wrongAccepted).toBe(0);
    expect(r.verified).toBe(500);
    expect(r.cheaterExecutionShare).toBe(0);
  });

  it('gives identical results for the same seed, and different ones for another seed', () => {
    const a = simulate({ ...small, mode: 'adaptive', corruptRate: 0.1 });
    const b = simulate({ ...small, mode: 'adaptive', corruptRate: 0.1 });
    expect(a).toEqual(b);
    const c = simulate({ ...small, seed: 8, mode: 'adaptive', corruptRate: 0.1 });
    expect(c).not.toEqual(a);
  });

  it('rejects options it cannot run', () => {
    expect(() => simulate({ mode: 'replicate', providers: 2 })).toThrow(RangeError);
    expect(() => simulate({ mode: 'replicate', tasks: 0 })).toThrow(RangeError);
  });
});

describe('mulberry32', () => {
  it('is reproducible, stays in [0, 1) and is roughly uniform', () => {
    const a = mulberry32(42);
    const b = mulberry32(42);
    const xs = Array.from({ length: 10_000 }, () => a());
    expect(Array.from({ length: 10_000 }, () => b())).toEqual(xs);
    expect(xs.every((x) => x >= 0 && x < 1)).toBe(true);
    const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
    expect(Math.abs(mean - 0.5)).toBeLessThan(0.02);
    expect(mulberry32(43)()).not.toBe(mulberry32(42)());
  });
});
