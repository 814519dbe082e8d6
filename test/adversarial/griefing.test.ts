/**
 * Griefing, two ways the issue names:
 *
 * - claim-and-abandon accounts (one party, three accounts) take replicas of tasks an honest provider also runs and
 *   go silent, so their leases expire, to push the tasks to too_many_errors: the honest provider's finished results
 *   keep their grade and are paid, and its reputation is not hurt; the abandons count against the abandoners;
 * - a nondeterministic job (`date` and `$RANDOM` into an output) that ends no_quorum leaves the honest providers'
 *   reputations untouched, and the buyer pays for the executions that ran.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ReputationView } from '../../src/protocol/index.js';
import { BUSYBOX, printFigures, productJob, World } from '../helpers/adversarial.js';
import { abandoner, productOracle, productResult } from '../helpers/raw-provider.js';

let world: World;
const ABANDONERS = ['abandoner-1', 'abandoner-2', 'abandoner-3'];

beforeAll(async () => {
  world = await World.start({ db: 'sqlite', honest: 3, oracle: productOracle });
  for (const name of ABANDONERS) await world.addRaw(name, 'abandoner', abandoner(), { slots: 4 });
  await world.waitOnline(6);
});
afterAll(async () => {
  await world?.stop();
});

const record = (r: ReputationView) => ({
  valid: r.valid,
  invalid: r.invalid,
  errors: r.errors,
  consecutiveValid: r.consecutiveValid,
});

describe('griefing', () => {
  it('abandoners pushing tasks to too_many_errors do not grade the honest results invalid', async () => {
    const before = await world.reputation('honest-1');
    const jobId = await world.submit(
      productJob(
        3,
        600,
        { mode: 'replicate', replicas: 2, quorum: 2, maxErrors: 3 },
        {
          resources: { cpus: 0.25, memoryMb: 64, timeoutSeconds: 60 },
          constraints: { providers: world.ids('honest-1', ...ABANDONERS) },
        },
      ),
    );
    const { view, ended } = await world.waitSettled(jobId);
    const honestId = world.provider('honest-1').accountId;
    const attacked = view.tasks.filter((t) => t.executions.some((e) => e.failure?.reason === 'lease_expired'));
    const honestDone = attacked.flatMap((t) => t.executions).filter((e) => e.providerId === honestId && e.resultHash);
    const after = await world.reputation('honest-1');
    const abandonerErrors = await Promise.all(ABANDONERS.map(async (n) => (await world.reputation(n)).errors));
    const f = await world.figures('griefing-abandon', [view], productResult, {
      tooManyErrors: view.tasks.filter((t) => t.failure?.reason === 'too_many_errors').length,
      attackedTasks: attacked.length,
      honestResultsInAttackedTasks: honestDone.length,
      honestGradedInvalid: honestDone.filter((e) => e.state === 'invalid').length,
      abandonerErrors,
    });
    printFigures(f);
    expect(ended).toBe(true);
    expect(honestDone.length, 'honest results reported in tasks the abandoners attacked').toBeGreaterThan(0);
    expect
      .soft(
        honestDone
          .filter((e) => e.state === 'invalid' || e.paid === null)
          .map((e) => `${e.id}: ${e.state}, paid ${e.paid}`),
        'honest finished results graded invalid or unpaid',
      )
      .toEqual([]);
    expect.soft(after.invalid - before.invalid, 'invalid results added to the honest provider').toBe(0);
    expect.soft(after.errors - before.errors, 'errors added to the honest provider').toBe(0);
    for (const [i, n] of abandonerErrors.entries()) expect.soft(n, `${ABANDONERS[i]} errors`).toBeGreaterThan(0);
    expect(f.wrongAccepted).toBe(0);
  });

  it('a nondeterministic job ending no_quorum leaves honest reputations untouched; the buyer pays', async () => {
    const honest = ['honest-1', 'honest-2', 'honest-3'];
    const before = await Promise.all(honest.map(async (n) => record(await world.reputation(n))));
    const jobId = await world.submit({
      image: BUSYBOX,
      command: ['sh', '-c', 'echo "$(date +%s) $RANDOM$RANDOM" > /outputs/t'],
      resources: { cpus: 0.5, memoryMb: 64, timeoutSeconds: 60 },
      verification: { mode: 'replicate', replicas: 2, quorum: 2, maxExecutions: 3 },
      constraints: { providers: world.ids(...honest) },
      array: { count: 2 },
    });
    const { view, ended } = await world.waitSettled(jobId);
    const after = await Promise.all(honest.map(async (n) => record(await world.reputation(n))));
    const ran = view.tasks.flatMap((t) => t.executions).filter((e) => e.resultHash !== null);
    const f = await world.figures('griefing-nondeterministic', [view], null, {
      taskFailures: view.tasks.map((t) => t.failure?.reason ?? t.state),
      executionsRan: ran.length,
      executionsPaid: ran.filter((e) => e.paid !== null && e.paid > 0).length,
      honestBefore: before,
      honestAfter: after,
    });
    printFigures(f);
    expect(ended).toBe(true);
    expect(
      view.tasks.map((t) => t.failure?.reason),
      'tasks end no_quorum',
    ).toEqual(['no_quorum', 'no_quorum']);
    expect.soft(after, 'honest providers’ records').toEqual(before);
    expect
      .soft(
        ran.filter((e) => !(e.paid !== null && e.paid > 0)).map((e) => `${e.agentName}: ${e.state}`),
        'executions that ran and were not paid',
      )
      .toEqual([]);
    expect.soft(view.billing.paid, 'what the buyer paid').toBeGreaterThan(0);
  });

  it('keeps the ledger invariants', async () => {
    expect((await world.stop()).problems).toEqual([]);
  });
});
