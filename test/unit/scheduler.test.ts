/**
 * Unit tests of the pure scheduler and its matching predicate: constraints (providers, capacity, GPUs, quota,
 * network, price, labels, arch/OS, reputation, availability), rejection reasons, rank, adaptive replication,
 * order and determinism.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  demandOf,
  dynamicRejections,
  outputFsPlan,
  planExecutions,
  rejections,
  staticRejections,
  type Demand,
  type Placement,
  type PlanOptions,
  type Predictor,
  type RejectionCode,
  type SchedAgent,
  type SchedTask,
} from '../../src/core/index.js';
import { JobSpecSchema } from '../../src/protocol/index.js';

const MAX_PRICE = { cpuHour: 0.1, memoryGiBHour: 0.01, gpuHour: 1, startFee: 0.002 };
const PRICE = { cpuHour: 0.05, memoryGiBHour: 0.005, gpuHour: 0.5, startFee: 0.001 };

function demand(over: Partial<Demand> = {}): Demand {
  return {
    cpus: 1,
    memoryMb: 512,
    gpus: 0,
    network: false,
    labels: {},
    maxPrice: MAX_PRICE,
    image: 'deqo/busybox:test',
    timeoutMs: 600_000,
    ...over,
  };
}
function task(over: Partial<Omit<SchedTask, 'demand'>> & { taskId: string; demand?: Partial<Demand> }): SchedTask {
  const { demand: d, ...rest } = over;
  return {
    jobId: 'job_1',
    jobCreatedAt: 1000,
    index: 0,
    need: 1,
    excludedProviders: [],
    adaptiveFresh: false,
    ...rest,
    demand: demand(d),
  };
}
function agent(over: Partial<SchedAgent> & { agentId: string; providerId: string }): SchedAgent {
  return {
    name: over.agentId,
    online: true,
    availability: 'available',
    totalCpus: 4,
    freeCpus: 4,
    totalMemoryMb: 8192,
    freeMemoryMb: 8192,
    totalDiskMb: 10_240,
    freeDiskMb: 10_240,
    gpuModels: [],
    freeGpus: 0,
    arch: 'amd64',
    os: 'linux',
    allowNetwork: false,
    labels: {},
    prices: PRICE,
    reputation: 0.5,
    consecutiveValid: 0,
    credibility: 0.9,
    established: true,
    // One cohort per provider, no network prefix: diversity does not narrow anything unless a test sets them.
    cohort: [...over.providerId].reduce((h, c) => h * 31 + c.charCodeAt(0), 7),
    prefix: '',
    quotaLeft: 100,
    running: 0,
    ...over,
  };
}

/** Default options: no runtime known, and every random draw 0 (the draw takes the heaviest: the best-ranked agent). */
const noRandom: PlanOptions = { random: () => 0, predict: () => null };
const withRandom = (r: number, predict: Predictor = () => null): PlanOptions => ({ random: () => r, predict });
/** The draws in order (then 0): a placement draw, then adaptive replication's draw, … */
const draws = (...rs: number[]): PlanOptions => {
  let i = 0;
  return { random: () => rs[i++] ?? 0, predict: () => null };
};

const countBy = (plan: Placement[], key: (p: Placement) => string) => {
  const m = new Map<string, number>();
  for (const p of plan) m.set(key(p), (m.get(key(p)) ?? 0) + 1);
  return m;
};
const codes = (xs: { code: RejectionCode }[]) => xs.map((x) => x.code);

describe('matching: rejection reasons', () => {
  const ok = agent({ agentId: 'a', providerId: 'p' });

  it('accepts a matching agent', () => {
    expect(rejections(demand(), ok)).toEqual([]);
  });

  it('rejects a price above the maximum in any unit that the job uses', () => {
    const dear = agent({ agentId: 'a', providerId: 'p', prices: { ...PRICE, cpuHour: 0.2 } });
    const r = staticRejections(demand(), dear);
    expect(codes(r)).toEqual(['price']);
    expect(r[0]!.message).toContain('cpuHour 0.2 > 0.1');
    expect(
      codes(rejections(demand(), agent({ agentId: 'a', providerId: 'p', prices: { ...PRICE, startFee: 0.01 } }))),
    ).toEqual(['price']);
    // A GPU price above the maximum only matters to a job that asks for GPUs.
    const dearGpu = agent({
      agentId: 'a',
      providerId: 'p',
      prices: { ...PRICE, gpuHour: 5 },
      gpuModels: ['NVIDIA A100'],
      freeGpus: 1,
    });
    expect(rejections(demand(), dearGpu)).toEqual([]);
    expect(codes(rejections(demand({ gpus: 1 }), dearGpu))).toEqual(['price']);
    // Exactly at the maximum is accepted.
    expect(rejections(demand(), agent({ agentId: 'a', providerId: 'p', prices: { ...MAX_PRICE } }))).toEqual([]);
  });

  it('rejects missing or different labels', () => {
    const labelled = agent({ agentId: 'a', providerId: 'p', labels: { region: 'eu', tier: 'gold' } });
    expect(rejections(demand({ labels: { region: 'eu' } }), labelled)).toEqual([]);
    const r = rejections(demand({ labels: { region: 'us', ssd: 'yes' } }), labelled);
    expect(codes(r)).toEqual(['labels']);
    expect(r[0]!.message).toContain('region=us');
    expect(r[0]!.message).toContain('ssd=yes');
  });

  it('rejects another arch or OS', () => {
    expect(codes(rejections(demand({ arch: 'arm64' }), ok))).toEqual(['arch']);
    expect(codes(rejections(demand({ os: 'windows' }), ok))).toEqual(['os']);
    expect(codes(rejections(demand({ arch: 'arm64', os: 'windows' }), ok))).toEqual(['arch', 'os']);
    expect(rejections(demand({ arch: 'amd64', os: 'linux' }), ok)).toEqual([]);
  });

  it('rejects too few GPUs, or too few of the asked model (case-insensitive substring)', () => {
    const gpus = agent({ agentId: 'a', providerId: 'p', gpuModels: ['NVIDIA A100 80GB', 'NVIDIA T4'], freeGpus: 2 });
    expect(rejections(demand({ gpus: 1, gpuModel: 'a100' }), gpus)).toEqual([]);
    expect(codes(rejections(demand({ gpus: 2, gpuModel: 'A100' }), gpus))).toEqual(['gpu_model']);
    expect(codes(rejections(demand({ gpus: 1, gpuModel: 'H100' }), gpus))).toEqual(['gpu_model']);
    expect(codes(rejections(demand({ gpus: 3 }), gpus))).toEqual(['gpus']);
    expect(codes(rejections(demand({ gpus: 1 }), ok))).toEqual(['gpus']);
    expect(codes(rejections(demand({ gpus: 1, gpuModel: 'T4' }), ok))).toEqual(['gpus', 'gpu_model']);
  });

  it('rejects too few cores or too little memory lent, and network when not allowed', () => {
    expect(codes(rejections(demand({ cpus: 8 }), ok))).toEqual(['cpus']);
    expect(codes(rejections(demand({ memoryMb: 16_384 }), ok))).toEqual(['memory']);
    expect(codes(rejections(demand({ network: true }), ok))).toEqual(['network']);
    expect(rejections(demand({ network: true }), agent({ agentId: 'a', providerId: 'p', allowNetwork: true }))).toEqual(
      [],
    );
  });

  it("rejects a job whose output limit + inputs exceed the offer's disk, and a full disk as at capacity", () => {
    const small = agent({ agentId: 'a', providerId: 'p', totalDiskMb: 1024, freeDiskMb: 1024 });
    expect(rejections(demand({ diskMb: 1024 }), small)).toEqual([]);
    const r = rejections(demand({ diskMb: 1025 }), small);
    expect(codes(r)).toEqual(['disk']);
    expect(r[0]!.message).toBe('lends 1024 MiB of disk, the job needs 1025 (outputs filesystem + inputs)');
    const busy = agent({ agentId: 'a', providerId: 'p', totalDiskMb: 1024, freeDiskMb: 100 });
    expect(codes(rejections(demand({ diskMb: 101 }), busy))).toEqual(['at_capacity']);
    expect(rejections(demand({ diskMb: 100 }), busy)).toEqual([]);
    // Demands stored before diskMb existed need none.
    expect(rejections(demand({ diskMb: undefined }), agent({ agentId: 'a', providerId: 'p', freeDiskMb: 0 }))).toEqual(
      [],
    );
  });

  it('counts the output filesystem and the distinct inputs (MiB, rounded up) as the disk a job needs', () => {
    const spec = JobSpecSchema.parse({ image: 'x', command: ['true'], limits: { outputBytes: 16 * 1024 ** 3 } });
    const fs = outputFsPlan(16 * 1024 ** 3).bytes / 1024 ** 2;
    expect(fs).toBeGreaterThan(16_384); // the cap and room for block rounding
    expect(fs).toBeLessThan(16_384 * 1.05);
    expect(demandOf(spec).diskMb).toBe(fs);
    expect(demandOf(spec, 1).diskMb).toBe(fs + 1);
  });

  it('rejects a reputation below the job minimum', () => {
    const r = rejections(demand({ minReputation: 0.8 }), agent({ agentId: 'a', providerId: 'p', reputation: 0.75 }));
    expect(codes(r)).toEqual(['reputation']);
    expect(
      rejections(demand({ minReputation: 0.8 }), agent({ agentId: 'a', providerId: 'p', reputation: 0.8 })),
    ).toEqual([]);
  });

  it('rejects agents the job did not pick, by agent id or provider id', () => {
    expect(codes(rejections(demand({ providers: ['other'] }), ok))).toEqual(['not_picked']);
    expect(rejections(demand({ providers: ['a'] }), ok)).toEqual([]);
    expect(rejections(demand({ providers: ['p'] }), ok)).toEqual([]);
    expect(rejections(demand({ providers: undefined }), ok)).toEqual([]);
  });

  it('gives dynamic reasons: offline, outside its window, owner busy, draining, at capacity, quota used up', () => {
    expect(codes(rejections(demand(), agent({ agentId: 'a', providerId: 'p', online: false })))).toEqual(['offline']);
    expect(
      codes(rejections(demand(), agent({ agentId: 'a', providerId: 'p', availability: 'outside_window' }))),
    ).toEqual(['outside_window']);
    expect(codes(rejections(demand(), agent({ agentId: 'a', providerId: 'p', availability: 'owner_busy' })))).toEqual([
      'owner_busy',
    ]);
    expect(codes(rejections(demand(), agent({ agentId: 'a', providerId: 'p', availability: 'draining' })))).toEqual([
      'draining',
    ]);
    expect(codes(rejections(demand({ cpus: 2 }), agent({ agentId: 'a', providerId: 'p', freeCpus: 1 })))).toEqual([
      'at_capacity',
    ]);
    expect(codes(rejections(demand(), agent({ agentId: 'a', providerId: 'p', freeMemoryMb: 100 })))).toEqual([
      'at_capacity',
    ]);
    expect(
      codes(rejections(demand({ gpus: 1 }), agent({ agentId: 'a', providerId: 'p', gpuModels: ['T4'], freeGpus: 0 }))),
    ).toEqual(['at_capacity']);
    expect(codes(rejections(demand(), agent({ agentId: 'a', providerId: 'p', quotaLeft: 0 })))).toEqual([
      'quota_exhausted',
    ]);
    expect(codes(rejections(demand(), agent({ agentId: 'a', providerId: 'p', freeCpus: 0, quotaLeft: 0 })))).toEqual([
      'at_capacity',
      'quota_exhausted',
    ]);
  });

  it('lists static reasons before dynamic ones: a machine that can never run the job says why first', () => {
    const a = agent({ agentId: 'a', providerId: 'p', online: false, arch: 'arm64', quotaLeft: 0 });
    expect(codes(dynamicRejections(demand({ arch: 'amd64' }), a))).toEqual(['offline']);
    expect(codes(staticRejections(demand({ arch: 'amd64' }), a))).toEqual(['arch']);
    expect(codes(rejections(demand({ arch: 'amd64' }), a))).toEqual(['arch']);
    expect(codes(rejections(demand(), a))).toEqual(['offline']);
  });
});

describe('planExecutions', () => {
  it('places the replicas of one task on distinct providers, even when one provider has several agents', () => {
    const agents = [
      agent({ agentId: 'a1', providerId: 'p1' }),
      agent({ agentId: 'a2', providerId: 'p1' }),
      agent({ agentId: 'a3', providerId: 'p1' }),
      agent({ agentId: 'b1', providerId: 'p2' }),
    ];
    const plan = planExecutions([task({ taskId: 't1', need: 3 })], agents, noRandom);
    expect(plan).toHaveLength(2); // only two providers exist
    expect(new Set(plan.map((p) => p.providerId))).toEqual(new Set(['p1', 'p2']));
    expect(plan.every((p) => !p.alone)).toBe(true);
  });

  it('places no more executions on an agent than its disk holds', () => {
    const agents = [agent({ agentId: 'a1', providerId: 'p1', totalCpus: 16, freeCpus: 16, freeDiskMb: 2500 })];
    const tasks = ['t1', 't2', 't3'].map((taskId) => task({ taskId, demand: { diskMb: 1000 } }));
    expect(planExecutions(tasks, agents, noRandom).map((p) => p.taskId)).toEqual(['t1', 't2']);
  });

  it('never places on an excluded provider', () => {
    const agents = [
      agent({ agentId: 'a1', providerId: 'p1' }),
      agent({ agentId: 'b1', providerId: 'p2' }),
      agent({ agentId: 'c1', providerId: 'p3' }),
    ];
    const plan = planExecutions([task({ taskId: 't1', need: 3, excludedProviders: ['p1', 'p3'] })], agents, noRandom);
    expect(plan).toEqual([{ taskId: 't1', agentId: 'b1', providerId: 'p2', alone: false }]);
  });

  it('respects CPU and memory across the whole plan, not per placement', () => {
    const agents = [agent({ agentId: 'a1', providerId: 'p1', totalCpus: 2, freeCpus: 2, freeMemoryMb: 4096 })];
    const tasks = Array.from({ length: 5 }, (_, i) => task({ taskId: `t${i}`, index: i }));
    expect(planExecutions(tasks, agents, noRandom)).toHaveLength(2); // CPU-bound

    const memBound = [agent({ agentId: 'a1', providerId: 'p1', totalCpus: 16, freeCpus: 16, freeMemoryMb: 1500 })];
    expect(planExecutions(tasks, memBound, noRandom).map((p) => p.taskId)).toEqual(['t0', 't1']); // 2 × 512 ≤ 1500 < 3 × 512
  });

  it('respects GPUs and the daily quota across the whole plan', () => {
    const gpuAgent = [
      agent({
        agentId: 'g',
        providerId: 'p1',
        totalCpus: 16,
        freeCpus: 16,
        gpuModels: ['A100', 'A100', 'A100'],
        freeGpus: 3,
      }),
    ];
    const gpuTasks = Array.from({ length: 4 }, (_, i) => task({ taskId: `t${i}`, index: i, demand: { gpus: 2 } }));
    expect(planExecutions(gpuTasks, gpuAgent, noRandom).map((p) => p.taskId)).toEqual(['t0']); // 2 ≤ 3 < 4

    const quota = [agent({ agentId: 'q', providerId: 'p1', totalCpus: 16, freeCpus: 16, quotaLeft: 3 })];
    const tasks = Array.from({ length: 5 }, (_, i) => task({ taskId: `t${i}`, index: i }));
    expect(planExecutions(tasks, quota, noRandom).map((p) => p.taskId)).toEqual(['t0', 't1', 't2']);
  });

  it('skips a task that does not fit and still places smaller ones after it', () => {
    const agents = [agent({ agentId: 'a1', providerId: 'p1', totalCpus: 2, freeCpus: 2 })];
    const tasks = [
      task({ taskId: 'big', jobId: 'j1', jobCreatedAt: 1, demand: { cpus: 4 } }),
      task({ taskId: 'small', jobId: 'j2', jobCreatedAt: 2 }),
    ];
    expect(planExecutions(tasks, agents, noRandom).map((p) => p.taskId)).toEqual(['small']);
  });

  it('puts network jobs only on agents that allow network', () => {
    const agents = [
      agent({ agentId: 'a1', providerId: 'p1' }),
      agent({ agentId: 'b1', providerId: 'p2', allowNetwork: true }),
    ];
    const plan = planExecutions([task({ taskId: 'net', need: 2, demand: { network: true } })], agents, noRandom);
    expect(plan).toEqual([{ taskId: 'net', agentId: 'b1', providerId: 'p2', alone: false }]);
    expect(
      planExecutions(
        [task({ taskId: 'net', demand: { network: true } })],
        [agent({ agentId: 'a1', providerId: 'p1' })],
        noRandom,
      ),
    ).toEqual([]);
  });

  it('never places on an agent with a rejection, static or dynamic', () => {
    const agents = [
      agent({ agentId: 'off', providerId: 'p1', online: false }),
      agent({ agentId: 'busy', providerId: 'p2', availability: 'owner_busy' }),
      agent({ agentId: 'dear', providerId: 'p3', prices: { ...PRICE, cpuHour: 1 } }),
      agent({ agentId: 'arm', providerId: 'p4', arch: 'arm64' }),
      agent({ agentId: 'good', providerId: 'p5' }),
    ];
    expect(
      planExecutions([task({ taskId: 't', need: 5, demand: { arch: 'amd64' } })], agents, noRandom).map(
        (p) => p.agentId,
      ),
    ).toEqual(['good']);
  });

  it('serves older jobs first when capacity is short', () => {
    const agents = [agent({ agentId: 'a1', providerId: 'p1', totalCpus: 1, freeCpus: 1 })];
    const tasks = [
      task({ taskId: 'new', jobId: 'j_new', jobCreatedAt: 2000 }),
      task({ taskId: 'old', jobId: 'j_old', jobCreatedAt: 1000 }),
    ];
    expect(planExecutions(tasks, agents, noRandom).map((p) => p.taskId)).toEqual(['old']);
  });

  it('serves a job’s tasks in index order', () => {
    const agents = [agent({ agentId: 'a1', providerId: 'p1', totalCpus: 2, freeCpus: 2 })];
    const tasks = [2, 0, 1].map((i) => task({ taskId: `t${i}`, index: i }));
    expect(planExecutions(tasks, agents, noRandom).map((p) => p.taskId)).toEqual(['t0', 't1']);
  });

  it('is deterministic and does not modify its inputs', () => {
    const agents = [
      agent({ agentId: 'c', providerId: 'p3' }),
      agent({ agentId: 'a', providerId: 'p1' }),
      agent({ agentId: 'b', providerId: 'p2' }),
    ];
    const tasks = [task({ taskId: 't1', need: 2 }), task({ taskId: 't2', index: 1, need: 2 })];
    const before = JSON.stringify({ agents, tasks });
    const p1 = planExecutions(tasks, agents, noRandom);
    const p2 = planExecutions([...tasks].reverse(), [...agents].reverse(), noRandom);
    expect(p1).toEqual(p2);
    expect(p1).toHaveLength(4);
    expect(JSON.stringify({ agents, tasks })).toBe(before);
  });

  it('places nothing when there are no agents or nothing is needed', () => {
    expect(planExecutions([task({ taskId: 't' })], [], noRandom)).toEqual([]);
    expect(
      planExecutions([task({ taskId: 't', need: 0 })], [agent({ agentId: 'a', providerId: 'p' })], noRandom),
    ).toEqual([]);
  });
});

describe('planExecutions on a long queue', () => {
  it('ranks agents once per distinct demand and stops once no agent has room', () => {
    const calls: string[] = [];
    const predict: Predictor = (agentId, image) => {
      calls.push(`${agentId} ${image}`);
      return null;
    };
    const agents = [
      agent({ agentId: 'a1', providerId: 'p1', totalCpus: 2, freeCpus: 2 }),
      agent({ agentId: 'a2', providerId: 'p2', totalCpus: 1, freeCpus: 1 }),
    ];
    const tasks = Array.from({ length: 1000 }, (_, i) =>
      task({ taskId: `t${i}`, jobId: `job_${String(i).padStart(4, '0')}`, demand: { image: i % 2 ? 'x' : 'y' } }),
    );
    const plan = planExecutions(tasks, agents, { random: () => 0, predict });
    expect(plan.map((p) => p.taskId)).toEqual(['t0', 't1', 't2']);
    // Two demands (images x and y) × two agents × the two passes of rankScores; nothing for the 997 tasks left waiting.
    expect(calls.length).toBe(2 * 2 * 2);
  });
});

describe('planExecutions rank', () => {
  const first = (agents: SchedAgent[], opts: PlanOptions = noRandom) =>
    planExecutions([task({ taskId: 't' })], agents, opts)[0]?.agentId;

  it('prefers the cheaper agent', () => {
    const agents = [
      agent({ agentId: 'a', providerId: 'p1', prices: { ...PRICE, cpuHour: 0.09 } }),
      agent({ agentId: 'b', providerId: 'p2', prices: { ...PRICE, cpuHour: 0.02 } }),
    ];
    expect(first(agents)).toBe('b');
    // The cheaper agent wins even when it is busier (price comes before the free-CPU tie-break).
    const cheapButBusy = [
      agent({ agentId: 'a', providerId: 'p1', freeCpus: 1, prices: { ...PRICE, startFee: 0.0001 } }),
      agent({ agentId: 'b', providerId: 'p2' }),
    ];
    expect(first(cheapButBusy)).toBe('a');
  });

  it('at equal prices prefers the agent predicted to finish sooner', () => {
    const agents = [agent({ agentId: 'a', providerId: 'p1' }), agent({ agentId: 'b', providerId: 'p2' })];
    expect(
      first(
        agents,
        withRandom(0, (id) => (id === 'a' ? 120_000 : 60_000)),
      ),
    ).toBe('b');
    expect(
      first(
        agents,
        withRandom(0, (id) => (id === 'a' ? 60_000 : 120_000)),
      ),
    ).toBe('a');
  });

  it('at equal price and time prefers the better reputation', () => {
    const agents = [
      agent({ agentId: 'a', providerId: 'p1', reputation: 0.6 }),
      agent({ agentId: 'b', providerId: 'p2', reputation: 0.9 }),
    ];
    expect(first(agents)).toBe('b');
    expect(first(agents.map((a) => ({ ...a, reputation: a.agentId === 'a' ? 0.95 : 0.9 })))).toBe('a');
  });

  it('breaks full ties on the largest free CPU share, then fewest running, then agent id', () => {
    expect(
      first([agent({ agentId: 'busy', providerId: 'p1', freeCpus: 1 }), agent({ agentId: 'idle', providerId: 'p2' })]),
    ).toBe('idle');
    expect(
      first([
        agent({ agentId: 'a', providerId: 'p1', running: 3 }),
        agent({ agentId: 'b', providerId: 'p2', running: 1 }),
      ]),
    ).toBe('b');
    expect(first([agent({ agentId: 'z', providerId: 'p1' }), agent({ agentId: 'y', providerId: 'p2' })])).toBe('y');
  });
});

describe('planExecutions adaptive replication', () => {
  const trusted = (cv: number) => [
    agent({ agentId: 'trusted', providerId: 'p1', consecutiveValid: cv, reputation: 0.9 }),
    agent({ agentId: 'b', providerId: 'p2' }),
    agent({ agentId: 'c', providerId: 'p3' }),
  ];
  const fresh = task({ taskId: 't', need: 3, adaptiveFresh: true });

  it('runs a fresh task alone on a provider with ≥ 10 consecutive valid results when the draw is below 1 − 1/cv', () => {
    // The first draw places the replica (0: the best-ranked, 'trusted'), the second is adaptive replication's.
    expect(planExecutions([fresh], trusted(10), draws(0, 0.89))).toEqual([
      { taskId: 't', agentId: 'trusted', providerId: 'p1', alone: true },
    ]);
    expect(planExecutions([fresh], trusted(20), draws(0, 0.949))).toEqual([
      { taskId: 't', agentId: 'trusted', providerId: 'p1', alone: true },
    ]);
  });

  it('replicates when the draw is at or above 1 − 1/cv', () => {
    for (const [cv, r] of [
      [10, 0.9],
      [20, 0.95],
      [10, 0.99],
    ] as const) {
      const plan = planExecutions([fresh], trusted(cv), draws(0, r));
      expect(plan).toHaveLength(3);
      expect(plan.every((p) => !p.alone)).toBe(true);
      expect(plan[0]!.agentId).toBe('trusted');
    }
  });

  it('replicates below the trust threshold whatever the draw', () => {
    const plan = planExecutions([fresh], trusted(9), withRandom(0));
    expect(plan.map((p) => p.alone)).toEqual([false, false, false]);
  });

  it('never runs a task alone when it is not fresh (it already has executions) or not adaptive', () => {
    const plan = planExecutions([task({ taskId: 't', need: 2, adaptiveFresh: false })], trusted(1000), noRandom);
    expect(plan).toHaveLength(2);
    expect(plan.every((p) => !p.alone)).toBe(true);
  });

  it('only the first placement may be alone: trust is judged on the best-ranked agent', () => {
    // The best agent is untrusted, the trusted one ranks second: the task is replicated.
    const agents = [
      agent({ agentId: 'cheap', providerId: 'p1', prices: { ...PRICE, cpuHour: 0.01 } }),
      agent({ agentId: 'trusted', providerId: 'p2', consecutiveValid: 100 }),
      agent({ agentId: 'c', providerId: 'p3' }),
    ];
    const plan = planExecutions([fresh], agents, withRandom(0));
    expect(plan.map((p) => p.agentId).sort()).toEqual(['c', 'cheap', 'trusted']);
    expect(plan[0]!.agentId).toBe('cheap');
    expect(plan.every((p) => !p.alone)).toBe(true);
  });
});

describe('placement an attacker cannot steer', () => {
  /** A seeded generator (mulberry32) so the draws are random but the test is reproducible. */
  const seeded = (seed: number) => () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const one = (id = 't', over: Partial<SchedTask> = {}) => task({ taskId: id, need: 1, ...over });

  it('draws replicas at random among the eligible agents, not cheapest-first: every equal agent gets a share', () => {
    const agents = ['a', 'b', 'c', 'd'].map((x) => agent({ agentId: x, providerId: `p-${x}` }));
    const random = seeded(1);
    const counts = new Map<string, number>();
    for (let i = 0; i < 2000; i++) {
      const [p] = planExecutions([one()], agents, { random, predict: () => null });
      counts.set(p!.agentId, (counts.get(p!.agentId) ?? 0) + 1);
    }
    for (const x of ['a', 'b', 'c', 'd']) expect(counts.get(x)).toBeGreaterThan(400); // ~500 each
  });

  it('weighs the draw by credibility and price: a cheaper, more credible agent is drawn more often, a dearer one still sometimes', () => {
    const agents = [
      agent({ agentId: 'cheap', providerId: 'p1', prices: { ...PRICE, cpuHour: 0.02 }, credibility: 0.99 }),
      agent({ agentId: 'dear', providerId: 'p2', prices: { ...PRICE, cpuHour: 0.08 }, credibility: 0.99 }),
      agent({ agentId: 'newcomer', providerId: 'p3', prices: { ...PRICE, cpuHour: 0.02 }, credibility: 0.8 }),
    ];
    const random = seeded(2);
    const counts = new Map<string, number>();
    for (let i = 0; i < 3000; i++) {
      const [p] = planExecutions([one()], agents, { random, predict: () => null });
      counts.set(p!.agentId, (counts.get(p!.agentId) ?? 0) + 1);
    }
    expect(counts.get('cheap')!).toBeGreaterThan(counts.get('newcomer')!);
    expect(counts.get('newcomer')!).toBeGreaterThan(counts.get('dear')!);
    expect(counts.get('dear')!).toBeGreaterThan(0);
  });

  it('prefers replicas whose providers share no registration cohort or network prefix with the others on the task', () => {
    const agents = [
      agent({ agentId: 'x1', providerId: 'px1', cohort: 7, prefix: '203.0.113' }),
      agent({ agentId: 'x2', providerId: 'px2', cohort: 7, prefix: '198.51.100' }), // same cohort as x1
      agent({ agentId: 'x3', providerId: 'px3', cohort: 8, prefix: '203.0.113' }), // same prefix as x1
      agent({ agentId: 'y', providerId: 'py', cohort: 9, prefix: '192.0.2', prices: { ...PRICE, cpuHour: 0.09 } }),
    ];
    for (let seed = 1; seed <= 50; seed++) {
      const plan = planExecutions([one('t', { excludedProviders: ['px1'] })], agents, {
        random: seeded(seed),
        predict: () => null,
      });
      expect(plan.map((p) => p.agentId)).toEqual(['y']); // dearer, but the only one independent of px1
    }
  });

  it('puts the first replica of a task on an established provider when one can take it (probation)', () => {
    const agents = [
      agent({ agentId: 'n1', providerId: 'pn1', established: false, credibility: 0.8 }),
      agent({ agentId: 'n2', providerId: 'pn2', established: false, credibility: 0.8 }),
      agent({
        agentId: 'e',
        providerId: 'pe',
        established: true,
        credibility: 0.99,
        prices: { ...PRICE, cpuHour: 0.09 },
      }),
    ];
    for (let seed = 1; seed <= 50; seed++) {
      const plan = planExecutions([task({ taskId: 't', need: 2 })], agents, {
        random: seeded(seed),
        predict: () => null,
      });
      expect(plan.map((p) => p.agentId)).toContain('e');
    }
  });

  it('makes a task wait for a busy established provider rather than put its whole quorum on newcomers', () => {
    const n1 = agent({ agentId: 'n1', providerId: 'pn1', established: false });
    const n2 = agent({ agentId: 'n2', providerId: 'pn2', established: false });
    const busy = agent({ agentId: 'e', providerId: 'pe', freeCpus: 0, running: 4 });
    const t = task({ taskId: 't', need: 2 });
    expect(planExecutions([t], [n1, n2, busy], noRandom)).toEqual([]);
    // Once the task has an established replica, a newcomer may take the next one.
    const started = task({ taskId: 't', need: 1, excludedProviders: ['pe'] });
    expect(planExecutions([started], [n1, busy], noRandom).map((p) => p.agentId)).toEqual(['n1']);
    // With no established provider online (or none that could ever take the task), newcomers run it.
    expect(planExecutions([t], [n1, n2, { ...busy, online: false }], noRandom)).toHaveLength(2);
    expect(planExecutions([t], [n1, n2, { ...busy, totalCpus: 0.25 }], noRandom)).toHaveLength(2);
  });

  it('gives a caught provider no work, and never lets a provider on probation run a task alone', () => {
    const caught = agent({ agentId: 'liar', providerId: 'pl', credibility: 0, established: false });
    expect(rejections(demand(), caught).map((r) => r.code)).toEqual(['caught']);
    const newcomer = agent({ agentId: 'n', providerId: 'pn', established: false, consecutiveValid: 1000 });
    const plan = planExecutions(
      [task({ taskId: 't', need: 2, adaptiveFresh: true })],
      [newcomer, agent({ agentId: 'b', providerId: 'pb', established: false })],
      draws(0, 0),
    );
    expect(plan.every((p) => !p.alone)).toBe(true);
  });

  it('lets a provider that failed a task retry it only when no other provider can take it', () => {
    const agents = [agent({ agentId: 'a', providerId: 'pa' }), agent({ agentId: 'b', providerId: 'pb' })];
    const t = task({ taskId: 't', need: 1, retryProviders: ['pa'] });
    expect(planExecutions([t], agents, noRandom).map((p) => p.agentId)).toEqual(['b']);
    expect(planExecutions([t], [agents[0]!], noRandom).map((p) => p.agentId)).toEqual(['a']);
  });
});

describe('planExecutions properties', () => {
  const agentsArb = fc.uniqueArray(
    fc.record({
      agentId: fc.string({ minLength: 1, maxLength: 4 }),
      provider: fc.integer({ min: 0, max: 4 }),
      totalHalves: fc.integer({ min: 1, max: 16 }),
      usedHalves: fc.integer({ min: 0, max: 16 }),
      freeMemoryMb: fc.integer({ min: 0, max: 8192 }),
      gpus: fc.integer({ min: 0, max: 4 }),
      usedGpus: fc.integer({ min: 0, max: 4 }),
      quotaLeft: fc.integer({ min: 0, max: 6 }),
      allowNetwork: fc.boolean(),
      running: fc.integer({ min: 0, max: 5 }),
      cpuHour: fc.double({ min: 0.01, max: 0.2, noNaN: true }),
      reputation: fc.double({ min: 0, max: 1, noNaN: true }),
      consecutiveValid: fc.integer({ min: 0, max: 40 }),
    }),
    { selector: (a) => a.agentId, maxLength: 8 },
  );
  const tasksArb = fc.array(
    fc.record({
      job: fc.integer({ min: 0, max: 3 }),
      need: fc.integer({ min: 0, max: 4 }),
      cpuHalves: fc.integer({ min: 1, max: 8 }),
      memoryMb: fc.integer({ min: 16, max: 4096 }),
      gpus: fc.integer({ min: 0, max: 2 }),
      network: fc.boolean(),
      adaptiveFresh: fc.boolean(),
      excluded: fc.subarray([0, 1, 2, 3, 4]),
    }),
    { maxLength: 12 },
  );

  it('never over-commits an agent (cores, memory, GPUs, quota), never doubles a task on a provider, and honours every constraint', () => {
    fc.assert(
      fc.property(agentsArb, tasksArb, fc.double({ min: 0, max: 0.999, noNaN: true }), (as, ts, r) => {
        const agents: SchedAgent[] = as.map((a) =>
          agent({
            agentId: a.agentId,
            providerId: `p${a.provider}`,
            totalCpus: a.totalHalves / 2,
            freeCpus: Math.max(0, a.totalHalves - a.usedHalves) / 2,
            freeMemoryMb: a.freeMemoryMb,
            gpuModels: Array.from({ length: a.gpus }, () => 'T4'),
            freeGpus: Math.max(0, a.gpus - a.usedGpus),
            quotaLeft: a.quotaLeft,
            allowNetwork: a.allowNetwork,
            running: a.running,
            prices: { ...PRICE, cpuHour: a.cpuHour },
            reputation: a.reputation,
            consecutiveValid: a.consecutiveValid,
          }),
        );
        const tasks: SchedTask[] = ts.map((t, i) =>
          task({
            taskId: `t${i}`,
            jobId: `j${t.job}`,
            jobCreatedAt: t.job * 10,
            index: i,
            need: t.need,
            adaptiveFresh: t.adaptiveFresh,
            excludedProviders: t.excluded.map((p) => `p${p}`),
            demand: { cpus: t.cpuHalves / 2, memoryMb: t.memoryMb, gpus: t.gpus, network: t.network },
          }),
        );
        const plan = planExecutions(
          tasks,
          agents,
          withRandom(r, (id) => 1000 + id.length * 100),
        );
        const agentById = new Map(agents.map((a) => [a.agentId, a]));
        const taskById = new Map(tasks.map((t) => [t.taskId, t]));
        const use = new Map<string, { cpus: number; mem: number; gpus: number; n: number }>();
        const pairs = new Set<string>();
        for (const p of plan) {
          const a = agentById.get(p.agentId)!;
          const t = taskById.get(p.taskId)!;
          expect(p.providerId).toBe(a.providerId);
          expect(t.excludedProviders).not.toContain(p.providerId);
          expect(staticRejections(t.demand, a)).toEqual([]);
          if (t.demand.network) expect(a.allowNetwork).toBe(true);
          if (p.alone) expect(t.adaptiveFresh && a.consecutiveValid >= 10).toBe(true);
          const pair = `${p.taskId}@${p.providerId}`;
          expect(pairs.has(pair)).toBe(false);
          pairs.add(pair);
          const u = use.get(a.agentId) ?? { cpus: 0, mem: 0, gpus: 0, n: 0 };
          use.set(a.agentId, {
            cpus: u.cpus + t.demand.cpus,
            mem: u.mem + t.demand.memoryMb,
            gpus: u.gpus + t.demand.gpus,
            n: u.n + 1,
          });
        }
        for (const [id, u] of use) {
          const a = agentById.get(id)!;
          expect(u.cpus).toBeLessThanOrEqual(a.freeCpus);
          expect(u.mem).toBeLessThanOrEqual(a.freeMemoryMb);
          expect(u.gpus).toBeLessThanOrEqual(a.freeGpus);
          expect(u.n).toBeLessThanOrEqual(a.quotaLeft);
        }
        for (const [taskId, n] of countBy(plan, (p) => p.taskId)) {
          expect(n).toBeLessThanOrEqual(taskById.get(taskId)!.need);
          if (plan.some((p) => p.taskId === taskId && p.alone)) expect(n).toBe(1);
        }
      }),
      { numRuns: 300 },
    );
  });
});
