/**
 * Pricing: what one execution costs at an offer's prices, the most it can cost under a job's maximum prices
 * (what escrow holds), and a quote per verification mode. Golem's linear model: a start fee plus rates over
 * the execution's duration (`start_fee + duration × rate`), where the rate sums the reserved cores, memory
 * and GPUs at their hourly prices. Duration is the container's measured wall time, capped at the job's
 * timeout, so a cost never exceeds the escrowed maximum. All amounts are micro-credits (integers).
 */
import type { JobSpec, MaxPrice, Price, VerificationMode } from '../protocol/index.js';
import { DeqoError } from './errors.js';
import { formatCredits } from './format.js';
import { MAX_MICRO, toMicro } from './money.js';
import { defaultMaxExecutions } from './verification.js';

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

/**
 * The platform's cut of a payment, µcr: `feeBps` basis points (1/100 of a percent), rounded down. Exact for any
 * amount up to MAX_MICRO and feeBps up to 10,000: the amount is split as q·10,000 + r so no product passes 2⁵³.
 */
export function platformFee(amount: number, feeBps: number): number {
  const q = Math.floor(amount / 10_000);
  const r = amount - q * 10_000;
  return q * feeBps + Math.floor((r * feeBps) / 10_000);
}

/** Executions a task may be paid for when it starts: what escrow holds per task for each mode. */
export function fundedExecutions(mode: VerificationMode, replicas: number): number {
  return mode === 'none' ? 1 : replicas;
}

/**
 * What a job holds in escrow at submission, µcr: per execution, executions funded per task, the determinism probe's
 * pair (core/probe.ts; 0 without one), the total, and the most it can ever hold (every task topped up to
 * maxExecutions, and the probe), which is at most MAX_MICRO.
 */
export interface JobEscrow {
  executionMaxCost: number;
  fundedPerTask: number;
  probe: number;
  total: number;
  worstCase: number;
}

/** Executions in a determinism probe pair (core/probe.ts). */
export const PROBE_PAIR = 2;

/**
 * The escrow of a job of `tasks` tasks: every funded execution (fundedExecutions) running to its timeout at the
 * job's maximum prices (executionMaxCost), plus the probe pair's two when the spec asks for a determinism check.
 * The one formula `deqo quote` shows and submission holds. Throws DeqoError validation_failed (field `maxPrice`)
 * when an execution would cost nothing (below MIN_EXECUTION_MICRO), or when the job's worst case — tasks × maxExecutions × the most one execution costs, plus the probe — exceeds
 * MAX_MICRO: below it every escrow, top-up and payment of the job is an exact integer.
 */
export function jobEscrow(spec: Pick<JobSpec, 'resources' | 'maxPrice' | 'verification'>, tasks: number): JobEscrow {
  const perMax = executionMaxCost(spec);
  if (perMax < MIN_EXECUTION_MICRO) throw freeJob();
  const v = spec.verification;
  const fundedPerTask = fundedExecutions(v.mode, v.replicas);
  const maxExecutions = v.maxExecutions ?? defaultMaxExecutions(v.replicas);
  const probe = v.checkDeterminism ? PROBE_PAIR * perMax : 0;
  // Products and sums of non-negative integers: exact whenever the result is at most MAX_MICRO (< 2⁵³), checked.
  const worstCase = perMax * maxExecutions * tasks + probe;
  if (!(worstCase <= MAX_MICRO)) throw escrowTooLarge(perMax, maxExecutions, tasks);
  return { executionMaxCost: perMax, fundedPerTask, probe, total: perMax * fundedPerTask * tasks + probe, worstCase };
}

/**
 * The least a job must offer per execution, µcr (the ledger's unit): a job whose maximum prices make every execution
 * free holds no escrow, so an account without credits could fill the queue with work nobody is paid for.
 */
export const MIN_EXECUTION_MICRO = 1;

/** The validation_failed error of a job whose maximum prices make every execution free (below 1 µcr). */
function freeJob(): DeqoError {
  const message =
    'at these maximum prices an execution would pay its provider nothing (timeout × resources × maxPrice + ' +
    'startFee rounds to 0): offer at least 1 µcr (0.000001 credits) per execution, e.g. maxPrice.startFee';
  return new DeqoError('validation_failed', message, [{ path: 'maxPrice', message }]);
}

/** The validation_failed error of a job whose worst-case cost the ledger cannot count exactly. */
function escrowTooLarge(perMax: number, maxExecutions: number, tasks: number): DeqoError {
  const message =
    `the job could cost up to ${tasks} task(s) × ${maxExecutions} execution(s) × ${formatCredits(perMax)} ` +
    `at most each, over the ledger's bound of ${formatCredits(MAX_MICRO)}: lower maxPrice, resources, ` +
    `timeoutSeconds, verification.maxExecutions or the number of tasks`;
  return new DeqoError('validation_failed', message, [{ path: 'maxPrice', message }]);
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
