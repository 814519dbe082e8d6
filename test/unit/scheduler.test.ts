/** Unit tests of the pure scheduler: constraints (providers, capacity, network), order and determinism. */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { planExecutions, type Placement, type SchedAgent, type SchedTask } from '../../src/core/index.js';

function task(over: Partial<SchedTask> & { taskId: string }): SchedTask {
  return { jobId: 'job_1', jobCreatedAt: 1000, index: 0, need: 1, cpus: 1, memoryMb: 512, network: false, excludedProviders: [], ...over };
}
function agent(over: Partial<SchedAgent> & { agentId: string; providerId: string }): SchedAgent {
  return { totalCpus: 4, freeCpus: 4, freeMemoryMb: 8192, allowNetwork: false, running: 0, ...over };
}

const countBy = (plan: Placement[], key: (p: Placement) => string) => {
  const m = new Map<string, number>();
  for (const p of plan) m.set(key(p), (m.get(key(p)) ?? 0) + 1);
  return m;
};

describe('planExecutions', () => {
  it('places the replicas of one task on distinct providers, even when one provider has several agents', () => {
    const agents = [
      agent({ agentId: 'a1', providerId: 'p1' }), agent({ agentId: 'a2', providerId: 'p1' }),
      agent({ agentId: 'a3', providerId: 'p1' }), agent({ agentId: 'b1', providerId: 'p2' }),
    ];
    const plan = planExecutions([task({ taskId: 't1', need: 3 })], agents);
    expect(plan).toHaveLength(2); // only two providers exist
    expect(new Set(plan.map((p) => p.providerId))).toEqual(new Set(['p1', 'p2']));
  });

  it('never places on an excluded provider', () => {
    const agents = [agent({ agentId: 'a1', providerId: 'p1' }), agent({ agentId: 'b1', providerId: 'p2' }), agent({ agentId: 'c1', providerId: 'p3' })];
    const plan = planExecutions([task({ taskId: 't1', need: 3, excludedProviders: ['p1', 'p3'] })], agents);
    expect(plan).toEqual([{ taskId: 't1', agentId: 'b1', providerId: 'p2' }]);
  });

  it('respects CPU and memory across the whole plan, not per placement', () => {
    const agents = [agent({ agentId: 'a1', providerId: 'p1', totalCpus: 2, freeCpus: 2, freeMemoryMb: 4096 })];
    const tasks = Array.from({ length: 5 }, (_, i) => task({ taskId: `t${i}`, index: i, cpus: 1, memoryMb: 512 }));
    expect(planExecutions(tasks, agents)).toHaveLength(2); // CPU-bound

    const memBound = [agent({ agentId: 'a1', providerId: 'p1', totalCpus: 16, freeCpus: 16, freeMemoryMb: 1500 })];
    const plan = planExecutions(tasks, memBound);
    expect(plan.map((p) => p.taskId)).toEqual(['t0', 't1']); // 2 × 512 ≤ 1500 < 3 × 512
  });

  it('skips a task that does not fit and still places smaller ones after it', () => {
    const agents = [agent({ agentId: 'a1', providerId: 'p1', totalCpus: 2, freeCpus: 2 })];
    const tasks = [task({ taskId: 'big', jobId: 'j1', jobCreatedAt: 1, cpus: 4 }), task({ taskId: 'small', jobId: 'j2', jobCreatedAt: 2, cpus: 1 })];
    expect(planExecutions(tasks, agents).map((p) => p.taskId)).toEqual(['small']);
  });

  it('puts network jobs only on agents that allow network', () => {
    const agents = [agent({ agentId: 'a1', providerId: 'p1' }), agent({ agentId: 'b1', providerId: 'p2', allowNetwork: true })];
    const plan = planExecutions([task({ taskId: 'net', need: 2, network: true })], agents);
    expect(plan).toEqual([{ taskId: 'net', agentId: 'b1', providerId: 'p2' }]);
    expect(planExecutions([task({ taskId: 'net', network: true })], [agent({ agentId: 'a1', providerId: 'p1' })])).toEqual([]);
  });

  it('serves older jobs first when capacity is short', () => {
    const agents = [agent({ agentId: 'a1', providerId: 'p1', totalCpus: 1, freeCpus: 1 })];
    const tasks = [task({ taskId: 'new', jobId: 'j_new', jobCreatedAt: 2000 }), task({ taskId: 'old', jobId: 'j_old', jobCreatedAt: 1000 })];
    expect(planExecutions(tasks, agents).map((p) => p.taskId)).toEqual(['old']);
  });

  it('serves a job’s tasks in index order', () => {
    const agents = [agent({ agentId: 'a1', providerId: 'p1', totalCpus: 2, freeCpus: 2 })];
    const tasks = [2, 0, 1].map((i) => task({ taskId: `t${i}`, index: i }));
    expect(planExecutions(tasks, agents).map((p) => p.taskId)).toEqual(['t0', 't1']);
  });

  it('ranks the agent with the largest free CPU share first, then fewest running', () => {
    const agents = [
      agent({ agentId: 'busy', providerId: 'p1', totalCpus: 4, freeCpus: 1 }),
      agent({ agentId: 'idle', providerId: 'p2', totalCpus: 4, freeCpus: 4 }),
    ];
    expect(planExecutions([task({ taskId: 't' })], agents)[0]?.agentId).toBe('idle');
    const tied = [
      agent({ agentId: 'a', providerId: 'p1', running: 3 }),
      agent({ agentId: 'b', providerId: 'p2', running: 1 }),
    ];
    expect(planExecutions([task({ taskId: 't' })], tied)[0]?.agentId).toBe('b');
  });

  it('is deterministic and does not modify its inputs', () => {
    const agents = [agent({ agentId: 'c', providerId: 'p3' }), agent({ agentId: 'a', providerId: 'p1' }), agent({ agentId: 'b', providerId: 'p2' })];
    const tasks = [task({ taskId: 't1', need: 2 }), task({ taskId: 't2', index: 1, need: 2 })];
    const before = JSON.stringify({ agents, tasks });
    const p1 = planExecutions(tasks, agents);
    const p2 = planExecutions([...tasks].reverse(), [...agents].reverse());
    expect(p1).toEqual(p2);
    expect(p1).toHaveLength(4);
    expect(JSON.stringify({ agents, tasks })).toBe(before);
  });

  it('places nothing when there are no agents or nothing is needed', () => {
    expect(planExecutions([task({ taskId: 't' })], [])).toEqual([]);
    expect(planExecutions([task({ taskId: 't', need: 0 })], [agent({ agentId: 'a', providerId: 'p' })])).toEqual([]);
  });
});

describe('planExecutions properties', () => {
  const agentsArb = fc.uniqueArray(fc.record({
    agentId: fc.string({ minLength: 1, maxLength: 4 }),
    provider: fc.integer({ min: 0, max: 4 }),
    totalHalves: fc.integer({ min: 1, max: 16 }),
    usedHalves: fc.integer({ min: 0, max: 16 }),
    freeMemoryMb: fc.integer({ min: 0, max: 8192 }),
    allowNetwork: fc.boolean(),
    running: fc.integer({ min: 0, max: 5 }),
  }), { selector: (a) => a.agentId, maxLength: 8 });
  const tasksArb = fc.array(fc.record({
    job: fc.integer({ min: 0, max: 3 }),
    need: fc.integer({ min: 0, max: 4 }),
    cpuHalves: fc.integer({ min: 1, max: 8 }),
    memoryMb: fc.integer({ min: 16, max: 4096 }),
    network: fc.boolean(),
    excluded: fc.subarray([0, 1, 2, 3, 4]),
  }), { maxLength: 12 });

  it('never over-commits an agent, never doubles a task on a provider, and honours every constraint', () => {
    fc.assert(fc.property(agentsArb, tasksArb, (as, ts) => {
      const agents: SchedAgent[] = as.map((a) => ({ agentId: a.agentId, providerId: `p${a.provider}`, totalCpus: a.totalHalves / 2,
        freeCpus: Math.max(0, a.totalHalves - a.usedHalves) / 2, freeMemoryMb: a.freeMemoryMb, allowNetwork: a.allowNetwork, running: a.running }));
      const tasks: SchedTask[] = ts.map((t, i) => ({ taskId: `t${i}`, jobId: `j${t.job}`, jobCreatedAt: t.job * 10, index: i, need: t.need,
        cpus: t.cpuHalves / 2, memoryMb: t.memoryMb, network: t.network, excludedProviders: t.excluded.map((p) => `p${p}`) }));
      const plan = planExecutions(tasks, agents);
      const agentById = new Map(agents.map((a) => [a.agentId, a]));
      const taskById = new Map(tasks.map((t) => [t.taskId, t]));
      const cpu = new Map<string, number>();
      const mem = new Map<string, number>();
      const pairs = new Set<string>();
      for (const p of plan) {
        const a = agentById.get(p.agentId)!;
        const t = taskById.get(p.taskId)!;
        expect(p.providerId).toBe(a.providerId);
        expect(t.excludedProviders).not.toContain(p.providerId);
        if (t.network) expect(a.allowNetwork).toBe(true);
        const pair = `${p.taskId}@${p.providerId}`;
        expect(pairs.has(pair)).toBe(false);
        pairs.add(pair);
        cpu.set(a.agentId, (cpu.get(a.agentId) ?? 0) + t.cpus);
        mem.set(a.agentId, (mem.get(a.agentId) ?? 0) + t.memoryMb);
      }
      for (const [id, used] of cpu) expect(used).toBeLessThanOrEqual(agentById.get(id)!.freeCpus);
      for (const [id, used] of mem) expect(used).toBeLessThanOrEqual(agentById.get(id)!.freeMemoryMb);
      for (const [taskId, n] of countBy(plan, (p) => p.taskId)) expect(n).toBeLessThanOrEqual(taskById.get(taskId)!.need);
    }), { numRuns: 300 });
  });
});
