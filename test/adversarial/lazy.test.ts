/**
 * A lazy provider (reports a made-up result without running anything) among three honest `deqo agent`s, 2-of-2
 * replication: its results never match an honest one, so none is accepted, it earns nothing and ranks below them.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { printFigures, productJob, World } from '../helpers/adversarial.js';
import { lazy, productOracle, productResult, type RawProvider } from '../helpers/raw-provider.js';

let world: World;
let liar: RawProvider;

beforeAll(async () => {
  world = await World.start({ db: 'sqlite', honest: 3, oracle: productOracle });
  liar = await world.addRaw('lazy-1', 'lazy', lazy());
  await world.waitOnline(4);
});
afterAll(async () => {
  await world?.stop();
});

describe('lazy provider under 2-of-2 replication', () => {
  it('never gets a made-up result accepted, earns nothing and ranks below the honest providers', async () => {
    const jobId = await world.submit(productJob(20, 1, { mode: 'replicate', replicas: 2, quorum: 2 }));
    const { view, ended } = await world.waitSettled(jobId);
    const f = await world.figures('lazy', [view], productResult, { lazyReports: liar.accepted().length });
    printFigures(f);
    expect(ended).toBe(true);
    expect(f.wrongAccepted).toBe(0);
    expect(f.verified).toBe(20);
    const mine = view.tasks
      .flatMap((t) => t.executions)
      .filter((e) => e.providerId === world.provider('lazy-1').accountId);
    expect(liar.accepted().length).toBeGreaterThan(0);
    for (const e of mine) {
      expect(e.state).not.toBe('valid');
      expect(e.paid).toBeNull();
    }
    const lazyFig = f.providers.find((p) => p.name === 'lazy-1')!;
    expect(lazyFig.earned).toBe(0);
    for (const h of f.providers.filter((p) => p.role === 'honest')) expect(lazyFig.score).toBeLessThan(h.score);
  });

  it('keeps the ledger invariants', async () => {
    const counts = await world.stop();
    expect(counts.problems).toEqual([]);
  });
});
