/** Test helpers over a real local network (coordinator in-process, agents as child processes, real Docker). */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeqoClient } from '../../src/client/index.js';
import { startLocalNetwork, type LocalNetwork, type LocalNetworkOptions } from '../../src/cli/network.js';
import { TERMINAL_JOB_STATES } from '../../src/core/index.js';
import type { JobView } from '../../src/protocol/index.js';

/** Starts a network in a fresh temp dir on a free port. */
export async function testNetwork(
  o: Partial<LocalNetworkOptions> = {},
): Promise<{ net: LocalNetwork; client: DeqoClient; dir: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'deqo-net-'));
  const net = await startLocalNetwork({ dataDir: dir, agents: 3, port: 0, agentCpus: 1, ...o });
  return { net, client: new DeqoClient(net.url, net.buyerKey), dir };
}

/** Polls until `pred(view)` holds (or 120 s pass, then throws with the last view). */
export async function waitForJob(client: DeqoClient, jobId: string, pred: (v: JobView) => boolean): Promise<JobView> {
  const deadline = Date.now() + 120_000;
  let view = await client.getJob(jobId);
  while (!pred(view)) {
    if (Date.now() > deadline)
      throw new Error(
        `timed out waiting on ${jobId}: ${JSON.stringify(view.tasks.map((t) => [t.state, t.executions.map((e) => e.state)]))}`,
      );
    await new Promise((r) => setTimeout(r, 200));
    view = await client.getJob(jobId);
  }
  return view;
}

/** The job ended and none of its executions is still assigned, running or awaiting a verdict. */
export function settled(v: JobView): boolean {
  return (
    TERMINAL_JOB_STATES.includes(v.state) &&
    v.tasks.every((t) => t.executions.every((e) => !['assigned', 'running', 'reported'].includes(e.state)))
  );
}
