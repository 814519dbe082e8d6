/**
 * Collusion: three honest `deqo agent`s earn a record on an honest warm-up job (3-of-3, so each result is confirmed
 * by two independent others and the three leave probation); then one party joins with
 * `colluders` provider accounts (each its own account and agent identity, same prices as everyone) that report the
 * same fabricated result for every task they get (a shared map taskKey → forged result). 2-of-2 jobs follow:
 *
 * - without `verification.maxError`: a colluders' fabricated result is never accepted while an established honest
 *   provider is available (never let one party be a task's quorum: probation for new accounts);
 * - with `verification.maxError: 1e-3`: the wrong results accepted stay within the bound asked (ε × tasks);
 * - either way the colluders end with a lower reputation than every honest provider, and earn less.
 *
 * Registers its describe block for one database (collusion.*.test.ts pick it).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiError } from '../../../src/client/index.js';
import { printFigures, productJob, World, type DatabaseKind, type ScenarioFigures } from '../../helpers/adversarial.js';
import { ColluderRing, productOracle, productResult } from '../../helpers/raw-provider.js';

/** The error bound the maxError job asks for. */
const MAX_ERROR = 1e-3;

/** Asserts every colluder ends with a lower reputation score than every honest provider, and earns less. */
export function colludersBelowHonest(f: ScenarioFigures, role = 'colluder'): void {
  const honest = f.providers.filter((p) => p.role === 'honest');
  const cheats = f.providers.filter((p) => p.role === role);
  const best = (xs: typeof cheats, k: 'score' | 'earned') => Math.max(...xs.map((p) => p[k]));
  const worst = (xs: typeof honest, k: 'score' | 'earned') => Math.min(...xs.map((p) => p[k]));
  expect.soft(best(cheats, 'score'), `best ${role} reputation vs worst honest`).toBeLessThan(worst(honest, 'score'));
  expect.soft(best(cheats, 'earned'), `best ${role} earnings vs worst honest`).toBeLessThan(worst(honest, 'earned'));
}

/**
 * Submits `spec` with `verification.maxError`; when the coordinator refuses the field (it is being added), submits
 * it without, so the run still yields figures. Returns the job id and whether the field was accepted.
 */
export async function submitWithMaxError(
  world: World,
  spec: ReturnType<typeof productJob>,
  maxError: number,
): Promise<{ jobId: string; maxErrorAccepted: boolean; refusal: string | null }> {
  const verification = { ...(spec.verification as Record<string, unknown>), maxError };
  try {
    return {
      jobId: await world.submit({ ...spec, verification } as typeof spec),
      maxErrorAccepted: true,
      refusal: null,
    };
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 400) throw err;
    return { jobId: await world.submit(spec), maxErrorAccepted: false, refusal: `${err.code}: ${err.message}` };
  }
}

/** The collusion scenario over `db` with `colluders` accounts of one party among three honest providers. */
export function collusionScenario(db: DatabaseKind, colluders: number, opts: { withoutMaxError: boolean }): void {
  describe(`collusion: ${colluders} accounts of one party among 3 honest providers (${db})`, () => {
    let world: World;
    const ring = new ColluderRing();

    beforeAll(async () => {
      world = await World.start({ db, honest: 3, oracle: productOracle });
      // The honest warm-up: every honest provider earns a record of independently confirmed results (a pair of
      // newcomers cannot confirm each other: 3-of-3 among the three honest providers).
      const warm = await world.submit(productJob(12, 100, { mode: 'replicate', replicas: 3, quorum: 3 }));
      const { view, ended } = await world.waitSettled(warm);
      if (!ended || view.state !== 'succeeded') throw new Error(`the honest warm-up did not succeed: ${view.state}`);
      for (const p of world.providers) {
        const r = (await p.client.providerReputation(1)).reputation;
        if (!r.established) throw new Error(`${p.name} is still on probation after the warm-up: ${JSON.stringify(r)}`);
      }
      for (let i = 1; i <= colluders; i++) await world.addRaw(`colluder-${i}`, 'colluder', ring.member());
      await world.waitOnline(3 + colluders);
    });
    afterAll(async () => {
      await world?.stop();
    });

    if (opts.withoutMaxError)
      it('without maxError: no fabricated result is accepted while an established honest provider is available', async () => {
        const jobId = await world.submit(productJob(20, 1, { mode: 'replicate', replicas: 2, quorum: 2 }));
        const { view, ended } = await world.waitSettled(jobId);
        const colluderIds = new Set(world.providers.filter((p) => p.role === 'colluder').map((p) => p.accountId));
        const f = await world.figures(`collusion-${colluders}`, [view], productResult, {
          maxError: null,
          colluderExecutions: view.tasks.flatMap((t) => t.executions).filter((e) => colluderIds.has(e.providerId))
            .length,
          colluderValid: view.tasks
            .flatMap((t) => t.executions)
            .filter((e) => colluderIds.has(e.providerId) && e.state === 'valid').length,
        });
        printFigures(f);
        expect(ended).toBe(true);
        expect.soft(f.wrongAccepted, 'tasks accepted with the colluders’ fabricated result').toBe(0);
        colludersBelowHonest(f);
      });

    it(`with maxError ${MAX_ERROR}: wrong results accepted stay within ε × tasks`, async () => {
      const tasks = 20;
      const spec = productJob(tasks, 2, { mode: 'replicate', replicas: 2, quorum: 2 });
      const { jobId, maxErrorAccepted, refusal } = await submitWithMaxError(world, spec, MAX_ERROR);
      const { view, ended } = await world.waitSettled(jobId);
      const f = await world.figures(`collusion-${colluders}-maxError`, [view], productResult, {
        maxError: MAX_ERROR,
        maxErrorAccepted,
        refusal,
      });
      printFigures(f);
      expect.soft(maxErrorAccepted, `verification.maxError accepted (${refusal})`).toBe(true);
      expect(ended).toBe(true);
      expect.soft(f.wrongAccepted, 'wrong results accepted').toBeLessThanOrEqual(Math.floor(MAX_ERROR * tasks));
      colludersBelowHonest(f);
    });

    it('keeps the ledger invariants', async () => {
      expect((await world.stop()).problems).toEqual([]);
    });
  });
}
