/**
 * `explain`: for one job, every provider agent and why it was or was not chosen — the same predicate the
 * scheduler uses (core/matching.ts), plus "already ran a replica of every waiting task". While a job's determinism
 * probe is pending, its tasks are held and the probe pair is what waits (core/probe.ts: room for two copies).
 */
import { probePairDemand, probesWanting, rankScores, rejections, schedTaskOf, tasksWanting } from '../core/index.js';
import type { Explain } from '../protocol/index.js';
import type { Engine } from './engine.js';

const count = (n: number, what: string) => `${n} ${what}${n === 1 ? '' : 's'}`;

/** Builds the explanation of a job the caller owns (the route checks ownership). Null when the job is missing. */
export async function explainJob(engine: Engine, jobId: string): Promise<Explain | null> {
  const { store } = engine;
  const job = await store.jobs.header(jobId);
  const one = await store.jobs.demand(jobId);
  if (!job || !one) return null;
  const now = engine.now();
  const probes = await store.snapshot.openProbes(jobId);
  const probing = probes.length > 0;
  const demand = probing ? probePairDemand(one) : one;
  const wanting = probing
    ? probesWanting(probes, null)
    : tasksWanting(await store.snapshot.openTasks(jobId), null, 10_000);
  const ran = await store.snapshot.executionsOf(wanting.map((t) => t.taskId));
  const tasks = wanting.map((t) => schedTaskOf(t, ran.get(t.taskId) ?? []));
  const { agents } = await store.snapshot.agents(now, now - engine.config.agentTtlMs, true, engine.policy);
  const placed = await store.jobs.executionsPerAgent(jobId);
  const predict = await engine.scheduling.predictor();
  const eligibleAgents = agents.filter((a) => rejections(demand, a).length === 0);
  const scores = rankScores(demand, eligibleAgents, predict);
  const providers = agents
    .map((a) => {
      const reasons = rejections(demand, a);
      if (reasons.length === 0 && tasks.length > 0 && tasks.every((t) => t.excludedProviders.includes(a.providerId))) {
        reasons.push({
          code: 'already_ran',
          message: 'already has (or had) an execution of every waiting task; replicas need other providers',
        });
      }
      return {
        agentId: a.agentId,
        name: a.name,
        providerId: a.providerId,
        online: a.online,
        executions: placed.get(a.agentId) ?? 0,
        eligible: reasons.length === 0,
        reasons,
        rank: reasons.length === 0 ? Math.round((scores.get(a.agentId) ?? 0) * 1000) / 1000 : null,
      };
    })
    .sort(
      (x, y) =>
        Number(y.eligible) - Number(x.eligible) || (x.rank ?? 0) - (y.rank ?? 0) || x.name.localeCompare(y.name),
    );

  const waitingTasks = tasks.length;
  const eligible = providers.filter((p) => p.eligible).length;
  let summary: string;
  if (job.state !== 'queued' && job.state !== 'running') summary = `the job has ended (${job.state}); nothing waits`;
  else if (waitingTasks === 0) summary = 'no task is waiting for a provider: every task has the executions it needs';
  else if (eligible > 0)
    summary = `${count(waitingTasks, 'task')} waiting; ${count(eligible, 'provider')} can take them now (placed at the next scheduling round)`;
  else {
    const tally = new Map<string, number>();
    for (const p of providers) {
      const c = p.reasons[0]?.code ?? 'unknown';
      tally.set(c, (tally.get(c) ?? 0) + 1);
    }
    const why = [...tally]
      .sort((a, b) => b[1] - a[1])
      .map(([c, n]) => `${n} ${c.replace(/_/g, ' ')}`)
      .join(', ');
    summary =
      agents.length === 0
        ? `${count(waitingTasks, 'task')} waiting: no provider has ever registered`
        : `${count(waitingTasks, 'task')} waiting: no provider can take them now (${why})`;
  }
  if (probing)
    summary =
      waitingTasks === 0
        ? "the determinism probe is running (task 0 twice at once on one agent); the job's tasks wait for it"
        : `determinism probe (task 0 twice at once on one agent, which needs room for both): ${summary}`;
  const oldest = await store.jobs.oldestOpenTaskUpdate(jobId);
  return {
    jobId,
    state: job.state,
    waitingTasks,
    summary,
    providers,
    queueTimeoutAt: waitingTasks > 0 && oldest !== null ? oldest + job.queueTimeoutMs : null,
  };
}
