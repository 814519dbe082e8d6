/**
 * Self-billing and made-up failures, among three honest `deqo agent`s:
 *
 * - a self-biller reports honest results but claims usage.wallMs of the job's whole timeout (20 min) although it
 *   reports within a second: it is paid for no more than the coordinator observed (claim → report);
 * - an early-timeout provider reports `failed` / `timeout` after 0.3 s of a 60 s limit: the report is refused (422)
 *   and counted against the provider; the task is verified by others;
 * - a fake out-of-memory provider, on jobs with replicas 1: a job-blamed failure reported by a single provider is
 *   confirmed by a second provider before the buyer pays (here the second one completes, so the task is verified).
 *
 * Registers its describe block for one database (self-billing.*.test.ts pick it).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { executionCost, fromMicro } from '../../../src/core/index.js';
import type { JobView, Price } from '../../../src/protocol/index.js';
import { printFigures, productJob, World, type DatabaseKind } from '../../helpers/adversarial.js';
import {
  earlyTimeout,
  fakeOutOfMemory,
  productOracle,
  productResult,
  selfBiller,
  type RawProvider,
} from '../../helpers/raw-provider.js';

/** The job timeout of the self-billing job: 20 min, what the self-biller claims to have run. */
const LONG_TIMEOUT_S = 1200;

/** Paid executions of `view` whose payment exceeds what the coordinator observed (claim → report) at their price. */
async function overpaid(world: World, view: JobView): Promise<string[]> {
  const prices = new Map<string, Price>();
  for (const p of await world.buyer.listProviders()) prices.set(p.providerId, p.offer.prices);
  const { cpus, memoryMb, gpus, timeoutSeconds } = view.spec.resources;
  const out: string[] = [];
  for (const e of view.tasks.flatMap((t) => t.executions)) {
    if (e.paid === null || e.startedAt === null || e.finishedAt === null) continue;
    const observedMs = e.finishedAt - e.startedAt;
    const fair = fromMicro(
      executionCost(prices.get(e.providerId)!, { cpus, memoryMb, gpus }, observedMs, timeoutSeconds * 1000),
    );
    if (e.paid > fair + 1e-6)
      out.push(
        `${e.agentName}: paid ${e.paid} for ${observedMs} ms observed (fair ${fair}, claimed ${e.usage?.wallMs} ms)`,
      );
  }
  return out;
}

/** The self-billing scenario over `db`. */
export function selfBillingScenario(db: DatabaseKind): void {
  describe(`self-billing and made-up failures (${db})`, () => {
    let world: World;
    let biller: RawProvider;
    let early: RawProvider;
    let oom: RawProvider;

    beforeAll(async () => {
      world = await World.start({ db, honest: 3, oracle: productOracle });
      biller = await world.addRaw('self-biller', 'self-biller', selfBiller());
      early = await world.addRaw('early-timeout', 'early-timeout', earlyTimeout(300));
      oom = await world.addRaw('fake-oom', 'fake-oom', fakeOutOfMemory(300));
      await world.waitOnline(6);
    });
    afterAll(async () => {
      await world?.stop();
    });

    it('pays the self-biller for no more than the coordinator observed (claim → report)', async () => {
      const jobId = await world.submit(
        productJob(
          10,
          300,
          { mode: 'replicate', replicas: 2, quorum: 2 },
          {
            resources: { cpus: 0.5, memoryMb: 64, timeoutSeconds: LONG_TIMEOUT_S },
            constraints: { providers: world.ids('self-biller', 'honest-1', 'honest-2', 'honest-3') },
          },
        ),
      );
      const { view, ended } = await world.waitSettled(jobId);
      const billerId = world.provider('self-biller').accountId;
      const mine = view.tasks.flatMap((t) => t.executions).filter((e) => e.providerId === billerId);
      const over = await overpaid(world, view);
      const f = await world.figures('self-billing', [view], productResult, {
        selfBillerValid: mine.filter((e) => e.state === 'valid').length,
        selfBillerPaid: Math.round(mine.reduce((s, e) => s + (e.paid ?? 0), 0) * 1e6) / 1e6,
        claimedWallMs: LONG_TIMEOUT_S * 1000,
        overpaid: over.length,
      });
      printFigures(f);
      expect(ended).toBe(true);
      expect(f.wrongAccepted).toBe(0);
      expect(biller.accepted().length, 'the self-biller reported').toBeGreaterThan(0);
      expect(over, 'executions paid beyond what was observed').toEqual([]);
    });

    it('refuses an early `timeout` (422), counts it against the provider, and verifies the task elsewhere', async () => {
      const before = await world.reputation('early-timeout');
      const jobId = await world.submit(
        productJob(
          6,
          301,
          { mode: 'replicate', replicas: 2, quorum: 2 },
          {
            constraints: { providers: world.ids('early-timeout', 'honest-1', 'honest-2', 'honest-3') },
          },
        ),
      );
      const { view, ended } = await world.waitSettled(jobId);
      const after = await world.reputation('early-timeout');
      const reports = early.executions.filter((e) => e.jobId === jobId && e.outcome !== 'pending');
      const earlyId = world.provider('early-timeout').accountId;
      const f = await world.figures('early-timeout', [view], productResult, {
        earlyTimeoutReports: reports.length,
        refused422: reports.filter((e) => e.refusal?.status === 422).length,
        accepted: reports.filter((e) => e.outcome === 'accepted').length,
        errorsCounted: after.errors - before.errors,
      });
      printFigures(f);
      expect(ended).toBe(true);
      expect(reports.length, 'the early-timeout provider reported').toBeGreaterThan(0);
      expect
        .soft(
          reports.map((e) => e.refusal?.status ?? e.outcome),
          'every early timeout refused with 422',
        )
        .toEqual(reports.map(() => 422));
      expect
        .soft(after.errors - before.errors, 'early timeouts counted against the provider')
        .toBeGreaterThanOrEqual(reports.length);
      expect.soft(f.verified, 'tasks verified by other providers').toBe(6);
      expect(f.wrongAccepted).toBe(0);
      for (const e of view.tasks.flatMap((t) => t.executions).filter((x) => x.providerId === earlyId))
        expect.soft(e.paid, `early-timeout execution ${e.id} paid`).toBeNull();
    });

    it('confirms a single provider’s out-of-memory with a second provider before the buyer pays', async () => {
      const jobId = await world.submit(
        productJob(
          6,
          302,
          { mode: 'replicate', replicas: 1, quorum: 1 },
          {
            constraints: { providers: world.ids('fake-oom', 'honest-1') },
          },
        ),
      );
      const { view, ended } = await world.waitSettled(jobId);
      const oomId = world.provider('fake-oom').accountId;
      const reports = oom.executions.filter((e) => e.jobId === jobId && e.outcome === 'accepted');
      const fakeTasks = new Set(reports.map((e) => e.taskIndex));
      const f = await world.figures('fake-oom-replicas-1', [view], productResult, {
        fakeOomReports: reports.length,
        fakeOomTasksFailed: view.tasks.filter((t) => fakeTasks.has(t.index) && t.state === 'failed').length,
        fakeOomTasksConfirmedElsewhere: view.tasks.filter(
          (t) => fakeTasks.has(t.index) && t.executions.some((e) => e.providerId !== oomId),
        ).length,
      });
      printFigures(f);
      expect(ended).toBe(true);
      expect(oom.executions.filter((e) => e.jobId === jobId).length, 'the fake-OOM provider got work').toBeGreaterThan(
        0,
      );
      const unconfirmed = view.tasks
        .filter((t) => fakeTasks.has(t.index) && !t.executions.some((e) => e.providerId !== oomId))
        .map((t) => `task ${t.index}: ${t.state} ${t.failure?.reason ?? ''}`);
      expect.soft(unconfirmed, 'fake OOM tasks not confirmed by a second provider').toEqual([]);
      expect.soft(f.verified, 'every task verified (the honest provider completes it)').toBe(6);
      const paidForFakes = view.tasks
        .flatMap((t) => t.executions)
        .filter((e) => e.providerId === oomId && e.paid !== null);
      expect
        .soft(
          paidForFakes.map((e) => e.id),
          'fake OOM executions paid',
        )
        .toEqual([]);
      expect(f.wrongAccepted).toBe(0);
    });

    it('keeps the ledger invariants', async () => {
      expect((await world.stop()).problems).toEqual([]);
    });
  });
}
