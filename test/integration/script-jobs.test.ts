/**
 * Script jobs over a real local network (coordinator in-process, agents as `deqo agent` processes, real Docker,
 * the deqo/python-sklearn:bookworm image): a script that prints and writes /outputs verifies on two providers;
 * a script requiring a module the image lacks fails as requirements_unavailable, both replicas agreeing; its output
 * streams live (agent log tail → coordinator → Server-Sent Events); and `deqo run` as a user runs it.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DeqoClient } from '../../src/client/index.js';
import type { LiveEvent } from '../../src/protocol/index.js';
import { DEQO_BIN, type LocalNetwork } from '../../src/cli/network.js';
import { saveProfile } from '../../src/cli/settings.js';
import { settled, testNetwork, waitForJob } from '../helpers/network.js';

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
});

const SOURCE = `import sklearn, sys
print("hello from", sys.argv[0])
with open("/outputs/answer.txt", "w") as f:
    f.write(str(6 * 7))
`;

describe('script jobs', () => {
  it('run the source as /inputs/main.py in the default image, and verify on two providers', async () => {
    const { jobId } = await client.submitJob({
      script: { language: 'python', source: SOURCE, requirements: ['scikit-learn', 'numpy'] },
      verification: { replicas: 2, quorum: 2 },
      resources: { memoryMb: 256, timeoutSeconds: 120 },
    });
    const view = await waitForJob(client, jobId, settled);
    expect(view.state, JSON.stringify(view.tasks[0]?.executions.map((e) => e.failure))).toBe('succeeded');
    expect(view.spec.image).toBe('deqo/python-sklearn:bookworm');
    expect(view.spec.command).toEqual(['python3', '/inputs/main.py']);
    const t = (await client.getResults(jobId)).tasks[0]!;
    expect(t.agreedBy).toHaveLength(2);
    expect(await client.blobText(t.stdoutBlob!)).toBe('hello from /inputs/main.py\n');
    expect(t.manifest!.files.map((f) => f.path)).toEqual(['answer.txt']);
  });

  it('fail as requirements_unavailable, naming the missing module, when a requirement is not in the image (no network)', async () => {
    const { jobId } = await client.submitJob({
      script: { language: 'python', source: 'print("never runs")\n', requirements: ['numpy', 'no-such-package>=1'] },
      verification: { replicas: 2, quorum: 2 },
      resources: { memoryMb: 256, timeoutSeconds: 120 },
    });
    const view = await waitForJob(client, jobId, settled);
    expect(view.state).toBe('failed');
    const task = view.tasks[0]!;
    expect(task.failure).toMatchObject({ reason: 'requirements_unavailable', blame: 'job' });
    expect(task.failure!.message).toContain('missing module no_such_package (requirement no-such-package>=1)');
    // Both replicas reported the same failure: it was decided by votes like a result, and nothing ran.
    expect(task.executions.map((e) => [e.state, e.failure?.reason])).toEqual([
      ['valid', 'requirements_unavailable'],
      ['valid', 'requirements_unavailable'],
    ]);
    const stdout = task.executions[0]!.stdoutBlob;
    if (stdout) expect(await client.blobText(stdout)).toBe('');
  });

  it('stream their output live: log events arrive while the script runs, and the coordinator keeps the text', async () => {
    const got: LiveEvent[] = [];
    const ac = new AbortController();
    const following = client.events({}, (e) => got.push(e), ac.signal);
    const source = 'import time\nfor i in range(3):\n    print("tick", i)\n    time.sleep(1.5)\n';
    const { jobId } = await client.submitJob({
      script: { language: 'python', source },
      verification: { mode: 'none' },
      resources: { memoryMb: 256 },
    });
    const view = await waitForJob(client, jobId, settled);
    expect(view.state).toBe('succeeded');
    await new Promise((r) => setTimeout(r, 300)); // the last events may still be on their way
    ac.abort();
    await following;
    const mine = got.filter((e) => e.event !== 'network' && e.data.jobId === jobId);
    const logs = mine.filter((e) => e.event === 'log').map((e) => (e.data as { data: string }).data);
    expect(logs.join('')).toBe('tick 0\ntick 1\ntick 2\n');
    // Output came while it ran: the first log event precedes the job's end (and the execution's report).
    const firstLog = mine.findIndex((e) => e.event === 'log');
    const ended = mine.findIndex((e) => e.event === 'job' && e.data.state === 'succeeded');
    const reported = mine.findIndex((e) => e.event === 'execution' && ['reported', 'valid'].includes(e.data.state));
    expect(firstLog).toBeGreaterThanOrEqual(0);
    expect(firstLog).toBeLessThan(ended);
    expect(reported === -1 || firstLog < reported).toBe(true);
    const executionId = view.tasks[0]!.executions[0]!.id;
    expect(await client.executionLog(jobId, executionId)).toBe('tick 0\ntick 1\ntick 2\n');
  });

  it('verify floating-point outputs that differ in the last digits under a tolerance comparator, and only under one', async () => {
    // Each provider's loss differs by up to 1e-9 (as a real training run's would on another CPU or thread count).
    const source = `import json, random
json.dump({"loss": 0.25 + random.random() * 1e-9, "epochs": 3}, open("/outputs/metrics.json", "w"))
print("trained")
`;
    const submit = (compare?: Array<{ glob: string; format: 'json'; absTol: number }>) =>
      client.submitJob({
        script: { language: 'python', source },
        verification: { replicas: 2, quorum: 2, maxExecutions: 2, ...(compare ? { compare } : {}) },
        resources: { memoryMb: 256, timeoutSeconds: 120 },
      });
    const tolerant = await submit([{ glob: '*.json', format: 'json', absTol: 1e-6 }]);
    const exact = await submit();
    const [t, x] = await Promise.all([
      waitForJob(client, tolerant.jobId, settled),
      waitForJob(client, exact.jobId, settled),
    ]);
    expect(t.state, JSON.stringify(t.tasks[0]?.executions.map((e) => e.failure))).toBe('succeeded');
    expect(t.tasks[0]!.executions.map((e) => e.state)).toEqual(['valid', 'valid']);
    const r = (await client.getResults(tolerant.jobId)).tasks[0]!;
    expect(r.agreedBy).toHaveLength(2);
    expect(r.manifest!.files.map((f) => f.path)).toEqual(['metrics.json']);
    // Without the comparator the two results' hashes differ: no quorum within two executions.
    expect(x.state).toBe('failed');
    expect(x.tasks[0]!.failure).toMatchObject({ reason: 'no_quorum' });
  });

  it('deqo run: submits the file with its requirements, follows it, and prints the verified stdout', async () => {
    const script = join(home, 'hello.py');
    await writeFile(script, 'import numpy\nprint("sum", int(numpy.arange(10).sum()))\n');
    await writeFile(join(home, 'requirements.txt'), '# what hello.py needs\nnumpy  # arrays\n\n');
    const r = await exec(
      process.execPath,
      [
        DEQO_BIN,
        'run',
        script,
        '--requirements-file',
        join(home, 'requirements.txt'),
        '--requirement',
        'scikit-learn',
        '--replicas',
        '2',
        '--quorum',
        '2',
        '--memory',
        '256m',
      ],
      { env: { ...process.env, DEQO_HOME: home, DEQO_API_KEY: '' }, cwd: home },
    );
    expect(r.stdout).toBe('sum 45\n');
    expect(r.stderr).toMatch(/task 0 \(#0\): verified by provider-\d \+ provider-\d/);
    const [job] = await client.listJobs({ limit: 1 });
    expect((await client.getJob(job!.id)).spec.script?.requirements).toEqual(['numpy', 'scikit-learn']);

    const failed = await exec(
      process.execPath,
      [DEQO_BIN, 'run', script, '--requirement', 'nosuchmodule', '--verify', 'none', '--json'],
      { env: { ...process.env, DEQO_HOME: home, DEQO_API_KEY: '' }, cwd: home },
    ).catch((e: { code: number; stdout: string }) => e);
    expect('code' in failed ? failed.code : 0).toBe(1);
    const out = JSON.parse(failed.stdout) as {
      state: string;
      tasks: Array<{ failure: { reason: string; message: string } }>;
    };
    expect(out.state).toBe('failed');
    expect(out.tasks[0]!.failure.reason).toBe('requirements_unavailable');
    expect(out.tasks[0]!.failure.message).toContain('missing module nosuchmodule');
  });
});
