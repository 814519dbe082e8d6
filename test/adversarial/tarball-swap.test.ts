/**
 * Tarball swap: a provider reports the honest manifest and result hash but uploads a garbage outputs tarball (so it
 * would agree with honest providers by hash and be paid for outputs nobody can use). The issue asks that such a report
 * is refused at the door (422), counted against the provider, and that `deqo results` serves an honest copy.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEQO_BIN } from '../../src/cli/network.js';
import { printFigures, productJob, World } from '../helpers/adversarial.js';
import { productOracle, productResult, tarballSwapper, type RawProvider } from '../helpers/raw-provider.js';

const exec = promisify(execFile);
let world: World;
let swapper: RawProvider;

beforeAll(async () => {
  world = await World.start({ db: 'sqlite', honest: 3, oracle: productOracle });
  swapper = await world.addRaw('swapper', 'tarball-swapper', tarballSwapper());
  await world.waitOnline(4);
});
afterAll(async () => {
  await world?.stop();
});

describe('tarball swap', () => {
  it('is refused at the door (422), counted against the provider, and `deqo results` serves an honest copy', async () => {
    const jobId = await world.submit(
      productJob(
        10,
        400,
        { mode: 'replicate', replicas: 2, quorum: 2 },
        {
          constraints: { providers: world.ids('swapper', 'honest-1', 'honest-2', 'honest-3') },
        },
      ),
    );
    const { view, ended } = await world.waitSettled(jobId);
    const reports = swapper.executions.filter((e) => e.jobId === jobId && e.outcome !== 'pending');
    const rep = await world.reputation('swapper');
    const swapperId = world.provider('swapper').accountId;
    const results = await world.buyer.getResults(jobId);
    const canonicalFromSwapper = results.tasks.filter((t) => t.agreedBy[0]?.providerId === swapperId).length;

    // `deqo results` as a buyer runs it: downloads every verified task and checks each file against the manifest.
    const out = await mkdtemp(join(tmpdir(), 'deqo-swap-'));
    const cli = await exec(
      process.execPath,
      [DEQO_BIN, 'results', jobId, '-o', out, '--coordinator', world.url, '--api-key', world.buyerKey],
      { env: { ...process.env, DEQO_HOME: out } },
    ).then(
      () => ({ code: 0, stderr: '' }),
      (err: { code?: number; stderr?: string }) => ({ code: err.code ?? -1, stderr: err.stderr ?? '' }),
    );
    const wrongFiles: string[] = [];
    for (const t of view.tasks) {
      const got = await readFile(join(out, `task-${t.index}`, 'r'), 'utf8').catch(() => 'missing');
      if (got !== productResult(t.params).files.r) wrongFiles.push(`task ${t.index}: ${JSON.stringify(got)}`);
    }
    await rm(out, { recursive: true, force: true });

    const f = await world.figures('tarball-swap', [view], productResult, {
      swapperReports: reports.length,
      refused422: reports.filter((e) => e.refusal?.status === 422).length,
      accepted: reports.filter((e) => e.outcome === 'accepted').length,
      swapperErrors: rep.errors,
      swapperValid: view.tasks
        .flatMap((t) => t.executions)
        .filter((e) => e.providerId === swapperId && e.state === 'valid').length,
      canonicalFromSwapper,
      resultsExit: cli.code,
      wrongFiles: wrongFiles.length,
    });
    printFigures(f);
    expect(ended).toBe(true);
    expect(reports.length, 'the swapper reported').toBeGreaterThan(0);
    expect
      .soft(
        reports.map((e) => e.refusal?.status ?? e.outcome),
        'every swapped tarball refused with 422',
      )
      .toEqual(reports.map(() => 422));
    expect.soft(rep.errors, 'swaps counted against the provider').toBeGreaterThanOrEqual(reports.length);
    expect.soft(f.swapperValid, 'swapper executions graded valid').toBe(0);
    expect.soft(cli.code, `deqo results exit code (${cli.stderr.trim()})`).toBe(0);
    expect.soft(wrongFiles, 'files `deqo results` wrote that are not the honest outputs').toEqual([]);
    expect(f.verified).toBe(10);
    expect(f.wrongAccepted).toBe(0);
  });

  it('keeps the ledger invariants', async () => {
    expect((await world.stop()).problems).toEqual([]);
  });
});
