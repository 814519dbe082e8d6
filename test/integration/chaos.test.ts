/**
 * Chaos: many jobs on four real agents while agents are SIGKILLed at random (and restarted after a while) and
 * the coordinator is SIGKILLed twice. In the end every job is verified or failed with a reason, none is lost,
 * and the money invariants hold. Prints the counts. DEQO_CHAOS_SEED=<n> repeats a run's schedule.
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { DeqoClient } from '../../src/client/index.js';
import { intBetween, mulberry32 } from '../../src/sim/prng.js';
import { accounts, AgentProcess, CoordinatorProcess, FAST_FAULTS, freePort, until } from '../helpers/cluster.js';
import { checkRun } from '../helpers/invariants.js';

const SEED = Number(process.env.DEQO_CHAOS_SEED ?? Date.now() % 1_000_000);
const AGENTS = 4;
const JOBS = 24;

let coordinator: CoordinatorProcess;
const agents: AgentProcess[] = [];
afterAll(async () => {
  await Promise.all(agents.map((a) => a.stop()));
  await coordinator?.stop();
});

it(`ends every job verified or failed with a reason through agent and coordinator kills (seed ${SEED})`, async () => {
  const random = mulberry32(SEED);
  const dir = await mkdtemp(join(tmpdir(), 'deqo-chaos-'));
  coordinator = new CoordinatorProcess(join(dir, 'coordinator'), await freePort(), FAST_FAULTS);
  await coordinator.start();
  const { buyerKey, providerKeys } = await accounts(await coordinator.admin(), AGENTS, 100);
  for (const [i, key] of providerKeys.entries())
    agents.push(new AgentProcess(`provider-${i + 1}`, join(dir, `agent-${i + 1}`), coordinator.url, key));
  for (const a of agents) await a.start();
  const buyer = new DeqoClient(coordinator.url, buyerKey);
  await until(
    async () => (await buyer.listProviders()).filter((p) => p.online).length === AGENTS,
    30_000,
    () => 'agents did not come online',
  );

  const submitted: string[] = [];
  const submit = async (n: number) => {
    // A submission the coordinator's crash interrupted is retried once it is back (each attempt is a new job
    // only if the first never reached the database; the final count reconciles with the coordinator's list).
    for (;;) {
      try {
        const { jobId } = await buyer.submitJob({
          image: 'deqo/busybox:test',
          command: ['sh', '-c', `sleep ${1 + (n % 3)}; echo "job $N" > /outputs/r.txt`],
          env: { N: String(n) },
          verification: { replicas: 2, quorum: 2 },
          queueTimeoutSeconds: 150,
        });
        submitted.push(jobId);
        return;
      } catch {
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  };

  const events = { agentKills: 0, agentRestarts: 0, coordinatorKills: 0 };
  const coordinatorKillAt = new Set([intBetween(random, 2, 5), intBetween(random, 8, 11)]);
  const restarts: Array<Promise<void>> = [];
  const chaos = (async () => {
    for (let step = 0; step < 14; step++) {
      await new Promise((r) => setTimeout(r, intBetween(random, 1_000, 3_000)));
      if (coordinatorKillAt.has(step)) {
        await coordinator.kill();
        events.coordinatorKills++;
        await new Promise((r) => setTimeout(r, intBetween(random, 0, 1_500)));
        await coordinator.start();
        continue;
      }
      const victim = agents[intBetween(random, 0, AGENTS - 1)]!;
      if (victim.running) {
        await victim.kill();
        events.agentKills++;
        // Back after a while: within its leases sometimes, after they expired other times.
        const downMs = intBetween(random, 500, 9_000);
        restarts.push(
          new Promise((r) => setTimeout(r, downMs))
            .then(() => victim.start())
            .then(() => {
              events.agentRestarts++;
            }),
        );
      }
    }
  })();
  for (let n = 0; n < JOBS; n++) {
    await submit(n);
    await new Promise((r) => setTimeout(r, intBetween(random, 100, 1_200)));
  }
  await chaos;
  await Promise.all(restarts);

  const listed = async () => buyer.listJobs({ limit: 500 });
  await until(
    async () => (await listed()).every((j) => j.state !== 'queued' && j.state !== 'running'),
    300_000,
    async () =>
      `jobs still open: ${JSON.stringify((await listed()).filter((j) => j.state === 'queued' || j.state === 'running').map((j) => j.id))}`,
  );
  const all = await listed();
  await until(
    async () => (await Promise.all(all.map((j) => buyer.getJob(j.id)))).every((v) => v.billing.settled),
    30_000,
    () => 'jobs not settled',
  );
  const failedWithoutReason = (
    await Promise.all(all.filter((j) => j.state === 'failed').map((j) => buyer.getJob(j.id)))
  )
    .filter((v) => v.tasks.some((t) => t.state === 'failed' && !t.failure?.reason))
    .map((v) => v.id);
  await coordinator.stop();

  const counts = await checkRun(join(coordinator.dataDir, 'deqo.db'));
  console.log(
    JSON.stringify(
      { test: 'chaos', seed: SEED, events, submitted: submitted.length, listed: all.length, ...counts },
      null,
      2,
    ),
  );
  expect(counts.problems).toEqual([]);
  expect(events.coordinatorKills).toBe(2);
  expect(events.agentRestarts).toBe(events.agentKills);
  expect(all.length).toBeGreaterThanOrEqual(JOBS);
  for (const id of submitted) expect(all.map((j) => j.id)).toContain(id); // none lost
  expect((counts.jobs.succeeded ?? 0) + (counts.jobs.failed ?? 0)).toBe(all.length);
  expect(failedWithoutReason).toEqual([]);
  expect(counts.paidExecutions).toBe(counts.executions.valid);
}, 480_000);
