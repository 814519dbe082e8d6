/**
 * End to end on real parts: coordinator (Fastify + SQLite), three agent processes with Ed25519 identities,
 * real Docker containers, real HTTP. provider-3 is dishonest (test switch): it corrupts every result.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiError, DeqoClient } from '../../src/client/index.js';
import type { LocalNetwork } from '../../src/cli/network.js';
import { readSpecFile, resolveSpec } from '../../src/cli/specfile.js';
import { DEMO_SPEC } from '../../src/cli/commands/demo.js';
import type { JobSpecInput } from '../../src/protocol/index.js';
import { settled, testNetwork, waitForJob } from '../helpers/network.js';

let net: LocalNetwork;
let client: DeqoClient;
const BUSYBOX = 'deqo/busybox:test';

beforeAll(async () => {
  ({ net, client } = await testNetwork({ agents: 3, agentArgs: (i) => (i === 2 ? ['--test-corrupt-outputs'] : []) }));
});
afterAll(async () => {
  await net?.stop();
});

async function run(spec: JobSpecInput) {
  const { jobId } = await client.submitJob(spec);
  return waitForJob(client, jobId, settled);
}

describe('the demo sweep on real data', () => {
  it('verifies every task 2-of-3 and outvotes the dishonest provider', async () => {
    const { raw, baseDir } = await readSpecFile(DEMO_SPEC);
    const spec = await resolveSpec(client, raw, baseDir);
    const view = await run(spec);
    expect(view.state).toBe('succeeded');
    expect(view.tasks).toHaveLength(6);
    for (const t of view.tasks) {
      expect(t.state).toBe('verified');
      const valid = t.executions.filter((e) => e.state === 'valid');
      expect(valid.length).toBeGreaterThanOrEqual(2);
      expect(new Set(valid.map((e) => e.resultHash)).size).toBe(1);
      expect(valid.map((e) => e.agentName)).not.toContain('provider-3');
      const cheat = t.executions.find((e) => e.agentName === 'provider-3');
      if (cheat) expect(['invalid', 'cancelled']).toContain(cheat.state);
    }
    // At least one of provider-3's corrupted results was actually compared and marked invalid.
    expect(
      view.tasks.flatMap((t) => t.executions).filter((e) => e.agentName === 'provider-3' && e.state === 'invalid')
        .length,
    ).toBeGreaterThan(0);
    // The cheater earns nothing and its reputation records every outvoted result; the honest ones are paid.
    const done = await waitForJob(client, view.id, (v) => v.billing.settled);
    for (const e of done.tasks.flatMap((t) => t.executions)) expect(e.paid !== null).toBe(e.state === 'valid');
    const cheater = new DeqoClient(net.url, net.providerKeys[2]!);
    expect((await cheater.balance()).earned).toBe(0);
    const rep = await cheater.providerReputation(100);
    expect(rep.reputation.consecutiveValid).toBe(0);
    expect(rep.events.filter((ev) => ev.jobId === view.id).every((ev) => ev.kind === 'invalid')).toBe(true);
    expect(rep.reputation.invalid).toBe(
      done.tasks.flatMap((t) => t.executions).filter((e) => e.agentName === 'provider-3' && e.state === 'invalid')
        .length,
    );
    expect((await new DeqoClient(net.url, net.providerKeys[0]!).balance()).earned).toBeGreaterThan(0);
    const results = await client.getResults(view.id);
    const accuracies = [];
    for (const t of results.tasks) {
      const file = t.manifest!.files.find((f) => f.path === 'result.json');
      expect(file).toBeDefined();
      const stdout = JSON.parse(await client.blobText(t.stdoutBlob!)) as { C: number; gamma: number; accuracy: number };
      expect(stdout.C).toBe(Number(t.params.C));
      accuracies.push(stdout.accuracy);
    }
    // A real SVM on the digits: well above chance (0.1), below perfect.
    for (const a of accuracies) {
      expect(a).toBeGreaterThan(0.9);
      expect(a).toBeLessThan(1);
    }
  });
});

describe('failures are classified and nothing goes down', () => {
  it.each([
    ['out_of_memory', { command: ['sh', '-c', 'tail /dev/zero'], resources: { memoryMb: 32 } }],
    ['timeout', { command: ['sleep', '60'], resources: { timeoutSeconds: 1 } }],
    ['image_not_found', { image: 'deqo/no-such-image:1', command: ['true'] }],
    ['nonzero_exit', { command: ['sh', '-c', 'echo partial > /outputs/p; exit 3'] }],
  ] as const)('%s', async (reason, patch) => {
    const view = await run({
      image: BUSYBOX,
      ...patch,
      verification: { replicas: 2, quorum: 2 },
    } as unknown as JobSpecInput);
    expect(view.state).toBe('failed');
    const t = view.tasks[0]!;
    expect(t.state).toBe('failed');
    expect(t.failure?.reason).toBe(reason);
    expect(t.failure?.blame).toBe('job');
    if (reason === 'nonzero_exit') expect(t.failure?.message).toContain('code 3');
    expect(t.executions.some((e) => e.failure?.reason === reason || e.exitCode === 3)).toBe(true);
  });

  it('keeps serving after all of that: a normal job still verifies', async () => {
    const view = await run({
      image: BUSYBOX,
      command: ['sh', '-c', 'echo ok > /outputs/ok'],
      verification: { replicas: 2, quorum: 2 },
    });
    expect(view.state).toBe('succeeded');
    expect((await client.listProviders()).filter((p) => p.online)).toHaveLength(3);
  });
});

describe('the sandbox', () => {
  it('has no network and cannot write outside /tmp and its output directory', async () => {
    const script = [
      'grep -c ":" /proc/net/dev > /outputs/interfaces',
      '(wget -q -T 2 -O- http://1.1.1.1 >/dev/null 2>&1 && echo reached || echo unreachable) > /outputs/net',
      '(touch /etc/escape 2>/dev/null && echo wrote || echo denied) > /outputs/rootfs',
      '(touch /inputs/escape 2>/dev/null && echo wrote || echo denied) > /outputs/inputs',
      'id -u > /outputs/uid',
    ].join('; ');
    const view = await run({ image: BUSYBOX, command: ['sh', '-c', script], verification: { replicas: 2, quorum: 2 } });
    expect(view.state).toBe('succeeded');
    const r = (await client.getResults(view.id)).tasks[0]!;
    const files = Object.fromEntries(r.manifest!.files.map((f) => [f.path, f]));
    expect(Object.keys(files).sort()).toEqual(['inputs', 'interfaces', 'net', 'rootfs', 'uid']);
    // The outputs tarball is what the buyer downloads; check its contents through the CLI's downloader.
    const { downloadResults } = await import('../../src/cli/download.js');
    const { mkdtemp, readFile } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const out = await mkdtemp(join(tmpdir(), 'deqo-res-'));
    await downloadResults(client, await client.getResults(view.id), out);
    const read = (f: string) => readFile(join(out, 'task-0', f), 'utf8').then((s) => s.trim());
    expect(await read('interfaces')).toBe('1'); // only lo
    expect(await read('net')).toBe('unreachable');
    expect(await read('rootfs')).toBe('denied');
    expect(await read('inputs')).toBe('denied');
    expect(await read('uid')).toBe('65534');
  });
});

describe('bad input', () => {
  async function rejected(body: unknown): Promise<ApiError> {
    try {
      await client.submitJob(body as JobSpecInput);
    } catch (err) {
      return err as ApiError;
    }
    throw new Error('expected the submission to be rejected');
  }
  it('names the field and what was expected', async () => {
    const e1 = await rejected({ command: ['true'] });
    expect(e1.status).toBe(400);
    expect(e1.code).toBe('validation_failed');
    expect(e1.details).toEqual(expect.arrayContaining([expect.objectContaining({ path: 'image' })]));
    const e2 = await rejected({ image: BUSYBOX, command: ['true'], resources: { memoryMb: 'lots' } });
    expect(e2.details).toEqual(expect.arrayContaining([expect.objectContaining({ path: 'resources.memoryMb' })]));
    const e3 = await rejected({ image: BUSYBOX, command: ['true'], verification: { replicas: 1, quorum: 2 } });
    expect(e3.message).toContain('verification.quorum');
    const e4 = await rejected({ image: BUSYBOX, command: ['true'], inputs: [{ path: 'x', blob: 'a'.repeat(64) }] });
    expect(e4.status).toBe(404);
  });
  it('answers malformed JSON and missing keys with 4xx JSON errors', async () => {
    const res = await fetch(`${net.url}/v1/jobs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${net.buyerKey}` },
      body: '{"image": ',
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('validation_failed');
    const anon = await fetch(`${net.url}/v1/jobs`);
    expect(anon.status).toBe(401);
    const wrong = new DeqoClient(net.url, 'deqo_wrong');
    await expect(wrong.listJobs()).rejects.toMatchObject({ status: 401, code: 'unauthorized' });
  });
});
