/**
 * Pricing: what one execution costs at an offer's prices, the most it can cost under a job's maximum prices
 * (what escrow holds), and a quote per verification mode. Golem's linear model: a start fee plus rates over
 * the execution's duration (`start_fee + duration × rate`), where the rate sums the reserved cores, memory
 * and GPUs at their hourly prices. Duration is the container's measured wall time, capped at the job's
 * timeout, so a cost never exceeds the escrowed maximum. All amounts are micro-credits (integers).
 */
import type { JobSpec, MaxPrice, Price, VerificationMode } from '../protocol/index.js';
import { toMicro } from './money.js';

const MS_PER_HOUR = 3_600_000;
const MIB_PER_GIB = 1024;

/** Resources an execution reserves: cores, MiB, GPUs. */
export interface Reserved {
  cpus: number;
  memoryMb: number;
  gpus: number;
}

/** Hourly rate of `reserved` at `price`, credits per hour (not rounded). */
export function hourlyRate(price: Price | MaxPrice, reserved: Reserved): number {
  return (
    reserved.cpus * price.cpuHour +
    (reserved.memoryMb / MIB_PER_GIB) * price.memoryGiBHour +
    reserved.gpus * price.gpuHour
  );
}

/**
 * Cost of one execution, µcr: start fee + hourly rate × wall time (capped at `timeoutMs`). Rounded up to
 * the micro-credit so a provider is never short-changed by rounding, but never above `executionMaxCost`.
 */
export function executionCost(price: Price | MaxPrice, reserved: Reserved, wallMs: number, timeoutMs: number): number {
  const hours = Math.min(Math.max(wallMs, 0), timeoutMs) / MS_PER_HOUR;
  return toMicro(price.startFee) + Math.ceil(hourlyRate(price, reserved) * hours * 1_000_000 - 1e-6);
}

/** The most one execution of a job can cost at its maximum prices and timeout, µcr. */
export function executionMaxCost(spec: Pick<JobSpec, 'resources' | 'maxPrice'>): number {
  const timeoutMs = spec.resources.timeoutSeconds * 1000;
  return executionCost(spec.maxPrice, reservedOf(spec), timeoutMs, timeoutMs);
}

/** What a job reserves per execution. */
function reservedOf(spec: Pick<JobSpec, 'resources'>): Reserved {
  return { cpus: spec.resources.cpus, memoryMb: spec.resources.memoryMb, gpus: spec.resources.gpus };
}

/** The platform's cut of a payment, µcr: `feeBps` basis points (1/100 of a percent), rounded down. */
export function platformFee(amount: number, feeBps: number): number {
  return Math.floor((amount * feeBps) / 10_000);
}

/** Executions a task may be paid for when it starts: what escrow holds per task for each mode. */
export function fundedExecutions(mode: VerificationMode, replicas: number): number {
  return mode === 'none' ? 1 : replicas;
}

/**
 * What a job holds in escrow at submission, µcr: per execution, executions funded per task, the determinism probe's
 * pair (core/probe.ts; 0 without one), and the total.
 */
export interface JobEscrow {
  executionMaxCost: number;
  fundedPerTask: number;
  probe: number;
  total: number;
}

/** Executions in a determinism probe pair (core/probe.ts). */
export const PROBE_PAIR = 2;

/**
 * The escrow of a job of `tasks` tasks: every funded execution (fundedExecutions) running to its timeout at the
 * job's maximum prices (executionMaxCost), plus the probe pair's two when the spec asks for a determinism check.
 * The one formula `deqo quote` shows and submission holds.
 */
export function jobEscrow(spec: Pick<JobSpec, 'resources' | 'maxPrice' | 'verification'>, tasks: number): JobEscrow {
  const executionMaxCostMicro = executionMaxCost(spec);
  const fundedPerTask = fundedExecutions(spec.verification.mode, spec.verification.replicas);
  const probe = spec.verification.checkDeterminism ? PROBE_PAIR * executionMaxCostMicro : 0;
  return {
    executionMaxCost: executionMaxCostMicro,
    fundedPerTask,
    probe,
    total: executionMaxCostMicro * fundedPerTask * tasks + probe,
  };
}

/**
 * Escrow (µcr) a task must have held before its target may rise to `target` executions: one execution's maximum
 * cost for each beyond the `funded` ones; 0 when already funded.
 */
export function topUpCost(funded: number, target: number, executionMaxCostMicro: number): number {
  return Math.max(0, target - funded) * executionMaxCostMicro;
}

/** One line of a quote: executions per task and the job's maximum cost under a verification mode. */
export interface ModeQuote {
  mode: VerificationMode;
  executionsPerTask: number;
  maxCost: number;
  expectedCost: number;
}

/**
 * Prices a job before submission, µcr. `maxCost` is what escrow holds (every funded execution running to
 * its timeout at the maximum prices); `expectedCost` assumes each execution runs `expectedWallMs` at the
 * maximum prices (the caller passes the timeout when it has no better guess). For `adaptive`, `trustedShare`
 * is the expected share of tasks that run alone (from providers' reputations; 0 when unknown).
 */
export function quoteModes(
  spec: Pick<JobSpec, 'resources' | 'maxPrice' | 'verification'>,
  tasks: number,
  opts: { expectedWallMs: number; trustedShare: number },
): ModeQuote[] {
  const perMax = executionMaxCost(spec);
  const perExpected = executionCost(
    spec.maxPrice,
    reservedOf(spec),
    opts.expectedWallMs,
    spec.resources.timeoutSeconds * 1000,
  );
  // Replication is shown at the spec's replicas, or at 3 (2-of-3) when the spec asks for one execution.
  const replicas = spec.verification.replicas > 1 ? spec.verification.replicas : 3;
  const line = (mode: VerificationMode, perTask: number, expectedPerTask: number): ModeQuote => ({
    mode,
    executionsPerTask: perTask,
    maxCost: perTask * tasks * perMax,
    expectedCost: Math.round(expectedPerTask * tasks * perExpected),
  });
  const trusted = Math.min(1, Math.max(0, opts.trustedShare));
  return [
    line('none', 1, 1),
    line('replicate', replicas, replicas),
    line('adaptive', replicas, trusted * 1 + (1 - trusted) * replicas),
  ];
}
