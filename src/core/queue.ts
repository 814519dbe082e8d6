/**
 * The queue as a scheduling round reads it: which demand classes some online agent can take now, how many
 * executions it could take of each, and the fair order across buyers. A round reads candidate tasks only from takeable
 * classes, a bounded number of them, in this order — so one account's untakeable tasks (a price no provider accepts,
 * resources nobody lends) never fill the round's window, and a buyer with a long queue does not starve one with a
 * short job (issues 12, 13).
 *
 * Fair share: the buyer with the fewest running executions goes first, each task it is given counting as one more;
 * ties go to the oldest task (job creation, job id, task index), then buyer id. This is round-robin among buyers with
 * equal load, after max-min fair share (each buyer's share of the machines equalized, as in HTCondor's fair-share
 * negotiator and Hadoop's fair scheduler).
 */
import { rejections, type Demand, type SchedAgent } from './matching.js';

/** An open job as a round reads it: its buyer, age (ms), demand and the text it is stored as (the class key). */
export interface OpenJob {
  jobId: string;
  buyerId: string;
  createdAt: number;
  /** The job's demand as stored: jobs with the same text are one demand class. */
  demandKey: string;
  demand: Demand;
  adaptive: boolean;
  /** Its tasks still open (queued or running). */
  openTasks: number;
}

/** One buyer's open jobs with one demand, oldest first. */
export interface QueueClass {
  buyerId: string;
  demandKey: string;
  demand: Demand;
  jobs: OpenJob[];
}

/** Whether an agent could take another execution of some task: every demand asks for some CPU (cpus > 0). */
export const hasRoom = (a: SchedAgent): boolean =>
  a.online && a.availability === 'available' && a.freeCpus > 1e-9 && a.quotaLeft > 0;

/**
 * How many executions of a demand the agents could start now: over the agents that can take it (core/matching.ts
 * rejections: price, resources, labels, window, capacity, quota), the copies that fit in each one's free cores, memory,
 * GPUs, disk and quota. 0: the class is untakeable this round.
 */
export function slotsFor(d: Demand, agents: readonly SchedAgent[]): number {
  let n = 0;
  for (const a of agents) {
    if (rejections(d, a).length > 0) continue;
    const fits = [
      Math.floor((a.freeCpus + 1e-9) / d.cpus),
      d.memoryMb > 0 ? Math.floor(a.freeMemoryMb / d.memoryMb) : Infinity,
      d.gpus > 0 ? Math.floor(a.freeGpus / d.gpus) : Infinity,
      (d.diskMb ?? 0) > 0 ? Math.floor(a.freeDiskMb / d.diskMb!) : Infinity,
      a.quotaLeft,
    ];
    n += Math.max(0, Math.min(...fits));
  }
  return n;
}

/** Open jobs grouped by buyer and demand, each class's jobs oldest first (in the order given when it is by age). */
export function queueClasses(jobs: readonly OpenJob[]): QueueClass[] {
  const byKey = new Map<string, QueueClass>();
  for (const j of jobs) {
    const key = `${j.buyerId}\u0000${j.demandKey}`;
    const c = byKey.get(key);
    if (c) c.jobs.push(j);
    else byKey.set(key, { buyerId: j.buyerId, demandKey: j.demandKey, demand: j.demand, jobs: [j] });
  }
  for (const c of byKey.values()) c.jobs.sort((a, b) => a.createdAt - b.createdAt || a.jobId.localeCompare(b.jobId));
  return [...byKey.values()];
}

/** What fair order reads of an item: its buyer and its age (job creation ms, job id, task index). */
export interface FairItem {
  buyerId: string;
  jobCreatedAt: number;
  jobId: string;
  index: number;
}

const older = (a: FairItem, b: FairItem): number =>
  a.jobCreatedAt - b.jobCreatedAt || a.jobId.localeCompare(b.jobId) || a.index - b.index;

/**
 * Items in fair order across buyers: repeatedly the buyer with the fewest running executions (`running`, by buyer id;
 * absent = 0) plus items already given, its oldest item; ties to the oldest item, then buyer id. Pure; O(n × buyers).
 */
export function fairOrder<T extends FairItem>(items: readonly T[], running: ReadonlyMap<string, number>): T[] {
  const queues = new Map<string, T[]>();
  for (const t of items) {
    const q = queues.get(t.buyerId);
    if (q) q.push(t);
    else queues.set(t.buyerId, [t]);
  }
  const heads = [...queues].map(([buyerId, q]) => ({
    buyerId,
    q: q.sort(older),
    at: 0,
    load: running.get(buyerId) ?? 0,
  }));
  const out: T[] = [];
  while (out.length < items.length) {
    let best: (typeof heads)[number] | undefined;
    for (const h of heads) {
      if (h.at >= h.q.length) continue;
      if (
        !best ||
        h.load - best.load < 0 ||
        (h.load === best.load && (older(h.q[h.at]!, best.q[best.at]!) || h.buyerId.localeCompare(best.buyerId)) < 0)
      )
        best = h;
    }
    out.push(best!.q[best!.at++]!);
    best!.load += 1;
  }
  return out;
}

/** Classes in fair order: the buyer with the fewest running executions first, then the class's oldest job. */
export function fairClassOrder(classes: readonly QueueClass[], running: ReadonlyMap<string, number>): QueueClass[] {
  const items = classes.map((c) => ({
    c,
    buyerId: c.buyerId,
    jobCreatedAt: c.jobs[0]?.createdAt ?? 0,
    jobId: c.jobs[0]?.jobId ?? '',
    index: 0,
  }));
  return fairOrder(items, running).map((x) => x.c);
}
