/**
 * The CLI as a user runs it: separate `deqo` processes against a real local network, checking output,
 * --json and exit codes; and an agent killed mid-execution (SIGKILL), whose lease expires and whose task
 * runs again on another provider.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DeqoClient } from '../../src/client/index.js';
import { DEQO_BIN, type LocalNetwork } from '../../src/cli/network.js';
import { saveProfile } from '../../src/cli/settings.js';
import { settled, testNetwork, waitForJob } from '../helpers/network.js';

const exec = promisify(execFile);
let net: LocalNetwork;
let client: DeqoClient;
let home: string;
/** The network's data folder (the coordinator's blobs are under coordinator/blobs/). */
let netDir: string;

beforeAll(async () => {
  // Short leases so a killed agent is noticed in seconds (heartbeat 500 ms, lease 2 s).
  ({
    net,
    client,
    dir: netDir,
  } = await testNetwork({
    agents: 3,
    engine: { heartbeatIntervalMs: 500, leaseTtlMs: 2_000, agentTtlMs: 2_000 },
  }));
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

describe('deqo CLI', () => {
  it('submits with docker-run style flags, waits, and downloads verified outputs', async () => {
    const sub = await deqo(
      'submit',
      '--wait',
      '--json',
      '--replicas',
      '2',
      '--quorum',
      '2',
      '--spot-checks',
      '--memory',
      '64m',
      '--timeout',
      '1m',
      '-e',
      'WHO=deqo',
      'deqo/busybox:test',
      'sh',
      '-c',
      'echo "hello $WHO" | tee /outputs/greeting.txt',
    );
    expect(sub.code).toBe(0);
    const job = JSON.parse(sub.stdout) as {
      id: string;
      state: string;
      spec: { resources: { memoryMb: number }; verification: { spotChecks: boolean } };
    };
    expect(job.state).toBe('succeeded');
    expect(job.spec.resources.memoryMb).toBe(64);
    expect(job.spec.verification.spotChecks).toBe(true);
    expect(sub.stderr).toMatch(/task 0 \(#0\): verified by provider-\d \+ provider-\d/);

    const res = await deqo('results', job.id, '-o', join(home, 'out'));
    expect(res.code).toBe(0);
    expect(await readFile(join(home, 'out', 'task-0', 'greeting.txt'), 'utf8')).toBe('hello deqo\n');

    const logs = await deqo('logs', job.id);
    expect(logs.stdout).toBe('hello deqo\n');

    const status = await deqo('status', job.id, '--json');
    expect(JSON.parse(status.stdout).tasks[0].state).toBe('verified');
    const jobs = await deqo('jobs', '--json');
    expect((JSON.parse(jobs.stdout) as Array<{ id: string }>).map((j) => j.id)).toContain(job.id);
  });

  it("downloads another provider's copy of the outputs when the verified copy is damaged on disk, and exits 70 when none matches", async () => {
    // Each container gives its output file its own time, so the two replicas' tarballs differ in bytes, not files.
    const sub = await deqo(
      'submit',
      '--wait',
      '--json',
      '--replicas',
      '2',
      '--quorum',
      '2',
      '--timeout',
      '1m',
      'deqo/busybox:test',
      'sh',
      '-c',
      'echo 42 > /outputs/answer.txt && touch -d @$RANDOM$RANDOM /outputs/answer.txt',
    );
    expect(sub.code, sub.stderr).toBe(0);
    const jobId = (JSON.parse(sub.stdout) as { id: string }).id;
    const results = await client.getResults(jobId);
    const [canonical, other] = results.tasks[0]!.replicas;
    expect(canonical!.outputsBlob).toBe(results.tasks[0]!.outputsBlob);
    expect(other!.outputsBlob).not.toBe(canonical!.outputsBlob);
    const blobFile = (sha: string) => join(netDir, 'coordinator', 'blobs', sha.slice(0, 2), sha);

    await writeFile(blobFile(canonical!.outputsBlob), 'damaged after it was checked');
    const res = await deqo('results', jobId, '-o', join(home, 'fallback'));
    expect(res.code, res.stderr).toBe(0);
    expect(await readFile(join(home, 'fallback', 'task-0', 'answer.txt'), 'utf8')).toBe('42\n');
    expect(res.stderr).toContain(`${canonical!.agentName}'s copy of the outputs does not match the verified result`);

    await writeFile(blobFile(other!.outputsBlob), 'damaged too');
    const none = await deqo('results', jobId, '-o', join(home, 'none'));
    expect(none.code).toBe(70);
    expect(none.stderr).toContain('error: task 0: no copy of the outputs matches the verified result');
    expect(none.stderr).not.toMatch(/\n\s+at /); // one clear line, no stack trace
  });

  it('runs an array job from a flag and pages its status: counts per state, a page of tasks, the next command', async () => {
    const sub = await deqo(
      'submit',
      '--wait',
      '--json',
      '--array',
      '7',
      'deqo/busybox:test',
      'sh',
      '-c',
      'echo task $DEQO_TASK_INDEX',
    );
    expect(sub.code, sub.stderr).toBe(0);
    const jobId = (JSON.parse(sub.stdout) as { id: string }).id;
    const page2 = await deqo('status', jobId, '--page', '2', '--page-size', '3');
    expect(page2.code).toBe(0);
    expect(page2.stdout).toContain('7 task(s)');
    expect(page2.stdout).toContain('tasks: 7 verified');
    expect(page2.stdout).toMatch(/^3 +#3 +verified/m);
    expect(page2.stdout).not.toMatch(/^2 +#2 /m);
    expect(page2.stdout).toContain(`tasks 4-6 of 7; next: deqo status ${jobId} --page 3 --page-size 3`);
    const failed = JSON.parse((await deqo('status', jobId, '--tasks', 'failed', '--json')).stdout) as {
      tasks: unknown[];
      taskPage: { total: number };
    };
    expect([failed.tasks.length, failed.taskPage.total]).toEqual([0, 0]);
    expect((await deqo('logs', jobId, '--task', '5')).stdout).toMatch(
      /^==> task 5 \(provider-\d, exec_\w+\) <==\ntask 5\n$/,
    );
    expect((await deqo('status', jobId, '--page-size', '5000')).code).toBe(2);
  });

  it('prints `deqo --help` from the help the build saved, the same text the CLI itself prints', async () => {
    const saved = await deqo('--help');
    expect(saved.code).toBe(0);
    const cli = join(dirname(DEQO_BIN), '..', 'dist', 'cli');
    const live = await exec(process.execPath, [join(cli, 'main.js'), '--help']);
    expect(saved.stdout).toBe(live.stdout);
    // `npm run build` saved it, after the CLI it came from (bin/deqo.js uses only such a file).
    expect(await readFile(join(cli, 'help.txt'), 'utf8')).toBe(saved.stdout);
    expect((await stat(join(cli, 'help.txt'))).mtimeMs).toBeGreaterThanOrEqual(
      (await stat(join(cli, 'main.js'))).mtimeMs,
    );
    expect(saved.stdout).toMatch(/^Usage: deqo \[options\] \[command\]/);
  });

  it('exits 1 when the job fails and says why', async () => {
    const sub = await deqo('submit', '--wait', 'deqo/busybox:test', 'sh', '-c', 'exit 4');
    expect(sub.code).toBe(1);
    expect(sub.stderr).toContain('nonzero_exit');
  });

  it('exits 2 naming the field for a bad spec, 3 for an unknown job, 4 without a key', async () => {
    const bad = await deqo('submit', '--quorum', '3', 'deqo/busybox:test', 'true');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('verification.quorum');
    expect((await deqo('status', 'job_doesnotexist')).code).toBe(3);
    const noKey = await exec(process.execPath, [DEQO_BIN, 'jobs'], {
      env: { ...process.env, DEQO_HOME: await mkdtemp(join(tmpdir(), 'deqo-empty-')) },
    }).then(
      () => 0,
      (e: { code: number; stderr: string }) => {
        expect(e.stderr).toContain('no API key');
        return e.code;
      },
    );
    expect(noKey).toBe(4);
    expect((await deqo('submit', '--memory', 'lots', 'deqo/busybox:test', 'true')).code).toBe(2);
  });

  it('cancels a running job and its container stops', async () => {
    const { jobId } = await client.submitJob({ image: 'deqo/busybox:test', command: ['sleep', '60'] });
    const running = await waitForJob(client, jobId, (v) => v.tasks[0]!.executions.some((e) => e.state === 'running'));
    const execId = running.tasks[0]!.executions.find((e) => e.state === 'running')!.id;
    const r = await deqo('cancel', jobId, '--json');
    expect(JSON.parse(r.stdout)).toEqual({ jobId, cancelled: true });
    const view = await client.getJob(jobId);
    expect(view.state).toBe('cancelled');
    expect(view.tasks[0]!.executions[0]).toMatchObject({ state: 'cancelled', desired: 'stop' });
    // The agent learns of it on its next heartbeat and removes the container.
    const docker = new Docker();
    const deadline = Date.now() + 20_000;
    while ((await docker.listContainers({ filters: { label: [`deqo.execution=${execId}`] } })).length > 0) {
      if (Date.now() > deadline) throw new Error('the container of a cancelled execution is still running');
      await new Promise((res) => setTimeout(res, 200));
    }
    expect((await deqo('cancel', jobId)).stdout).toContain('already ended');
  });

  it('quotes, shows balance and ledger, explains a waiting job, and exits 6 for an unaffordable job', async () => {
    const q = await deqo(
      'quote',
      '--json',
      '--replicas',
      '3',
      '--quorum',
      '2',
      '--timeout',
      '1m',
      'deqo/busybox:test',
      'true',
    );
    expect(q.code).toBe(0);
    const quote = JSON.parse(q.stdout) as { escrow: number; affordable: boolean; modes: Array<{ mode: string }> };
    expect(quote.affordable).toBe(true);
    expect(quote.modes.map((m) => m.mode)).toEqual(['none', 'replicate', 'adaptive']);
    const human = await deqo(
      'quote',
      '--verify',
      'adaptive',
      '--replicas',
      '3',
      '--quorum',
      '2',
      'deqo/busybox:test',
      'true',
    );
    expect(human.stdout).toMatch(/adaptive \(this spec\)\s+1–3/);

    const before = JSON.parse((await deqo('balance', '--json')).stdout) as { available: number };
    const poor = await deqo('submit', '--cpus', '8', '--timeout', '7d', '--replicas', '3', 'deqo/busybox:test', 'true');
    expect(poor.code).toBe(6);
    expect(poor.stderr).toMatch(/the job's escrow is [\d.]+ cr .* short by [\d.]+ cr/);
    expect(
      (await deqo('quote', '--cpus', '8', '--timeout', '7d', '--replicas', '3', 'deqo/busybox:test', 'true')).stdout,
    ).toMatch(/short by/);
    expect(JSON.parse((await deqo('balance', '--json')).stdout)).toEqual(before);

    const sub = await deqo('submit', '--label', 'gpu=h100', '--queue-timeout', '1h', 'deqo/busybox:test', 'true');
    const jobId = sub.stdout.trim();
    expect(sub.stderr).toMatch(/held in escrow/);
    const status = await deqo('status', jobId);
    expect(status.stdout).toContain(`see why: deqo explain ${jobId}`);
    const why = await deqo('explain', jobId);
    expect(why.code).toBe(0);
    expect(why.stdout).toMatch(/no provider can take them now \(3 labels\)/);
    expect(why.stdout).toMatch(/provider-1 .*labels: lacks label gpu=h100/);
    const ledger = await deqo('ledger', '--job', jobId, '--json');
    expect((JSON.parse(ledger.stdout) as Array<{ kind: string }>).map((e) => e.kind)).toEqual([
      'escrow_hold',
      'escrow_hold',
    ]);
    expect((await deqo('cancel', jobId)).code).toBe(0);
    const after = JSON.parse((await deqo('ledger', '--job', jobId, '--json')).stdout) as Array<{
      kind: string;
      account: string;
      amount: number;
    }>;
    expect(after.filter((e) => e.account.startsWith('acct:')).map((e) => e.kind)).toEqual(['refund', 'escrow_hold']);
    expect(JSON.parse((await deqo('balance', '--json')).stdout).available).toBe(before.available);
  });

  it('logs in, manages keys, and shows a provider its reputation and an admin the ledger audit', async () => {
    // A provider that has produced a valid result (from the first test's job).
    const firstJob = (await client.listJobs()).at(-1)!;
    const worker = (await client.getJob(firstJob.id)).tasks[0]!.executions.find((e) => e.state === 'valid')!.agentName;
    const login = await deqo(
      'login',
      '--coordinator',
      net.url,
      '--api-key',
      net.providerKeys[Number(worker.split('-')[1]) - 1]!,
      '--name',
      'prov1',
    );
    expect(login.code).toBe(0);
    expect(login.stdout).toContain(`as ${worker} (provider key)`);
    const rep = await deqo('provider', 'reputation', '--json', '--profile', 'prov1');
    expect(rep.code).toBe(0);
    expect(JSON.parse(rep.stdout).reputation.valid).toBeGreaterThan(0);
    expect(
      JSON.parse(rep.stdout).events.some(
        (e: { jobId: string; kind: string }) => e.jobId === firstJob.id && e.kind === 'valid',
      ),
    ).toBe(true);
    expect((await deqo('provider', 'agents', '--profile', 'prov1')).stdout).toMatch(
      new RegExp(`${worker}\\s+yes\\s+available`),
    );
    expect((await deqo('submit', '--profile', 'prov1', 'deqo/busybox:test', 'true')).code).toBe(4); // a provider key cannot submit

    const created = await deqo(
      'keys',
      'create',
      '--scope',
      'provider',
      '--label',
      'ci',
      '--json',
      '--profile',
      'prov1',
    );
    const key = JSON.parse(created.stdout) as { keyId: string; apiKey: string };
    expect(key.apiKey).toMatch(/^deqo_/);
    const listed = await deqo('keys', '--profile', 'prov1');
    expect(listed.stdout).toContain(key.keyId);
    expect(listed.stdout).not.toContain(key.apiKey);
    expect((await deqo('whoami', '--api-key', key.apiKey)).stdout).toContain(worker);
    expect((await deqo('keys', 'revoke', key.keyId, '--profile', 'prov1')).code).toBe(0);
    expect((await deqo('whoami', '--api-key', key.apiKey)).code).toBe(4);
    expect((await deqo('keys', 'create', '--scope', 'buyer', '--profile', 'prov1')).code).toBe(4); // not a buyer account

    const grant = await deqo('admin', 'grant', 'demo-buyer', '5', '--api-key', net.adminKey);
    expect(grant.stdout).toMatch(/granted 5 cr to demo-buyer/);
    expect((await deqo('admin', 'grant', 'demo-buyer', '5')).code).toBe(4); // the buyer is no admin
    expect((await deqo('admin', 'audit', '--api-key', net.adminKey)).stdout).toBe('ledger sound\n');
  });

  it('reruns the task elsewhere when its agent is killed mid-execution (lease expiry)', async () => {
    const { jobId } = await client.submitJob({
      image: 'deqo/busybox:test',
      command: ['sh', '-c', 'sleep 4; echo done > /outputs/d'],
    });
    const running = await waitForJob(client, jobId, (v) => v.tasks[0]!.executions.some((e) => e.state === 'running'));
    const victim = running.tasks[0]!.executions.find((e) => e.state === 'running')!.agentName;
    net.agents[Number(victim.split('-')[1]) - 1]!.kill('SIGKILL');
    const view = await waitForJob(client, jobId, settled);
    expect(view.state).toBe('succeeded');
    const execs = view.tasks[0]!.executions;
    expect(execs.find((e) => e.agentName === victim)).toMatchObject({
      state: 'lost',
      failure: { reason: 'lease_expired', blame: 'provider' },
    });
    expect(execs.find((e) => e.state === 'valid')!.agentName).not.toBe(victim);
  });
});
