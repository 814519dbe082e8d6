/**
 * DockerExecutor against the real Docker engine (no mocks). Needs the local image deqo/busybox:test
 * (scripts/build-images.sh builds it). Every test checks that no container of this suite survives.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { buildCreateOptions } from '../../src/agent/docker-hardening.js';
import { removeTree } from '../../src/agent/remove-tree.js';
import { DockerExecutor } from '../../src/agent/docker-executor.js';
import type { ExecutionOutcome, ExecutionRequest } from '../../src/agent/executor.js';
import { LimitsSchema, ResourcesSchema, type Limits, type Resources } from '../../src/protocol/index.js';

const BUSYBOX = 'deqo/busybox:test';
const AGENT = `itest-${randomBytes(4).toString('hex')}`;
const docker = new Docker({ socketPath: '/var/run/docker.sock' });
const executor = new DockerExecutor({ agentId: AGENT });
let root: string;

interface Job {
  dir: string;
  req: ExecutionRequest;
}

/** A request for busybox with default resources/limits, in a fresh temp directory. */
async function job(
  command: string[],
  over: {
    resources?: Partial<Resources>;
    limits?: Partial<Limits>;
    network?: boolean;
    signal?: AbortSignal;
    env?: Record<string, string>;
    image?: string;
  } = {},
): Promise<Job> {
  const executionId = `it-${randomBytes(6).toString('hex')}`;
  const dir = await mkdtemp(join(root, 'exec-'));
  const req: ExecutionRequest = {
    executionId,
    fencingToken: 1,
    image: over.image ?? BUSYBOX,
    command,
    env: over.env ?? { DEQO_EXECUTION_ID: executionId },
    resources: { ...ResourcesSchema.parse({}), timeoutSeconds: 60, ...over.resources },
    limits: { ...LimitsSchema.parse({}), ...over.limits },
    hostInputsDir: join(dir, 'inputs'),
    hostOutputDir: join(dir, 'outputs'),
    outputDir: '/outputs',
    stdoutPath: join(dir, 'stdout'),
    stderrPath: join(dir, 'stderr'),
    network: over.network ?? false,
    ...(over.signal ? { signal: over.signal } : {}),
  };
  await mkdir(req.hostInputsDir);
  return { dir, req };
}

const sh = (script: string): string[] => ['sh', '-c', script];
const stdout = (j: Job): Promise<string> => readFile(j.req.stdoutPath, 'utf8');
const stderr = (j: Job): Promise<string> => readFile(j.req.stderrPath, 'utf8');

function expectFailed(o: ExecutionOutcome, reason: string): void {
  expect(o.kind, JSON.stringify(o)).toBe('failed');
  if (o.kind === 'failed') expect(o.reason, o.message).toBe(reason);
}

/**
 * Records the container's state when the executor tells the outcome (`onEnded`, before it removes the container):
 * whether its process still runs and its exit code (137: killed by SIGKILL). Read `.state` after the run.
 */
function stateAtEnd(j: Job): { state?: { running: boolean; exitCode: number } } {
  const seen: { state?: { running: boolean; exitCode: number } } = {};
  j.req.onEnded = async () => {
    const s = (await docker.getContainer(`deqo-${j.req.executionId}`).inspect()).State;
    seen.state = { running: s.Running, exitCode: s.ExitCode };
  };
  return seen;
}

async function ourContainers(): Promise<Docker.ContainerInfo[]> {
  return docker.listContainers({ all: true, filters: { label: [`deqo.agent=${AGENT}`] } });
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'deqo-docker-it-'));
  await docker.getImage(BUSYBOX).inspect(); // fails clearly when the test image is missing
});

afterEach(async () => {
  const left = await ourContainers();
  const named = (await docker.listContainers({ all: true })).filter((c) =>
    c.Names.some((n) => n.startsWith('/deqo-it-')),
  );
  expect(
    left.map((c) => c.Names),
    'containers left behind',
  ).toEqual([]);
  expect(
    named.map((c) => c.Names),
    'deqo-it-* containers left behind',
  ).toEqual([]);
});

afterAll(async () => {
  for (const c of await executor.containers().catch(() => [])) await executor.remove(c.containerId).catch(() => {});
  if (root) await removeTree(root);
});

describe('DockerExecutor', () => {
  it('reports the engine version', async () => {
    expect(await executor.version()).toMatch(/^\d+\.\d+/);
  });

  it('throws ExecutorUnavailableError with a fix when no engine answers', async () => {
    const bad = new DockerExecutor({ agentId: AGENT, socketPath: join(tmpdir(), 'no-such-docker.sock') });
    await expect(bad.version()).rejects.toMatchObject({
      name: 'ExecutorUnavailableError',
      message: expect.stringMatching(/start dockerd/),
    });
  });

  it('runs a job: exit 0, stdout/stderr files, outputs on the host, usage', async () => {
    const j = await job(sh('echo hello; echo out > /outputs/a.txt; echo err >&2'));
    const o = await executor.run(j.req);
    expect(o).toMatchObject({ kind: 'exited', exitCode: 0, stdoutTruncated: false, stderrTruncated: false });
    expect(await stdout(j)).toBe('hello\n');
    expect(await stderr(j)).toBe('err\n');
    expect(await readFile(join(j.req.hostOutputDir, 'a.txt'), 'utf8')).toBe('out\n');
    expect(o.usage.wallMs).toBeGreaterThan(0);
  });

  it('reports a non-zero exit code as exited', async () => {
    const j = await job(sh('exit 3'));
    expect(await executor.run(j.req)).toMatchObject({ kind: 'exited', exitCode: 3 });
  });

  it('a command that cannot be executed exits 127 with a message on stderr', async () => {
    const j = await job(['/no/such/program']);
    expect(await executor.run(j.req)).toMatchObject({ kind: 'exited', exitCode: 127 });
    expect(await stderr(j)).toMatch(/no\/such\/program/);
  });

  it('passes env with HOME=/tmp and works in /tmp; /inputs is readable but read-only', async () => {
    const j = await job(
      sh('echo "$FOO $HOME $(pwd)"; cat /inputs/in.txt; touch /inputs/w 2>/dev/null && echo inputs-writable; true'),
      { env: { FOO: 'bar' } },
    );
    await writeFile(join(j.req.hostInputsDir, 'in.txt'), 'input!\n');
    expect(await executor.run(j.req)).toMatchObject({ kind: 'exited', exitCode: 0 });
    expect(await stdout(j)).toBe('bar /tmp /tmp\ninput!\n');
  });

  it('hardens the container: uid 65534, no capabilities, read-only root, writable /tmp and outputs, no network', async () => {
    const script = [
      'id -u',
      'grep CapEff /proc/self/status',
      'touch /etc/x 2>/dev/null && echo etc-writable',
      'touch /x 2>/dev/null && echo root-writable',
      'touch /tmp/x && echo tmp-ok',
      'touch /outputs/y && echo out-ok',
      'tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d " " | sed "s/^/if=/"',
      'true',
    ].join('; ');
    const j = await job(sh(script));
    expect(await executor.run(j.req)).toMatchObject({ kind: 'exited', exitCode: 0 });
    const lines = (await stdout(j)).trim().split('\n');
    expect(lines[0]).toBe('65534');
    expect(lines[1]).toMatch(/^CapEff:\s+0{16}$/);
    expect(lines).not.toContain('etc-writable');
    expect(lines).not.toContain('root-writable');
    expect(lines).toContain('tmp-ok');
    expect(lines).toContain('out-ok');
    expect(lines.filter((l) => l.startsWith('if='))).toEqual(['if=lo']);
    expect(existsSync(join(j.req.hostOutputDir, 'y'))).toBe(true);
  });

  it('gives a network interface besides lo when network is requested', async () => {
    const j = await job(sh('tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d " "'), { network: true });
    expect(await executor.run(j.req)).toMatchObject({ kind: 'exited', exitCode: 0 });
    const ifs = (await stdout(j)).trim().split('\n');
    expect(ifs).toContain('lo');
    expect(ifs.filter((i) => i !== 'lo').length).toBeGreaterThan(0);
  });

  it('enforces the pids limit', async () => {
    const j = await job(sh('for i in $(seq 1 40); do sleep 5 & done; wait; echo done'), { resources: { pids: 8 } });
    const o = await executor.run(j.req);
    expect(o.kind).toBe('exited');
    expect(await stderr(j)).toMatch(/fork|resource|again/i);
  });

  it('classifies memory exhaustion as out_of_memory', async () => {
    const j = await job(sh('tail /dev/zero'), { resources: { memoryMb: 32 } });
    const o = await executor.run(j.req);
    expectFailed(o, 'out_of_memory');
    if (o.kind === 'failed') expect(o.message).toMatch(/32 MiB/);
  });

  it('kills a job at its wall-clock limit: timeout', async () => {
    const j = await job(sh('sleep 30; echo finished'), { resources: { timeoutSeconds: 1 } });
    const end = stateAtEnd(j);
    expectFailed(await executor.run(j.req), 'timeout');
    // Killed, not run to its end: the process is gone, ended by SIGKILL before it could print `finished`.
    expect(end.state).toEqual({ running: false, exitCode: 137 });
    expect(await stdout(j)).toBe('');
  });

  it('reports a missing image as image_not_found (no pull)', async () => {
    const j = await job(['true'], { image: 'deqo/does-not-exist:1' });
    const o = await executor.run(j.req);
    expectFailed(o, 'image_not_found');
    if (o.kind === 'failed') expect(o.message).toMatch(/deqo\/does-not-exist:1 is not present/);
  });

  it('reports a missing image as image_not_found when the pull fails', async () => {
    const pulling = new DockerExecutor({ agentId: AGENT, pullMissing: true });
    const j = await job(['true'], { image: 'deqo/does-not-exist:1' });
    expectFailed(await pulling.run(j.req), 'image_not_found');
  }, 150_000);

  it('caps stdout at limits.stdoutBytes and flags truncation', async () => {
    const j = await job(sh('yes | head -c 10000; echo e >&2'), { limits: { stdoutBytes: 100 } });
    const o = await executor.run(j.req);
    expect(o).toMatchObject({ kind: 'exited', exitCode: 0, stdoutTruncated: true, stderrTruncated: false });
    expect((await stat(j.req.stdoutPath)).size).toBe(100);
    expect(await stdout(j)).toBe('y\n'.repeat(50));
    expect(await stderr(j)).toBe('e\n');
  });

  it('keeps all of a large stdout below the cap (flushed before run resolves)', async () => {
    const j = await job(sh('head -c 3000000 /dev/zero | tr "\\0" x'));
    const o = await executor.run(j.req);
    expect(o).toMatchObject({ kind: 'exited', exitCode: 0, stdoutTruncated: true });
    expect((await stat(j.req.stdoutPath)).size).toBe(LimitsSchema.parse({}).stdoutBytes);
  });

  it('kills a job whose output directory grows over limits.outputBytes', async () => {
    const j = await job(sh('head -c 100000 /dev/zero > /outputs/big; sleep 30; echo finished'), {
      limits: { outputBytes: 1000 },
    });
    const end = stateAtEnd(j);
    expectFailed(await executor.run(j.req), 'output_too_large');
    // Killed while it ran (not found too large after it exited, as the next test): SIGKILL before `finished`.
    expect(end.state).toEqual({ running: false, exitCode: 137 });
    expect(await stdout(j)).toBe('');
  });

  it('kills a job that hides output past the host PATH_MAX (beyond limits.outputBytes otherwise), as outputs_unpackageable', async () => {
    // Nested by renames of short paths (a shell's cd cannot go past PATH_MAX): D/D/…/D/big, 60 × 101 bytes deep.
    const d = 'd'.repeat(100);
    const nest = `cd /outputs && mkdir ${d} && head -c 100000 /dev/zero > ${d}/big && for i in $(seq 60); do mkdir n && mv ${d} n/${d} && mv n ${d}; done`;
    const j = await job(sh(`${nest}; sleep 30; echo finished`), {
      limits: { outputBytes: 1000 },
    });
    const o = await executor.run(j.req);
    expectFailed(o, 'outputs_unpackageable');
    if (o.kind === 'failed') expect(o.message).toMatch(/longer than 1024 bytes.*killed/);
    expect(await stdout(j)).toBe('');
  });

  it('checks the output size once more after exit', async () => {
    const j = await job(sh('head -c 5000 /dev/zero > /outputs/big'), { limits: { outputBytes: 1000 } });
    expectFailed(await executor.run(j.req), 'output_too_large');
  });

  it('cancels on abort', async () => {
    const ac = new AbortController();
    const j = await job(sh('echo started; sleep 30; echo finished'), { signal: ac.signal });
    const end = stateAtEnd(j);
    const running = executor.run(j.req);
    // Abort once it runs (or after 30 s, when it would be cancelled before starting).
    for (let i = 0; i < 600 && !(await stdout(j).catch(() => '')).includes('started'); i++)
      await new Promise((r) => setTimeout(r, 50));
    ac.abort();
    expectFailed(await running, 'cancelled');
    // Stopped by the abort, not run to its end: the process is gone, ended by SIGKILL before `finished`.
    expect(end.state).toEqual({ running: false, exitCode: 137 });
    expect(await stdout(j)).toBe('started\n');
  });

  it('samples cpu and memory usage of a longer job', async () => {
    const j = await job(sh('end=$(($(date +%s)+3)); while [ $(date +%s) -lt $end ]; do :; done'));
    const o = await executor.run(j.req);
    expect(o).toMatchObject({ kind: 'exited', exitCode: 0 });
    expect(o.usage.wallMs).toBeGreaterThanOrEqual(2000);
    expect(o.usage.cpuMs).toBeGreaterThan(500);
    expect(o.usage.maxMemoryBytes).toBeGreaterThan(0);
  });

  it('tells the caller the container id before it starts and the outcome before it is removed', async () => {
    const j = await job(sh('echo hi'));
    const seen: string[] = [];
    j.req.onCreated = async (id) => {
      seen.push(`created ${(await docker.getContainer(id).inspect()).State.Status}`);
    };
    j.req.onEnded = async (o) => {
      const still = await docker.listContainers({ all: true, filters: { name: [`deqo-${j.req.executionId}`] } });
      seen.push(`ended ${o.kind} ${still.length}`);
    };
    expect(await executor.run(j.req)).toMatchObject({ kind: 'exited', exitCode: 0 });
    expect(seen).toEqual(['created created', 'ended exited 1']);
  });

  it('lists its containers with their labels and removes them', async () => {
    const fakeAgent = `orphan-${randomBytes(4).toString('hex')}`;
    const other = new DockerExecutor({ agentId: fakeAgent });
    const j = await job(['sleep', '30']);
    j.req.fencingToken = 7;
    const running = other.run(j.req);
    const name = `deqo-${j.req.executionId}`;
    for (let i = 0; i < 100; i++) {
      const found = await docker.listContainers({ filters: { name: [name] } });
      if (found.length > 0) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    // While it runs, the engine reports the hardened configuration (CIS Docker §5).
    const info = await docker.getContainer(name).inspect();
    expect(info.Config.User).toBe('65534:65534');
    expect(info.Config.Labels).toMatchObject({
      'deqo.agent': fakeAgent,
      'deqo.execution': j.req.executionId,
      'deqo.fencing-token': '7',
    });
    expect(info.HostConfig).toMatchObject({
      NetworkMode: 'none',
      ReadonlyRootfs: true,
      CapDrop: ['ALL'],
      SecurityOpt: ['no-new-privileges'],
      Privileged: false,
      PidsLimit: j.req.resources.pids,
      Memory: j.req.resources.memoryMb * 1024 * 1024,
      MemorySwap: j.req.resources.memoryMb * 1024 * 1024,
      AutoRemove: false,
      LogConfig: { Type: 'json-file', Config: { 'max-size': String(16 * 1024 * 1024), 'max-file': '1' } },
    });
    expect(info.Mounts.map((m) => `${m.Destination}:${m.RW ? 'rw' : 'ro'}`).sort()).toEqual([
      '/inputs:ro',
      '/outputs:rw',
    ]);
    const listed = await other.containers();
    expect(listed).toEqual([
      { containerId: info.Id, executionId: j.req.executionId, fencingToken: 7, state: 'running' },
    ]);
    expect(await executor.containers()).toEqual([]); // another agent's containers are not listed
    await other.remove(info.Id);
    await other.remove(info.Id); // already gone: nothing
    expect(await docker.listContainers({ all: true, filters: { name: [name] } })).toEqual([]);
    expectFailed(await running, 'agent_error');
    expect(await other.containers()).toEqual([]);
  });
});

describe('DockerExecutor.attach (taking over a container after an agent restart)', () => {
  /** Creates the hardened container of `j` as the run path would, and optionally starts it — an agent that then died. */
  async function leftBehind(j: Job, start: boolean): Promise<string> {
    await mkdir(j.req.hostOutputDir, { recursive: true });
    await chmod(j.req.hostOutputDir, 0o777);
    const c = await docker.createContainer(buildCreateOptions(j.req, AGENT));
    if (start) await c.start();
    return c.id;
  }

  it('follows a running container to its end: stdout before and after the take-over, outputs, exit code, wall time from its start', async () => {
    const j = await job(sh('echo before; sleep 2; echo after; echo err >&2; echo x > /outputs/f; exit 3'));
    const id = await leftBehind(j, true);
    await new Promise((r) => setTimeout(r, 500));
    await writeFile(j.req.stdoutPath, 'before\n'); // what the agent had captured live before it died
    const o = await executor.attach(id, j.req);
    expect(o).toMatchObject({ kind: 'exited', exitCode: 3, stdoutTruncated: false });
    expect(o.usage.wallMs).toBeGreaterThanOrEqual(2000);
    expect(await stdout(j)).toBe('before\nafter\n');
    expect(await stderr(j)).toBe('err\n');
    expect(await readFile(join(j.req.hostOutputDir, 'f'), 'utf8')).toBe('x\n');
  });

  it('collects a container that exited while the agent was down', async () => {
    const j = await job(sh('echo done; echo out > /outputs/o'));
    const id = await leftBehind(j, true);
    await docker.getContainer(id).wait();
    const o = await executor.attach(id, j.req);
    expect(o).toMatchObject({ kind: 'exited', exitCode: 0 });
    expect(await stdout(j)).toBe('done\n');
    expect(existsSync(join(j.req.hostOutputDir, 'o'))).toBe(true);
  });

  it('starts a container that was created but never started', async () => {
    const j = await job(sh('echo started'));
    const id = await leftBehind(j, false);
    expect(await executor.attach(id, j.req)).toMatchObject({ kind: 'exited', exitCode: 0 });
    expect(await stdout(j)).toBe('started\n');
  });

  it("counts the wall-clock limit from the container's start, not from the take-over", async () => {
    const j = await job(['sleep', '60'], { resources: { timeoutSeconds: 1 } });
    const id = await leftBehind(j, true);
    await new Promise((r) => setTimeout(r, 1500));
    expectFailed(await executor.attach(id, j.req), 'timeout');
  });

  it('caps replayed stdout like a live run', async () => {
    const j = await job(sh('yes | head -c 10000'), { limits: { stdoutBytes: 100 } });
    const id = await leftBehind(j, true);
    await docker.getContainer(id).wait();
    expect(await executor.attach(id, j.req)).toMatchObject({ kind: 'exited', exitCode: 0, stdoutTruncated: true });
    expect(await stdout(j)).toBe('y\n'.repeat(50));
  });

  it('refuses to vouch for a result whose log does not start with what was captured before the restart', async () => {
    const j = await job(sh('echo second-half'));
    const id = await leftBehind(j, true);
    await docker.getContainer(id).wait();
    await writeFile(j.req.stdoutPath, 'first-half\n');
    expectFailed(await executor.attach(id, j.req), 'agent_restarted');
  });

  it('reports a container that no longer exists as agent_restarted', async () => {
    const j = await job(['true']);
    expectFailed(await executor.attach('0123456789ab', j.req), 'agent_restarted');
  });
});
