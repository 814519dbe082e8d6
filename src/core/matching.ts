/**
 * Matching: whether an agent's offer can take a job's executions, and if not, why — the one predicate the
 * scheduler uses and `deqo explain` shows. Static reasons (the machine can never run the job: too few cores,
 * wrong arch, price above the maximum …) come before dynamic ones (offline, outside its window, owner busy,
 * at capacity, quota used up), so the first reason is the most useful one to read.
 */
import type { Availability, JobSpec, MaxPrice, Price } from '../protocol/index.js';
import { outputFsPlan } from './disk.js';

/** What every execution of a job needs. Resources in cores, MiB, GPUs; `timeoutMs` ms. */
export interface Demand {
  cpus: number;
  memoryMb: number;
  gpus: number;
  network: boolean;
  arch?: string | undefined;
  os?: string | undefined;
  gpuModel?: string | undefined;
  labels: Record<string, string>;
  minReputation?: number | undefined;
  /** Agent or provider ids the buyer picked; undefined = any. */
  providers?: readonly string[] | undefined;
  maxPrice: MaxPrice;
  image: string;
  timeoutMs: number;
  /**
   * Disk an execution may take on the provider, MiB: its output filesystem (disk.ts outputFsPlan: the output cap and
   * room for rounding) plus its inputs (each distinct blob once), rounded up. Absent on jobs stored before it existed: 0.
   */
  diskMb?: number | undefined;
}

const MIB = 1024 * 1024;

/**
 * The demand of a job spec (what each of its executions needs). `inputBytes`: the size of its distinct input blobs,
 * bytes (the agent stores each blob once).
 */
export function demandOf(spec: JobSpec, inputBytes = 0): Demand {
  const c = spec.constraints;
  return {
    cpus: spec.resources.cpus,
    memoryMb: spec.resources.memoryMb,
    diskMb: Math.ceil((outputFsPlan(spec.limits.outputBytes).bytes + inputBytes) / MIB),
    gpus: spec.resources.gpus,
    network: spec.network,
    arch: c.arch,
    os: c.os,
    gpuModel: c.gpuModel,
    labels: c.labels,
    minReputation: c.minReputation,
    providers: c.providers,
    maxPrice: spec.maxPrice,
    image: spec.image,
    timeoutMs: spec.resources.timeoutSeconds * 1000,
  };
}

/** An agent as the scheduler sees it: its offer, what it has free now, and its provider's record. */
export interface SchedAgent {
  agentId: string;
  providerId: string;
  name: string;
  online: boolean;
  availability: Availability['state'];
  totalCpus: number;
  freeCpus: number;
  totalMemoryMb: number;
  freeMemoryMb: number;
  /** Disk its offer lends for inputs and outputs (offer.diskMb), MiB, and what the executions it holds leave of it. */
  totalDiskMb: number;
  freeDiskMb: number;
  gpuModels: readonly string[];
  freeGpus: number;
  arch: string;
  os: string;
  allowNetwork: boolean;
  labels: Readonly<Record<string, string>>;
  prices: Price;
  /** Reputation score in [0, 1] (core/reputation.ts). */
  reputation: number;
  consecutiveValid: number;
  /** Its provider's credibility in [0, 1) (core/credibility.ts): the chance its next result is right. */
  credibility: number;
  /** Its provider is off probation (credibility.ts isEstablished). */
  established: boolean;
  /** Its provider's registration cohort (the hour its account was created): accounts made together may be one party. */
  cohort: number;
  /** The network address prefix it registered from ('' when unknown): agents behind one prefix may be one party. */
  prefix: string;
  /** Executions the provider may still start today (daily quota − started in the last 24 h). */
  quotaLeft: number;
  running: number;
}

/** Why an agent cannot take a job's execution. */
export type RejectionCode =
  | 'not_picked'
  | 'arch'
  | 'os'
  | 'cpus'
  | 'memory'
  | 'disk'
  | 'gpus'
  | 'gpu_model'
  | 'network'
  | 'labels'
  | 'price'
  | 'reputation'
  | 'offline'
  | 'outside_window'
  | 'owner_busy'
  | 'draining'
  | 'at_capacity'
  | 'quota_exhausted'
  | 'already_ran'
  | 'caught';

export interface Rejection {
  code: RejectionCode;
  message: string;
}

const round = (x: number) => Math.round(x * 1e6) / 1e6;

/** Reasons the agent can never run this job as offered (empty when it could). */
export function staticRejections(d: Demand, a: SchedAgent): Rejection[] {
  const out: Rejection[] = [];
  if (a.credibility <= 0)
    out.push({ code: 'caught', message: 'was caught returning wrong results: it gets no more work' });
  if (d.providers && !d.providers.includes(a.agentId) && !d.providers.includes(a.providerId)) {
    out.push({ code: 'not_picked', message: 'not among the providers the job picked (constraints.providers)' });
  }
  if (d.arch && d.arch !== a.arch) out.push({ code: 'arch', message: `arch is ${a.arch}, the job needs ${d.arch}` });
  if (d.os && d.os !== a.os) out.push({ code: 'os', message: `OS is ${a.os}, the job needs ${d.os}` });
  if (a.totalCpus + 1e-9 < d.cpus)
    out.push({ code: 'cpus', message: `lends ${a.totalCpus} cores, the job needs ${d.cpus}` });
  if (a.totalMemoryMb < d.memoryMb)
    out.push({ code: 'memory', message: `lends ${a.totalMemoryMb} MiB, the job needs ${d.memoryMb}` });
  if (a.totalDiskMb < (d.diskMb ?? 0))
    out.push({
      code: 'disk',
      message: `lends ${a.totalDiskMb} MiB of disk, the job needs ${d.diskMb} (outputs filesystem + inputs)`,
    });
  if (a.gpuModels.length < d.gpus)
    out.push({ code: 'gpus', message: `has ${a.gpuModels.length} GPUs, the job needs ${d.gpus}` });
  if (d.gpuModel && d.gpus > 0) {
    const want = d.gpuModel.toLowerCase();
    const matching = a.gpuModels.filter((m) => m.toLowerCase().includes(want)).length;
    if (matching < d.gpus)
      out.push({
        code: 'gpu_model',
        message: `has ${matching} GPUs matching "${d.gpuModel}", the job needs ${d.gpus}`,
      });
  }
  if (d.network && !a.allowNetwork)
    out.push({ code: 'network', message: 'does not allow network access, the job asks for it' });
  const missing = Object.entries(d.labels).filter(([k, v]) => a.labels[k] !== v);
  if (missing.length > 0)
    out.push({ code: 'labels', message: `lacks label ${missing.map(([k, v]) => `${k}=${v}`).join(', ')}` });
  const over = (['cpuHour', 'memoryGiBHour', 'gpuHour', 'startFee'] as const).filter(
    (k) =>
      a.prices[k] > d.maxPrice[k] + 1e-12 &&
      (k !== 'gpuHour' || d.gpus > 0) &&
      (k !== 'memoryGiBHour' || d.memoryMb > 0),
  );
  if (over.length > 0) {
    out.push({
      code: 'price',
      message: `price above the job's maximum: ${over.map((k) => `${k} ${round(a.prices[k])} > ${round(d.maxPrice[k])}`).join(', ')}`,
    });
  }
  if (d.minReputation !== undefined && a.reputation + 1e-12 < d.minReputation) {
    out.push({
      code: 'reputation',
      message: `reputation ${a.reputation.toFixed(2)} is below the job's minimum ${d.minReputation}`,
    });
  }
  return out;
}

/** Reasons the agent cannot take an execution now (offline, window, owner, capacity, quota). */
export function dynamicRejections(d: Demand, a: SchedAgent): Rejection[] {
  if (!a.online) return [{ code: 'offline', message: 'offline (no heartbeat recently)' }];
  if (a.availability === 'outside_window')
    return [{ code: 'outside_window', message: 'outside its availability window' }];
  if (a.availability === 'owner_busy')
    return [{ code: 'owner_busy', message: 'its owner is using the machine (idle policy)' }];
  if (a.availability === 'draining') return [{ code: 'draining', message: 'shutting down' }];
  const out: Rejection[] = [];
  if (
    a.freeCpus + 1e-9 < d.cpus ||
    a.freeMemoryMb < d.memoryMb ||
    a.freeGpus < d.gpus ||
    a.freeDiskMb < (d.diskMb ?? 0)
  ) {
    out.push({
      code: 'at_capacity',
      message: `at capacity: ${round(a.freeCpus)} cores, ${a.freeMemoryMb} MiB, ${a.freeGpus} GPUs, ${a.freeDiskMb} MiB of disk free`,
    });
  }
  if (a.quotaLeft <= 0)
    out.push({ code: 'quota_exhausted', message: 'daily quota of executions used up (it grows with valid results)' });
  return out;
}

/** Every reason, static first. Empty = the agent can take an execution of the job now. */
export function rejections(d: Demand, a: SchedAgent): Rejection[] {
  const s = staticRejections(d, a);
  return s.length > 0 ? s : dynamicRejections(d, a);
}
