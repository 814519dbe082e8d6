/**
 * Quotes: what a job would cost before it is submitted — the escrow its spec holds and the maximum and
 * expected cost of each verification mode — against the buyer's balance and the providers online now.
 */
import {
  accountLedger,
  adaptiveTrustedShare,
  demandOf,
  fromMicro,
  quoteModes,
  rejections,
  replicasFor,
} from '../core/index.js';
import type { JobSpec, Quote } from '../protocol/index.js';
import type { Engine } from './engine.js';
import { admit } from './submission.js';

/** Prices `spec` for `buyerId`. Throws DeqoError validation_failed as submission's admit does (the same checks). */
export async function quoteJob(engine: Engine, buyerId: string, spec: JobSpec): Promise<Quote> {
  const admitted = admit(spec);
  const tasks = admitted.tasks.length;
  const now = engine.now();
  let inputBytes = 0;
  for (const blob of new Set(spec.inputs.map((i) => i.blob)))
    inputBytes += (await engine.store.accounts.blobSize(blob)) ?? 0;
  const demand = demandOf(spec, inputBytes);
  const { agents } = await engine.store.snapshot.agents(now, now - engine.config.agentTtlMs, false, engine.policy);
  const matching = agents.filter((a) => rejections(demand, a).filter((r) => r.code !== 'at_capacity').length === 0);
  const predict = await engine.scheduling.predictor();
  const predicted = matching
    .map((a) => predict(a.agentId, spec.image, spec.resources.cpus))
    .filter((x): x is number => x !== null);
  const expectedMs =
    predicted.length > 0
      ? predicted.reduce((x, y) => x + y, 0) / predicted.length
      : spec.resources.timeoutSeconds * 1000;
  const modes = quoteModes(spec, tasks, {
    expectedWallMs: expectedMs,
    trustedShare: adaptiveTrustedShare(matching.map((a) => a.consecutiveValid)),
  });
  const { executionMaxCost: perMax, total: escrow } = admitted.escrow;
  const maxError = spec.verification.maxError;
  const meanCredibility =
    matching.length > 0
      ? matching.reduce((s, a) => s + a.credibility, 0) / matching.length
      : 1 - engine.policy.credibility.saboteurFraction;
  const boundExecutions =
    maxError === undefined
      ? null
      : Math.max(
          spec.verification.quorum,
          replicasFor(maxError, meanCredibility, spec.verification.maxExecutions ?? 64),
        );
  const perExpected = modes.find((m) => m.mode === 'none')!.expectedCost;
  const balance = await engine.store.ledger.balance(accountLedger(buyerId));
  return {
    tasks,
    mode: spec.verification.mode,
    executionMaxCost: fromMicro(perMax),
    expectedSecondsPerExecution: Math.round(expectedMs / 100) / 10,
    escrow: fromMicro(escrow),
    modes: modes.map((m) => ({
      mode: m.mode,
      executionsPerTask: m.executionsPerTask,
      maxCost: fromMicro(m.maxCost),
      expectedCost: fromMicro(m.expectedCost),
    })),
    matchingProviders: matching.length,
    cheapestMatchingCpuHour: matching.length > 0 ? Math.min(...matching.map((a) => a.prices.cpuHour)) : null,
    feeBps: engine.policy.feeBps,
    balance: fromMicro(balance),
    affordable: balance >= escrow,
    shortfall: fromMicro(Math.max(0, escrow - balance)),
    errorBound:
      maxError === undefined || boundExecutions === null
        ? null
        : {
            maxError,
            meanCredibility,
            executionsPerTask: boundExecutions,
            expectedCost: fromMicro(perExpected * boundExecutions),
          },
  };
}
