/**
 * The coordinator loses nothing on a crash: a `deqo coordinator` process is SIGKILLed at random moments while
 * real agents run many jobs in real containers, and restarted on the same data each time. In the end every job
 * is verified, no execution is paid twice, and the ledger invariants hold. The seed of the random moments is
 * printed (DEQO_CRASH_SEED=<n> repeats a run's schedule).
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { DeqoClient } from '../../src/client/index.js';
import { intBetween, mulberry32 } from '../../src/sim/prng.js';
import { accounts, AgentProcess, CoordinatorProcess, FAST_FAULTS, freePort, until } from '../helpers/cluster.js';
import { checkRun } from '../helpers/invariants.js';

const SEED = Number(process.env.DEQO_CRASH_SEED ?? Date.now() % 1_000_000);
const BATCHES = 4;
const JOBS_PER_BATCH = 6;

let coordinator: CoordinatorProcess;
const agents: AgentProcess[] = [];
afterAll(async () => {
  await Promise.all(agents.map((a) => a.stop()));
  await coordinator?.stop();
});

it(`finishes every job exactly once across ${BATCHES} coordinator SIGKILLs (seed ${SEED})`, async () => {
  const random = mulberry32(SEED);
  const dir = await mkdtemp(join(tmpdir(), 'deqo-crash-'));
  coordinator = new CoordinatorProcess(join(dir, 'coordinator'), await freePort(), FAST_FAULTS);
  await coordinator.start();
  const { buyerKey, providerKeys } = await accounts(await coordinator.admin(), 3, 100);
  for (const [i, key] of providerKeys.entries())
    agents.push(new AgentProcess(`provider-${i + 1}`, join(dir, `agent-${i + 1}`), coordinator.url, key));
  for (const a of agents) await a.start();
  const buyer = new DeqoClient(coordinator.url, buyerKey);
  await until(
    async () => (await buyer.listProviders()).filter((p) => p.online).length === 3,
    30_000,
    () => 'agents did not come online',
  );

  const submitted: string[] = [];
  const kills: Array<{ afterMs: number; downMs: number }> = [];
  for (let b = 0; b < BATCHES; b++) {
    for (let j = 0; j < JOBS_PER_BATCH; j++) {
      const n = b * JOBS_PER_BATCH + j;
      const { jobId } = await buyer.submitJob({
        image: 'deqo/busybox:test',
        command: ['sh', '-c', 'sleep 1; echo "job $N" > /outputs/r.txt'],
        env: { N: String(n) },
        verification: { replicas: 2, quorum: 2 },
      });
      submitted.push(jobId);
    }
    // A crash at a random moment while this batch is being scheduled, claimed, run, reported or settled.
    const kill = { afterMs: intBetween(random, 200, 3_000), downMs: intBetween(random, 0, 1_500) };
    kills.push(kill);
    await new Promise((r) => setTimeout(r, kill.afterMs));
    await coordinator.kill();
    await new Promise((r) => setTimeout(r, kill.downMs));
    await coordinator.start();
  }

  const open = async () =>
    (await buyer.listJobs({ limit: 500 })).filter((j) => j.state === 'queued' || j.state === 'running');
  await until(
    async () => (await open()).length === 0,
    240_000,
    async () => `jobs still open: ${JSON.stringify(await open())}`,
  );
  // Settlement runs on the coordinator's loop; give it a moment to finish paying the last results.
  await until(
    async () => (await Promise.all(submitted.map((id) => buyer.getJob(id)))).every((v) => v.billing.settled),
    30_000,
    () => 'jobs not settled',
  );
  await coordinator.stop();

  const counts = await checkRun(join(coordinator.dataDir, 'deqo.db'));
  console.log(
    JSON.stringify({ test: 'coordinator crash', seed: SEED, kills, submitted: submitted.length, ...counts }, null, 2),
  );
  expect(counts.problems).toEqual([]);
  expect(counts.jobs).toEqual({ succeeded: submitted.length });
  expect(counts.paidExecutions).toBe(counts.executions.valid);
  expect(coordinator.starts).toBe(BATCHES + 1);
}, 420_000);
