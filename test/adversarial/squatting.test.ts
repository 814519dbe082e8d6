/**
 * Squatting: a provider claims executions and heartbeats them forever without reporting. The issue asks that the
 * lease stops renewing at start + timeout + grace, that the task then ends or moves elsewhere, that squatting counts
 * against the provider, that the buyer's escrow is released, and that an honest replica that had reported is paid.
 *
 * The job's time limit is 5 s and the coordinator's deadline grace 10 s (`deqo coordinator --deadline-grace`; 10 min
 * by default, for uploads of large outputs); the test waits up to 80 s for the job to settle and asserts on what it
 * ended with.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { printFigures, productJob, World } from '../helpers/adversarial.js';
import { productOracle, productResult, squatter, type RawProvider } from '../helpers/raw-provider.js';

let world: World;
let squat: RawProvider;

beforeAll(async () => {
  world = await World.start({ db: 'sqlite', honest: 3, oracle: productOracle, engine: { deadlineGraceMs: 10_000 } });
  squat = await world.addRaw('squatter', 'squatter', squatter(), { slots: 4 });
  await world.waitOnline(4);
});
afterAll(async () => {
  await world?.stop();
});

describe('squatting', () => {
  it('stops renewing the lease past the time limit; the task moves on, the honest replica is paid, escrow released', async () => {
    const jobId = await world.submit(
      productJob(
        4,
        500,
        { mode: 'replicate', replicas: 2, quorum: 2 },
        {
          resources: { cpus: 0.5, memoryMb: 64, timeoutSeconds: 5 },
          constraints: { providers: world.ids('squatter', 'honest-1', 'honest-2') },
        },
      ),
    );
    const { view, ended } = await world.waitSettled(jobId, 80_000);
    const squatterId = world.provider('squatter').accountId;
    const held = squat.executions.filter((e) => e.jobId === jobId && e.kind === 'squat');
    const heldIds = new Set(held.map((e) => e.executionId));
    const all = view.tasks.flatMap((t) => t.executions);
    const rep = await world.reputation('squatter');
    const honestReported = all.filter((e) => e.providerId !== squatterId && e.resultHash !== null);
    const f = await world.figures('squatting', [view], productResult, {
      jobState: view.state,
      ended,
      squatted: held.length,
      squattedStillRunning: all.filter((e) => heldIds.has(e.id) && e.state === 'running').length,
      squatterErrors: rep.errors,
      honestReported: honestReported.length,
      honestReportedPaid: honestReported.filter((e) => e.paid !== null && e.paid > 0).length,
      inEscrow: view.billing.inEscrow,
    });
    printFigures(f);
    expect(held.length, 'the squatter held executions').toBeGreaterThan(0);
    expect
      .soft(
        all.filter((e) => heldIds.has(e.id)).map((e) => e.state),
        'squatted executions ended (lease no longer renewed)',
      )
      .toEqual(held.map(() => expect.stringMatching(/^(lost|failed)$/)));
    expect.soft(ended, `the job ended and settled (state ${view.state})`).toBe(true);
    expect.soft(rep.errors, 'squatting counted against the provider').toBeGreaterThanOrEqual(held.length);
    expect.soft(view.billing.settled && view.billing.inEscrow === 0, "the buyer's escrow released").toBe(true);
    expect
      .soft(
        honestReported.filter((e) => !(e.paid !== null && e.paid > 0)).map((e) => `${e.agentName} ${e.state}`),
        'honest replicas that reported and were not paid',
      )
      .toEqual([]);
    expect(f.wrongAccepted).toBe(0);
  });

  it('keeps the ledger invariants', async () => {
    expect((await world.stop()).problems).toEqual([]);
  });
});
