/** The dispatch benchmark in a tiny configuration: every job verified, the result has its fields. No timing assertions. */
import { describe, expect, it } from 'vitest';
import { runDispatch, type DispatchResult } from '../../src/bench/dispatch.js';
import { distribution, percentile } from '../../src/bench/stats.js';
import { packageOf } from '../../src/bench/profile.js';

describe('dispatch benchmark', () => {
  it('verifies every job of a tiny run over HTTP with simulated agents (SQLite, in-process coordinator)', async () => {
    const r = (await runDispatch({
      database: 'sqlite',
      jobs: 20,
      agents: 5,
      concurrency: 4,
      warmup: 2,
      inProcess: true,
    })) as DispatchResult;
    expect(r).not.toHaveProperty('skipped');
    expect(r).toMatchObject({
      benchmark: 'dispatch',
      database: 'sqlite',
      coordinators: 1,
      coordinatorMode: 'in-process',
      agents: 5,
      jobs: 20,
      verified: 20,
      notVerified: 0,
      agentErrors: 0,
      verification: 'replicate, replicas 1, quorum 1',
    });
    for (const k of [
      'durationS',
      'jobsPerSecond',
      'submitPerSecond',
      'benchProcessCpuS',
      'loadAverageAtStart',
    ] as const)
      expect(typeof r[k]).toBe('number');
    expect(r.latencyMs.n).toBe(20);
    expect(r.submitLatencyMs.n).toBe(20);
    expect(Object.keys(r.latencyMs).sort()).toEqual(['max', 'mean', 'n', 'p50', 'p99']);
    expect(r.coordinatorCpuS).toBeNull();
    expect(r.target.jobsPerSecond).toBe(1000);
    expect(typeof r.target.met).toBe('boolean');
  });
});

describe('bench helpers', () => {
  it('takes nearest-rank percentiles', () => {
    const xs = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentile(xs, 50)).toBe(50);
    expect(percentile(xs, 99)).toBe(99);
    expect(percentile([7], 99)).toBe(7);
    expect(distribution([3, 1, 2])).toEqual({ n: 3, p50: 2, p99: 3, max: 3, mean: 2 });
  });

  it('names the package of a profile frame', () => {
    expect(packageOf('file:///w/node_modules/kysely/dist/esm/x.js', 'f')).toBe('kysely');
    expect(packageOf('file:///w/node_modules/@fastify/ajv/x.js', 'f')).toBe('@fastify/ajv');
    expect(packageOf('file:///w/dist/store/jobs.js', 'f')).toBe('deqo/store');
    expect(packageOf('node:internal/http', 'f')).toBe('node');
    expect(packageOf('', '(garbage collector)')).toBe('(garbage collector)');
  });
});
