/**
 * The agent's log as an operator reads it: a real `deqo agent` process (real Docker) runs a job from a real
 * coordinator; its stdout is pino JSON whose lines name the agent, and whose lines about an execution carry the
 * execution and job ids as fields.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DeqoClient } from '../../src/client/index.js';
import type { LocalNetwork } from '../../src/cli/network.js';
import { settled, testNetwork, waitForJob } from '../helpers/network.js';

let net: LocalNetwork;
let client: DeqoClient;
let dir: string;

beforeAll(async () => {
  ({ net, client, dir } = await testNetwork({ agents: 1 }));
});
afterAll(async () => {
  await net?.stop();
});

/** The JSON lines of the agent's log (its stderr banner lines are plain text and skipped). */
async function agentLogLines(): Promise<Array<Record<string, unknown>>> {
  const text = await readFile(join(dir, 'agents', 'provider-1', 'agent.log'), 'utf8');
  return text
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('agent logs', () => {
  it('are JSON lines naming the agent, with executionId and jobId on every line about an execution', async () => {
    const { jobId } = await client.submitJob({
      image: 'deqo/busybox:test',
      command: ['sh', '-c', 'echo hi > /outputs/hi.txt'],
    });
    const view = await waitForJob(client, jobId, settled);
    expect(view.state).toBe('succeeded');
    const executionId = view.tasks[0]!.executions[0]!.id;
    const deadline = Date.now() + 10_000;
    let lines = await agentLogLines();
    while (!lines.some((l) => l.msg === 'execution reported') && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100)); // the agent logs its report after the coordinator took it
      lines = await agentLogLines();
    }
    const agentId = view.tasks[0]!.executions[0]!.agentId;
    for (const l of lines)
      expect(l, String(l.msg)).toMatchObject({
        agent: 'provider-1',
        agentId,
        level: expect.any(Number),
        time: expect.any(Number),
      });
    for (const msg of ['execution started', 'execution reported']) {
      expect(
        lines.filter((l) => l.msg === msg),
        msg,
      ).toEqual([expect.objectContaining({ executionId, jobId })]);
    }
    for (const l of lines)
      if ('executionId' in l) expect(l, String(l.msg)).toMatchObject({ jobId: expect.any(String) });
  });
});
