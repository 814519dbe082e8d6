/**
 * Unit tests of core/queue.ts, the pure rules a scheduling round reads the queue by: fair order across buyers (fewest
 * running executions first, then age), grouping open jobs into classes, which classes agents can take now and how many
 * executions of each, and the planner serving tasks in their fair rank.
 */
import { describe, expect, it } from 'vitest';
import {
  fairClassOrder,
  fairOrder,
  planExecutions,
  queueClasses,
  slotsFor,
  type Demand,
  type FairItem,
  type OpenJob,
  type SchedAgent,
} from '../../src/core/index.js';

const PRICE = { cpuHour: 0.05, memoryGiBHour: 0.005, gpuHour: 0.5, startFee: 0.001 };

function demand(over: Partial<Demand> = {}): Demand {
  return {
    cpus: 1,
    memoryMb: 512,
    gpus: 0,
    network: false,
    labels: {},
    maxPrice: { cpuHour: 0.1, memoryGiBHour: 0.01, gpuHour: 1, startFee: 0.002 },
    image: 'deqo/busybox:test',
    timeoutMs: 600_000,
    ...over,
  };
}

function agent(over: Partial<SchedAgent> = {}): SchedAgent {
  return {
    agentId: 'agent_1',
    providerId: 'prov_1',
    name: 'box',
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
    cohort: 1,
    prefix: '',
    quotaLeft: 100,
    running: 0,
    ...over,
  };
}

const item = (
  buyerId: string,
  jobCreatedAt: number,
  index = 0,
  jobId = `job_${buyerId}_${jobCreatedAt}`,
): FairItem => ({
  buyerId,
  jobCreatedAt,
  jobId,
  index,
});
const names = (xs: readonly FairItem[]) => xs.map((x) => `${x.buyerId}${x.index}`);

describe('fairOrder', () => {
  it('alternates between buyers with equal load, oldest task first, however long one queue is', () => {
    const a = Array.from({ length: 5 }, (_, i) => item('a', 1, i));
    const b = [item('b', 50, 0), item('b', 50, 1)];
    expect(names(fairOrder([...a, ...b], new Map()))).toEqual(['a0', 'b0', 'a1', 'b1', 'a2', 'a3', 'a4']);
  });

  it('puts the buyer with the fewest running executions first, even behind older tasks', () => {
    const a = Array.from({ length: 3 }, (_, i) => item('a', 1, i));
    const b = [item('b', 99, 0)];
    expect(names(fairOrder([...a, ...b], new Map([['a', 2]])))).toEqual(['b0', 'a0', 'a1', 'a2']);
    // With a's lead of 2 executions, b's later tasks come before a's until the loads meet.
    const b3 = Array.from({ length: 3 }, (_, i) => item('b', 99, i));
    expect(names(fairOrder([...a, ...b3], new Map([['a', 2]])))).toEqual(['b0', 'b1', 'a0', 'b2', 'a1', 'a2']);
  });

  it('orders one buyer by job age, job id, then index, and breaks a full tie by buyer id', () => {
    const xs = [item('a', 5, 1, 'j2'), item('a', 5, 0, 'j2'), item('a', 5, 0, 'j1'), item('a', 1, 7, 'j9')];
    expect(fairOrder(xs, new Map()).map((x) => `${x.jobId}/${x.index}`)).toEqual(['j9/7', 'j1/0', 'j2/0', 'j2/1']);
    expect(names(fairOrder([item('z', 1, 0, 'j'), item('y', 1, 0, 'j')], new Map()))).toEqual(['y0', 'z0']);
  });

  it('keeps every item exactly once', () => {
    const xs = Array.from({ length: 40 }, (_, i) => item(`b${i % 7}`, i % 5, i));
    const out = fairOrder(xs, new Map([['b3', 4]]));
    expect(out).toHaveLength(xs.length);
    expect(new Set(out)).toEqual(new Set(xs));
  });
});

describe('queue classes and what agents can take', () => {
  const job = (jobId: string, buyerId: string, createdAt: number, d: Demand): OpenJob => ({
    jobId,
    buyerId,
    createdAt,
    demandKey: JSON.stringify(d),
    demand: d,
    adaptive: false,
    openTasks: 1,
  });

  it('groups open jobs by buyer and demand, oldest job first, and orders classes fairly', () => {
    const cheap = demand({ maxPrice: { cpuHour: 0, memoryGiBHour: 0, gpuHour: 0, startFee: 0 } });
    const jobs = [
      job('j3', 'a', 3, demand()),
      job('j1', 'a', 1, cheap),
      job('j2', 'a', 2, cheap),
      job('j4', 'b', 9, demand()),
    ];
    const classes = queueClasses(jobs);
    expect(classes.map((c) => [c.buyerId, c.jobs.map((j) => j.jobId)])).toEqual([
      ['a', ['j3']],
      ['a', ['j1', 'j2']],
      ['b', ['j4']],
    ]);
    expect(fairClassOrder(classes, new Map()).map((c) => c.jobs[0]!.jobId)).toEqual(['j1', 'j4', 'j3']);
    expect(fairClassOrder(classes, new Map([['a', 1]])).map((c) => c.jobs[0]!.jobId)).toEqual(['j4', 'j1', 'j3']);
  });

  it('counts the executions agents could start of a demand, and none for a price, resources or labels nobody offers', () => {
    const agents = [agent({ freeCpus: 3.5, quotaLeft: 10 }), agent({ agentId: 'agent_2', freeCpus: 4, quotaLeft: 2 })];
    expect(slotsFor(demand({ cpus: 1 }), agents)).toBe(3 + 2);
    expect(slotsFor(demand({ cpus: 2, memoryMb: 4096 }), agents)).toBe(1 + 2);
    expect(slotsFor(demand({ diskMb: 4096 }), agents)).toBe(2 + 2);
    expect(slotsFor(demand({ maxPrice: { cpuHour: 0, memoryGiBHour: 0, gpuHour: 0, startFee: 0 } }), agents)).toBe(0);
    expect(slotsFor(demand({ cpus: 64 }), agents)).toBe(0);
    expect(slotsFor(demand({ labels: { zone: 'moon' } }), agents)).toBe(0);
    expect(slotsFor(demand(), [agent({ online: false })])).toBe(0);
  });
});

describe('planExecutions and fair rank', () => {
  it('serves ranked tasks in rank order before age, so the fair order decides who gets the last core', () => {
    const t = (taskId: string, jobCreatedAt: number, rank?: number) => ({
      taskId,
      jobId: `job_${taskId}`,
      jobCreatedAt,
      index: 0,
      need: 1,
      demand: demand(),
      excludedProviders: [],
      adaptiveFresh: false,
      ...(rank === undefined ? {} : { rank }),
    });
    const one = [agent({ freeCpus: 1 })];
    const opts = { random: () => 0, predict: () => null };
    expect(planExecutions([t('old', 1), t('new', 2)], one, opts).map((p) => p.taskId)).toEqual(['old']);
    expect(planExecutions([t('old', 1, 1), t('new', 2, 0)], one, opts).map((p) => p.taskId)).toEqual(['new']);
    expect(planExecutions([t('old', 1), t('new', 2, 0)], one, opts).map((p) => p.taskId)).toEqual(['new']);
  });
});
