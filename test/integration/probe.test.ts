/**
 * `deqo submit --check-determinism` against a real local network (coordinator, agents as processes, Docker): a job
 * writing random bytes fails naming its output file; a deterministic one passes its probe and succeeds.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DeqoClient } from '../../src/client/index.js';
import { DEQO_BIN, type LocalNetwork } from '../../src/cli/network.js';
import { saveProfile } from '../../src/cli/settings.js';
import { testNetwork } from '../helpers/network.js';

const exec = promisify(execFile);
let net: LocalNetwork;
let client: DeqoClient;
let home: string;

beforeAll(async () => {
  ({ net, client } = await testNetwork({ agents: 2 }));
  home = await mkdtemp(join(tmpdir(), 'deqo-home-'));
  await saveProfile(join(home, 'config.json'), 'local', { coordinator: net.url, apiKey: net.buyerKey });
});
afterAll(async () => {
  await net?.stop();
  const docker = new Docker();
  for (const c of await docker.listContainers({ all: true, filters: { label: ['deqo.agent'] } })) {
    await docker
      .getContainer(c.Id)
      .remove({ force: true })
      .catch(() => undefined);
  }
});

/** Runs `deqo …` as a separate process; resolves with its exit code and output (never rejects). */
async function deqo(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await exec(process.execPath, [DEQO_BIN, ...args], {
      env: { ...process.env, DEQO_HOME: home, DEQO_API_KEY: '' },
      cwd: home,
    });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

describe('deqo submit --check-determinism', () => {
  it('fails a job that writes random bytes, naming the output file, and shows it in deqo status', async () => {
    const script = 'head -c 16 /dev/urandom | od -x > /outputs/random.txt; echo fixed > /outputs/fixed.txt; echo hi';
    const spec = join(home, 'random.json');
    const job = { image: 'deqo/busybox:test', command: ['sh', '-c', script], array: { count: 3 } };
    await writeFile(spec, JSON.stringify({ ...job, resources: { cpus: 0.5 } }));
    const sub = await deqo('submit', '--wait', '--check-determinism', '-f', spec);
    expect(sub.code).toBe(1);
    expect(sub.stderr).toContain('nondeterministic');
    expect(sub.stderr).toContain('random.txt');
    const view = await client.getJob(sub.stdout.split(' ')[0]!);
    expect(view.state).toBe('failed');
    expect(view.probe).toBe('failed');
    expect(view.tasks).toHaveLength(3);
    for (const t of view.tasks) expect(t.failure?.message).toMatch(/these outputs differ: random\.txt\./);
    expect(view.tasks.flatMap((t) => t.executions).map((e) => e.probe)).toEqual([1, 1]);
    const status = await deqo('status', view.id);
    expect(status.stdout).toContain('determinism probe failed');
    expect(status.stdout).toMatch(/these outputs differ: random\.txt\./);
  });

  it('passes the probe of a deterministic job and runs its tasks', async () => {
    const sub = await deqo(
      'submit',
      '--wait',
      '--json',
      '--check-determinism',
      '--cpus',
      '0.5',
      'deqo/busybox:test',
      'sh',
      '-c',
      'echo 42 > /outputs/answer.txt',
    );
    expect(sub.code).toBe(0);
    const job = await client.getJob((JSON.parse(sub.stdout) as { id: string }).id);
    expect(job.state).toBe('succeeded');
    expect(job.probe).toBe('passed');
    expect(job.tasks[0]!.executions.map((e) => [e.probe ?? 0, e.state])).toEqual([
      [1, 'cancelled'],
      [1, 'cancelled'],
      [0, 'valid'],
    ]);
  });

  it('quotes the probe in the escrow', async () => {
    const args = ['--json', '--cpus', '0.5', 'deqo/busybox:test', 'true'];
    const plain = JSON.parse((await deqo('quote', ...args)).stdout) as { escrow: number; executionMaxCost: number };
    const probed = JSON.parse((await deqo('quote', '--check-determinism', ...args)).stdout) as { escrow: number };
    expect(probed.escrow - plain.escrow).toBeCloseTo(2 * plain.executionMaxCost, 9);
    const text = await deqo('quote', '--check-determinism', ...args.slice(1));
    expect(text.stdout).toContain('includes the determinism probe: 2 executions of task 0');
  });
});
