/**
 * The provider's disk budget end to end (coordinator in-process, two `deqo agent` processes as root, real Docker,
 * deqo/busybox:test): a job writing past its output cap and a job leaving outputs the agent cannot package both end
 * as the job's failure, decided by two providers' votes (not as provider errors); an input blob listed under many
 * paths reaches the container as one file.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DeqoClient } from '../../src/client/index.js';
import type { LocalNetwork } from '../../src/cli/network.js';
import { settled, testNetwork, waitForJob } from '../helpers/network.js';

const MIB = 1024 * 1024;
let net: LocalNetwork;
let client: DeqoClient;

beforeAll(async () => {
  ({ net, client } = await testNetwork({ agents: 2 }));
});
afterAll(async () => {
  await net?.stop();
});

/** Runs `script` in busybox on two providers (quorum 2) and returns the settled task. */
async function run(script: string, over: Record<string, unknown> = {}) {
  const { jobId } = await client.submitJob({
    image: 'deqo/busybox:test',
    command: ['sh', '-c', script],
    verification: { replicas: 2, quorum: 2 },
    resources: { memoryMb: 64, timeoutSeconds: 60 },
    ...over,
  });
  const view = await waitForJob(client, jobId, settled);
  return { view, task: view.tasks[0]! };
}

describe('disk budget through real agents', () => {
  it('a job writing 200 MiB against a 10 MiB cap fails as output_too_large, confirmed by both providers', async () => {
    const { view, task } = await run('dd if=/dev/zero of=/outputs/big bs=1M count=200; echo done', {
      limits: { outputBytes: 10 * MIB },
    });
    expect(view.state).toBe('failed');
    expect(task.failure).toMatchObject({ reason: 'output_too_large', blame: 'job' });
    expect(task.executions.map((e) => [e.state, e.failure?.reason])).toEqual([
      ['valid', 'output_too_large'],
      ['valid', 'output_too_large'],
    ]);
  });

  it('outputs nested 250 folders deep fail as outputs_unpackageable, confirmed by both providers', async () => {
    const name = 'a'.repeat(20);
    const { view, task } = await run(
      `cd /outputs; for i in $(seq 250); do mkdir ${name} && cd ${name}; done; echo x > f`,
    );
    expect(view.state).toBe('failed');
    expect(task.failure).toMatchObject({ reason: 'outputs_unpackageable', blame: 'job' });
    expect(task.failure!.message).toMatch(/longer than 1024 bytes/);
    expect(task.executions.map((e) => [e.state, e.failure?.reason])).toEqual([
      ['valid', 'outputs_unpackageable'],
      ['valid', 'outputs_unpackageable'],
    ]);
  });

  it('hard-linked outputs verify on both providers, no provider blamed (each path packed as a regular file)', async () => {
    const { view, task } = await run('echo x > /outputs/a.txt && ln /outputs/a.txt /outputs/b.txt');
    expect(view.state, JSON.stringify(task.executions.map((e) => e.failure))).toBe('succeeded');
    expect(task.executions.map((e) => e.state)).toEqual(['valid', 'valid']);
    const r = (await client.getResults(view.id)).tasks[0]!;
    expect(r.manifest!.files.map((f) => f.path)).toEqual(['a.txt', 'b.txt']);
  });

  it('a blob listed under 50 input paths is one file in the container', async () => {
    const blob = await client.uploadBytes(randomBytes(2 * MIB));
    const inputs = Array.from({ length: 50 }, (_, i) => ({ path: `d/copy${i}.bin`, blob: blob.sha256 }));
    const { view } = await run('stat -c %i /inputs/d/*.bin | sort -u | wc -l; ls /inputs/d | wc -l', { inputs });
    expect(view.state, JSON.stringify(view.tasks[0]?.executions.map((e) => e.failure))).toBe('succeeded');
    const t = (await client.getResults(view.id)).tasks[0]!;
    expect((await client.blobText(t.stdoutBlob!)).split('\n').map((l) => l.trim())).toEqual(['1', '50', '']);
  });
});
