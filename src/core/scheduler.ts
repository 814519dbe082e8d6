/**
 * The scheduler: a pure function from a snapshot (tasks wanting executions, online agents with free
 * capacity) to a plan (which agent gets which new execution). Constraints first, then rank.
 *
 * Constraints: free CPU and memory, network only where the provider allows it, and never a provider that
 * already has (or had) an execution of the same task — replicas stay independent, and a provider that failed
 * a task does not get it again (Bacalhau/Nomad practice). Rank: most free CPU share first (spreads load), then
 * fewest running executions, then agent id (deterministic). Tasks are served oldest job first, by index.
 */

/** A task that wants `need` more executions. Resources in cores and MiB. */
export interface SchedTask {
  taskId: string;
  jobId: string;
  jobCreatedAt: number;
  index: number;
  need: number;
  cpus: number;
  memoryMb: number;
  network: boolean;
  /** Providers that already have or had an execution of this task. */
  excludedProviders: readonly string[];
}

/** An online agent and what it has free now. */
export interface SchedAgent {
  agentId: string;
  providerId: string;
  totalCpus: number;
  freeCpus: number;
  freeMemoryMb: number;
  allowNetwork: boolean;
  running: number;
}

/** One new execution of `taskId` on `agentId`. */
export interface Placement { taskId: string; agentId: string; providerId: string }

/** Plans new executions. Pure: the inputs are not modified. */
export function planExecutions(tasks: readonly SchedTask[], agents: readonly SchedAgent[]): Placement[] {
  const free = agents.map((a) => ({ ...a }));
  const order = [...tasks].sort((a, b) => a.jobCreatedAt - b.jobCreatedAt || a.jobId.localeCompare(b.jobId) || a.index - b.index);
  const plan: Placement[] = [];
  for (const t of order) {
    const used = new Set(t.excludedProviders);
    for (let k = 0; k < t.need; k++) {
      const feasible = free.filter((a) => !used.has(a.providerId) && a.freeCpus + 1e-9 >= t.cpus
        && a.freeMemoryMb >= t.memoryMb && (!t.network || a.allowNetwork));
      if (feasible.length === 0) break;
      feasible.sort((a, b) => b.freeCpus / b.totalCpus - a.freeCpus / a.totalCpus || a.running - b.running
        || a.agentId.localeCompare(b.agentId));
      const pick = feasible[0]!;
      pick.freeCpus -= t.cpus;
      pick.freeMemoryMb -= t.memoryMb;
      pick.running += 1;
      used.add(pick.providerId);
      plan.push({ taskId: t.taskId, agentId: pick.agentId, providerId: pick.providerId });
    }
  }
  return plan;
}
