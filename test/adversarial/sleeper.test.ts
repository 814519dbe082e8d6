/**
 * Sleeper under adaptive replication: a provider is honest for its first 12 tasks (each confirmed by two honest
 * `deqo agent`s, so it leaves probation and may run tasks alone), then reports forged results. Adaptive jobs that
 * allow spot-checks follow (spot-check rate 0.3) until it is found lying: caught by a spot-check, or outvoted where a
 * forged result met an honest one (adaptive replication still replicates some tasks). The issue asks that its lies are caught, that
 * every result it alone supported is re-verified (the task's `audit` and the job's history say so), and that in
 * the end no wrong result stays accepted.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JobView } from '../../src/protocol/index.js';
import { printFigures, productJob, World } from '../helpers/adversarial.js';
import { productOracle, productResult, resultHashFor, sleeper, type RawProvider } from '../helpers/raw-provider.js';

const HONEST_FOR = 12;
let world: World;
let sly: RawProvider;

beforeAll(async () => {
  world = await World.start({ db: 'sqlite', honest: 3, oracle: productOracle, credibility: { spotCheckRate: 0.3 } });
  sly = await world.addRaw('sleeper-1', 'sleeper', sleeper(HONEST_FOR));
  await world.waitOnline(4);
});
afterAll(async () => {
  await world?.stop();
});

/** Tasks of `views` whose accepted result is not the honest one. */
async function wrongIn(views: readonly JobView[]): Promise<number> {
  let n = 0;
  for (const t of views.flatMap((v) => v.tasks))
    if (t.state === 'verified' && t.resultHash !== (await resultHashFor(productResult(t.params)))) n++;
  return n;
}

describe('sleeper under adaptive replication', () => {
  it('is caught, everything it alone supported is re-verified, and no wrong result stays accepted', async () => {
    // Honest phase: every task runs on the sleeper, honest-1 and honest-2, so each of its results is confirmed
    // by two independent providers.
    const warm = await world.submit(
      productJob(
        HONEST_FOR,
        200,
        { mode: 'replicate', replicas: 3, quorum: 3 },
        {
          constraints: { providers: world.ids('sleeper-1', 'honest-1', 'honest-2') },
        },
      ),
    );
    const w = await world.waitSettled(warm);
    expect(w.ended && w.view.state === 'succeeded').toBe(true);
    const trusted = await world.reputation('sleeper-1');
    // Established: ten confirmed results in a row (BOINC's trust threshold, Sarmenta's probation).
    expect(trusted.established, JSON.stringify(trusted)).toBe(true);

    // Adaptive jobs that allow spot-checks, until the sleeper is caught (at most three).
    const jobIds: string[] = [];
    for (let salt = 1; salt <= 3; salt++) {
      const jobId = await world.submit(
        productJob(20, 200 + salt, { mode: 'adaptive', replicas: 2, quorum: 2, spotChecks: true }),
      );
      jobIds.push(jobId);
      const { ended } = await world.waitSettled(jobId);
      expect(ended).toBe(true);
      const r = await world.reputation('sleeper-1');
      if (r.caught || r.invalid > 0) break;
    }
    const atCatch = await Promise.all(jobIds.map((id) => world.buyer.getJob(id)));
    const wrongBeforeBacktracking = await wrongIn(atCatch);

    // Give re-verification (backtracking) its time: wait until the sleeper's accepted lies are no longer valid.
    const lies = sly.accepted().filter((e) => e.lie);
    const lieIds = new Set(lies.map((e) => e.executionId));
    const deadline = Date.now() + 45_000;
    let views = atCatch;
    for (;;) {
      views = await Promise.all(jobIds.map((id) => world.buyer.getJob(id)));
      const stillValid = views
        .flatMap((v) => v.tasks.flatMap((t) => t.executions))
        .filter((e) => lieIds.has(e.id) && e.state === 'valid');
      const settledAll = (await Promise.all(jobIds.map((id) => world.waitSettled(id, 0)))).every((s) => s.ended);
      const auditing = views.flatMap((v) => v.tasks).some((t) => t.audit === 'pending');
      if ((stillValid.length === 0 && settledAll && !auditing) || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 500));
    }

    const executions = views.flatMap((v) => v.tasks.flatMap((t) => t.executions.map((e) => ({ t, e }))));
    const sleeperId = world.provider('sleeper-1').accountId;
    const aloneLies = atCatch
      .flatMap((v) => v.tasks)
      .filter((t) => t.executions.some((e) => lieIds.has(e.id) && e.state === 'valid')).length;
    const rep = await world.provider('sleeper-1').client.providerReputation(1000);
    const f = await world.figures('sleeper-adaptive', views, productResult, {
      honestFor: HONEST_FOR,
      trustedStreak: trusted.consecutiveValid,
      jobs: jobIds.length,
      sleeperExecutions: executions.filter(({ e }) => e.providerId === sleeperId).length,
      sleeperLies: lies.length,
      liesAcceptedAtCatch: aloneLies,
      wrongBeforeBacktracking,
    });
    printFigures(f);

    expect(lies.length, 'the sleeper lied').toBeGreaterThan(0);
    // Found lying: caught by a spot-check (blacklisted), or outvoted by an accepted group; either way backtracking
    // re-verifies what it alone supported.
    expect
      .soft(rep.reputation.caught || rep.reputation.invalid > 0, 'the sleeper was found lying (spot-check or vote)')
      .toBe(true);
    expect.soft(rep.reputation.established, 'the sleeper is back on probation').toBe(false);
    // Every lie in the buyer's jobs ends graded invalid there and in the sleeper's reputation history, or was never
    // counted (a replica cancelled once its task was decided). Lies on spot-checks are the platform's jobs.
    const invalidEvents = new Set(rep.events.filter((ev) => ev.kind === 'invalid').map((ev) => ev.executionId));
    const notInvalid: string[] = [];
    const notInHistory: string[] = [];
    const notReverified: string[] = [];
    for (const lie of lies.filter((l) => jobIds.includes(l.jobId))) {
      const found = executions.find(({ e }) => e.id === lie.executionId);
      if (found?.e.state !== 'invalid' && found?.e.state !== 'cancelled')
        notInvalid.push(`${lie.executionId}: ${found?.e.state}`);
      if (found?.e.state === 'invalid' && !invalidEvents.has(lie.executionId)) notInHistory.push(lie.executionId);
      // Its task was verified by another provider, or re-verified (an audit that replaced or confirmed the result).
      const t = found?.t;
      const byOther = t?.executions.some((e) => e.providerId !== sleeperId && e.state === 'valid');
      if (t?.state === 'verified' && !byOther && t.audit !== 'changed' && t.audit !== 'confirmed')
        notReverified.push(`${lie.jobId} task ${lie.taskIndex}: audit ${t.audit}`);
    }
    expect.soft(notInvalid, 'lies not graded invalid in the job').toEqual([]);
    expect.soft(notInHistory, "lies missing from the sleeper's reputation history").toEqual([]);
    expect.soft(notReverified, 'tasks the sleeper alone supported, not re-verified by another provider').toEqual([]);
    expect(f.wrongAccepted, 'wrong results accepted in the end').toBe(0);
  });

  it('keeps the ledger invariants', async () => {
    expect((await world.stop()).problems).toEqual([]);
  });
});
