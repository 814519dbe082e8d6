/**
 * Small runs of the verification simulation (src/sim), which drives core's scheduler, credibility-based verifier,
 * reputation, settlement and spot-check rules: the targets at a size that runs in a few seconds.
 */
import { describe, expect, it } from 'vitest';
import { simulate, type SimOptions } from '../../src/sim/simulate.js';
import { mulberry32 } from '../../src/sim/prng.js';
import { STRATEGIES } from '../../src/sim/world.js';

const small: Partial<SimOptions> = { tasks: 300, seed: 3 };
const bounds = [1e-3, 1e-4];

describe('verification simulation', () => {
  it('accepts no more wrong results than ε × tasks with 2 colluding accounts of 5 providers', () => {
    for (const maxError of bounds)
      for (const mode of ['replicate', 'adaptive'] as const) {
        const r = simulate({ ...small, strategy: STRATEGIES['collude-2-of-5']!, mode, maxError });
        expect(r.unfinished).toBe(0);
        expect(r.verified + r.failed).toBe(300);
        expect(r.wrongAccepted).toBeLessThanOrEqual(Math.floor(maxError * r.tasks));
        expect(r.wrongAcceptedBeforeBacktracking).toBeLessThanOrEqual(Math.floor(maxError * r.tasks));
      }
  });

  it('accepts no more wrong results than ε × tasks with 20% cheaters, independent or colluding', () => {
    for (const name of ['independent', 'colluding'])
      for (const maxError of bounds) {
        const r = simulate({ ...small, strategy: STRATEGIES[name]!, mode: 'replicate', maxError });
        expect(r.wrongAccepted).toBeLessThanOrEqual(Math.floor(maxError * r.tasks));
        // The cheaters did try: their results cost extra replicas.
        expect(r.executionsPerTask.buyer).toBeGreaterThan(2);
      }
  });

  it('catches sleepers and re-verifies what they alone supported, leaving no wrong result accepted', () => {
    // The matrix's sleepers at a smaller size: 2 of 10 providers, honest for 10 results after the warm-up.
    const sleepers = { ...STRATEGIES.sleepers!, providers: 10, liars: 2, honestFor: 10 };
    const r = simulate({ tasks: 400, seed: 3, strategy: sleepers, mode: 'adaptive', maxError: null });
    // Trusted sleepers ran tasks alone and lied: accepted at first ...
    expect(r.wrongAcceptedBeforeBacktracking).toBeGreaterThan(0);
    // ... then caught or outvoted, and every such task re-verified and replaced.
    expect(r.reverified).toBeGreaterThanOrEqual(r.wrongAcceptedBeforeBacktracking);
    expect(r.overturned).toBeGreaterThanOrEqual(r.wrongAcceptedBeforeBacktracking);
    expect(r.overturnedToWrong).toBe(0);
    expect(r.wrongAccepted).toBe(0);
    expect(r.caughtHonest).toBe(0);
  });

  it('runs an all-honest network in adaptive mode at ≤ 1.3 executions per task, replicate at exactly 2', () => {
    const ada = simulate({ ...small, strategy: STRATEGIES.honest!, mode: 'adaptive' });
    expect(ada.alone).toBeGreaterThan(0);
    expect(ada.executionsPerTask.total).toBeLessThanOrEqual(1.3);
    expect(ada.wrongAccepted).toBe(0);
    const rep = simulate({ ...small, strategy: STRATEGIES.honest!, mode: 'replicate' });
    expect(rep.executionsPerTask.buyer).toBe(2);
    expect(rep.alone).toBe(0);
    expect(rep.spotChecks).toBeGreaterThan(0);
    expect(rep.caught + rep.reverified + rep.failed).toBe(0);
  });

  it('gives identical results for the same seed, and different ones for another seed', () => {
    const opts = { ...small, strategy: STRATEGIES.colluding!, mode: 'adaptive' as const };
    const a = simulate(opts);
    expect(simulate(opts)).toEqual(a);
    expect(simulate({ ...opts, seed: 4 })).not.toEqual(a);
  });

  it('rejects options it cannot run', () => {
    expect(() => simulate({ strategy: STRATEGIES.honest!, mode: 'replicate', tasks: 0 })).toThrow(RangeError);
    expect(() => simulate({ strategy: STRATEGIES.honest!, mode: 'replicate', quorum: 3 })).toThrow(RangeError);
    const tooFew = { name: 'x', providers: 4, liars: 2, collude: true, honestFor: 0 };
    expect(() => simulate({ strategy: tooFew, mode: 'replicate' })).toThrow(RangeError);
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
