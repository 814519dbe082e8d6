/**
 * `deqo agent` offers as a user meets them: `--print-offer` (config file + flags, no Docker or key needed),
 * usage errors naming the flag, the executor's job CPU counter (subtracted from the owner's load), and, on a
 * real local network (coordinator + agent process + Docker), the idle policy played by a test owner
 * (`--test-owner-load-file`): the agent publishes owner_busy and stops its running execution as owner_returned,
 * then takes work again when the owner leaves. Needs `npm run build` (the CLI runs from dist/).
 */
import { execFile } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { DockerExecutor } from '../../src/agent/docker-executor.js';
import type { DeqoClient } from '../../src/client/index.js';
import { DEQO_BIN, type LocalNetwork } from '../../src/cli/network.js';
import { LimitsSchema, ResourcesSchema, type JobView, type ProviderView } from '../../src/protocol/index.js';
import { settled, testNetwork, waitForJob } from '../helpers/network.js';

const exec = promisify(execFile);

/** Runs `deqo …` as a separate process, without any key or coordinator; never rejects. */
async function deqo(home: string, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await exec(process.execPath, [DEQO_BIN, ...args], {
      env: { ...process.env, DEQO_HOME: home, DEQO_API_KEY: '', DEQO_COORDINATOR: '' },
      cwd: home,
    });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

describe('deqo agent --print-offer', () => {
  it('prints the offer merged from the config file and flags, as JSON', async () => {
    const home = await mkdtemp(join(tmpdir(), 'deqo-agent-'));
    const config = join(home, 'agent.yaml');
    await writeFile(
      config,
      [
        'name: lab-pc',
        'cpus: 1',
        'memory: 256m',
        'disk: 2g',
        'prices: { cpuHour: 0.04, gpuHour: 0.9 }',
        'labels: { zone: eu-west, gpu: a100 }',
        "windows: ['* 22-23,0-6 * * 1-5', '* * * * 6,0']",
        'timezone: Europe/Paris',
        'idlePolicy: { enabled: true, suspendAfterSeconds: 60 }',
      ].join('\n'),
    );
    const r = await deqo(
      home,
      'agent',
      '--print-offer',
      '--json',
      '--config',
      config,
      '--label',
      'gpu=none',
      '--start-fee',
      '0.01',
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as {
      name: string;
      lend: { cpus: number; memoryMb: number };
      offer: ProviderView['offer'];
    };
    expect(out.name).toBe('lab-pc');
    expect(out.lend).toMatchObject({ cpus: 1, memoryMb: 256 });
    expect(out.offer).toEqual({
      prices: { cpuHour: 0.04, memoryGiBHour: 0.005, gpuHour: 0.9, startFee: 0.01 },
      diskMb: 2048,
      labels: { zone: 'eu-west', gpu: 'none' },
      windows: ['* 22-23,0-6 * * 1-5', '* * * * 6,0'],
      timezone: 'Europe/Paris',
      idlePolicy: {
        enabled: true,
        startBelow: 0.3,
        suspendAbove: 0.5,
        suspendAfterSeconds: 60,
        resumeAfterSeconds: 300,
      },
    });

    const text = await deqo(home, 'agent', '--print-offer', '--config', config);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain('offer of lab-pc');
    expect(text.stdout).toContain('0.04 cr per CPU-hour');
    expect(text.stdout).toContain("'* * * * 6,0' (Europe/Paris)");
  });

  it('exits 2 naming the flag or expression for a bad value', async () => {
    const home = await mkdtemp(join(tmpdir(), 'deqo-agent-'));
    const cron = await deqo(home, 'agent', '--print-offer', '--window', '* 24 * * *');
    expect(cron.code).toBe(2);
    expect(cron.stderr).toContain("--window: invalid availability window '* 24 * * *'");
    const price = await deqo(home, 'agent', '--print-offer', '--price-memory-gib-hour', '2000000');
    expect(price.code).toBe(2);
    expect(price.stderr).toContain('prices.memoryGiBHour (--price-memory-gib-hour)');
    const nan = await deqo(home, 'agent', '--print-offer', '--idle-start-below', 'low');
    expect(nan.code).toBe(2);
    expect(nan.stderr).toContain('--idle-start-below');
  });
});

describe('job CPU time, which the owner-load sampler subtracts', () => {
  it('counts the CPU of running and ended containers, and never decreases', async () => {
    const executor = new DockerExecutor({ agentId: `itest-load-${process.pid}` });
    const dir = await mkdtemp(join(tmpdir(), 'deqo-jobcpu-'));
    expect(executor.jobCpuMs()).toBe(0);
    const run = executor.run({
      executionId: `load-${process.pid}`,
      fencingToken: 1,
      image: 'deqo/busybox:test',
      command: ['sh', '-c', 'end=$(($(date +%s)+3)); while [ $(date +%s) -lt $end ]; do :; done'],
      env: {},
      resources: { ...ResourcesSchema.parse({}), timeoutSeconds: 60 },
      limits: LimitsSchema.parse({}),
      hostInputsDir: join(dir, 'inputs'),
      hostOutputDir: join(dir, 'outputs'),
      outputDir: '/outputs',
      stdoutPath: join(dir, 'stdout'),
      stderrPath: join(dir, 'stderr'),
      network: false,
    });
    let ended = false;
    void run.finally(() => {
      ended = true;
    });
    let midRun = 0;
    while (!ended && midRun === 0) {
      midRun = executor.jobCpuMs();
      await new Promise((r) => setTimeout(r, 100));
    }
    const outcome = await run;
    expect(outcome.kind).toBe('exited');
    expect(midRun).toBeGreaterThan(0); // seen while the container was still running
    expect(executor.jobCpuMs()).toBeGreaterThanOrEqual(midRun);
    expect(Math.abs(executor.jobCpuMs() - outcome.usage.cpuMs)).toBeLessThanOrEqual(0.5);
    expect(outcome.usage.cpuMs).toBeGreaterThan(500);
  });
});

describe('idle policy on a live network', () => {
  let net: LocalNetwork | undefined;
  afterAll(async () => {
    await net?.stop();
  });

  it('goes owner_busy and stops its execution as owner_returned when the owner comes back; available again when they leave', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'deqo-owner-'));
    const loadFile = join(dir, 'owner-load');
    await writeFile(loadFile, '0');
    let client: DeqoClient;
    ({ net, client } = await testNetwork({
      agents: 1,
      engine: { heartbeatIntervalMs: 500, leaseTtlMs: 3_000, agentTtlMs: 3_000 },
      agentArgs: () => [
        '--idle-policy',
        '--idle-suspend-after',
        '0',
        '--idle-resume-after',
        '0',
        '--test-owner-load-file',
        loadFile,
      ],
    }));
    const provider = async () => (await client.listProviders())[0]!;
    const until = async (what: string, pred: () => Promise<boolean>) => {
      const deadline = Date.now() + 60_000;
      while (!(await pred())) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    };
    expect((await provider()).offer.idlePolicy.enabled).toBe(true);
    expect((await provider()).availability.state).toBe('available');

    const { jobId } = await client.submitJob({
      image: 'deqo/busybox:test',
      command: ['sleep', '120'],
      resources: { timeoutSeconds: 300 },
    });
    await waitForJob(client, jobId, (v: JobView) => v.tasks[0]!.executions.some((e) => e.state === 'running'));

    await writeFile(loadFile, '0.9');
    await until('owner_busy', async () => (await provider()).availability.state === 'owner_busy');
    const stopped = await waitForJob(client, jobId, (v) =>
      v.tasks[0]!.executions.some((e) => e.failure?.reason === 'owner_returned'),
    );
    const exec = stopped.tasks[0]!.executions.find((e) => e.failure?.reason === 'owner_returned')!;
    expect(exec.failure?.blame).toBe('provider');
    expect(exec.failure?.message).toContain('idle policy');
    expect(exec.paid ?? 0).toBe(0);
    const busy = await provider();
    expect(busy.availability.message).toMatch(/owner active/);

    await writeFile(loadFile, '0');
    await until('available again', async () => (await provider()).availability.state === 'available');
    await client.cancelJob(jobId).catch(() => undefined);
    await waitForJob(client, jobId, settled).catch(() => undefined);
  });
});
