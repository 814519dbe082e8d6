/**
 * Hostile buyers over a real local network (coordinator in-process, `deqo agent` processes, real Docker): the job
 * specs of issue 13 that used to be accepted and then fail on every agent as the provider's fault are refused at
 * submit with 400 naming the field; a job that nests its outputs past the host's PATH_MAX fails as its own
 * `outputs_unpackageable` on both replicas, and neither provider's reputation records an error.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiError, type DeqoClient } from '../../src/client/index.js';
import type { LocalNetwork } from '../../src/cli/network.js';
import type { JobSpecInput } from '../../src/protocol/index.js';
import { settled, testNetwork, waitForJob } from '../helpers/network.js';

let net: LocalNetwork;
let client: DeqoClient;
let blob: string;

beforeAll(async () => {
  ({ net, client } = await testNetwork({ agents: 2 }));
  blob = (await client.uploadBytes(new TextEncoder().encode('input'))).sha256;
});
afterAll(async () => {
  await net?.stop();
});

const base = { image: 'deqo/busybox:test', command: ['true'] };

async function refusal(spec: JobSpecInput): Promise<ApiError> {
  const err = await client.submitJob(spec).then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ApiError);
  return err as ApiError;
}

describe('hostile buyers', () => {
  it('are refused at submit with 400 naming the field', async () => {
    const hostile: [JobSpecInput, string][] = [
      [{ ...base, outputDir: '/tmp' }, 'outputDir'],
      [{ ...base, outputDir: '//inputs' }, 'outputDir'],
      [{ ...base, outputDir: '/.' }, 'outputDir'],
      [{ ...base, outputDir: '/proc' }, 'outputDir'],
      [
        { ...base, env: Object.fromEntries(Array.from({ length: 60 }, (_, i) => [`V${i}`, 'x'.repeat(65_000)])) },
        'env',
      ],
      [
        {
          ...base,
          inputs: [
            { path: 'a', blob },
            { path: 'a/b', blob },
          ],
        },
        'inputs.1.path',
      ],
      [{ script: { language: 'python', source: 'print(1)' }, inputs: [{ path: 'main.py/x', blob }] }, 'inputs.0.path'],
      [
        {
          ...base,
          resources: { cpus: 256, gpus: 16 },
          maxPrice: { cpuHour: 1e6, gpuHour: 1e6, memoryGiBHour: 1e6, startFee: 1e6 },
          array: { count: 10_000 },
        },
        'maxPrice',
      ],
    ];
    for (const [spec, field] of hostile) {
      const err = await refusal(spec);
      expect(err.status, `${field}: ${err.message}`).toBe(400);
      expect((err.details as { path: string }[])[0]!.path).toBe(field);
    }
  });

  it("fail as their own outputs_unpackageable when the outputs nest past PATH_MAX; providers' reputations untouched", async () => {
    const d = 'd'.repeat(100);
    const nest = `cd /outputs && mkdir ${d} && echo x > ${d}/f && for i in $(seq 60); do mkdir n && mv ${d} n/${d} && mv n ${d}; done`;
    const { jobId } = await client.submitJob({
      image: 'deqo/busybox:test',
      command: ['sh', '-c', nest],
      verification: { replicas: 2, quorum: 2 },
      resources: { memoryMb: 64, timeoutSeconds: 60 },
    });
    const view = await waitForJob(client, jobId, settled);
    const failures = view.tasks[0]!.executions.map((e) => e.failure);
    expect(view.state, JSON.stringify(failures)).toBe('failed');
    expect(failures).toHaveLength(2);
    for (const f of failures) expect(f).toMatchObject({ reason: 'outputs_unpackageable', blame: 'job' });
    for (const p of await client.listProviders()) expect(p.reputation.errors).toBe(0);
  });
});
