/**
 * The provider's disk as a hard budget, against the real Docker engine (image deqo/busybox:test,
 * scripts/build-images.sh): the output cap holds at the write (a capped ext4 per execution, output-fs.ts) and an
 * input blob listed under many paths is stored once (inputs.ts). Needs root (mount) like the agent in CI.
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DockerExecutor } from '../../src/agent/docker-executor.js';
import type { ExecutionOutcome, ExecutionRequest } from '../../src/agent/executor.js';
import { placeInputs } from '../../src/agent/inputs.js';
import { isMountPoint, mountCappedOutputs, unmountOutputs } from '../../src/agent/output-fs.js';
import { outputFsPlan } from '../../src/core/index.js';
import { removeWorkDir, workDirs } from '../../src/agent/report-body.js';
import { buildManifest, UnpackageableOutputsError } from '../../src/agent/results.js';
import { LimitsSchema, ResourcesSchema } from '../../src/protocol/index.js';

const run = promisify(execFile);
const MIB = 1024 * 1024;
const AGENT = `disk-${randomBytes(4).toString('hex')}`;
const executor = new DockerExecutor({ agentId: AGENT });
let dataDir: string;

/**
 * Bytes the files under `dir` take on the host's disk (allocated blocks; each inode once, so hard links count once;
 * `-x`: not inside the capped output filesystem, whose blocks are the image's). Synced twice: the loop device, then
 * its image file.
 */
async function diskUsage(dir: string): Promise<number> {
  await run('sync');
  await run('sync');
  const { stdout } = await run('du', ['-s', '-x', '-B1', dir]);
  return Number(stdout.split('\t')[0]);
}

/** A request for busybox running `script` with an output cap of `outputBytes`, in a fresh work directory. */
async function request(script: string, outputBytes: number, inputsDir?: string): Promise<ExecutionRequest> {
  const executionId = `disk-${randomBytes(6).toString('hex')}`;
  const dirs = workDirs(dataDir, executionId);
  await mkdir(dirs.inputs, { recursive: true });
  await mkdir(dirs.outputs, { recursive: true });
  return {
    executionId,
    fencingToken: 1,
    image: 'deqo/busybox:test',
    command: ['sh', '-c', script],
    env: {},
    resources: { ...ResourcesSchema.parse({}), timeoutSeconds: 60 },
    limits: { ...LimitsSchema.parse({}), outputBytes },
    hostInputsDir: inputsDir ?? dirs.inputs,
    hostOutputDir: dirs.outputs,
    outputDir: '/outputs',
    stdoutPath: join(dirs.root, 'stdout'),
    stderrPath: join(dirs.root, 'stderr'),
    network: false,
  };
}

function expectFailed(o: ExecutionOutcome, reason: string): void {
  expect(o.kind, JSON.stringify(o)).toBe('failed');
  if (o.kind === 'failed') expect(o.reason, o.message).toBe(reason);
}

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'deqo-disk-it-'));
});

afterAll(async () => {
  for (const c of await executor.containers().catch(() => [])) await executor.remove(c.containerId).catch(() => {});
  for (const n of await readdir(join(dataDir, 'work')).catch(() => [] as string[]))
    await removeWorkDir(workDirs(dataDir, n));
  await rm(dataDir, { recursive: true, force: true });
});

describe('output cap at the write (capped ext4 per execution)', () => {
  const cap = 10 * MIB;
  const bound = outputFsPlan(cap).bytes; // the most the output folder can take on the provider's disk

  it.each([
    ['fallocate', 'fallocate -l 200M /outputs/big; echo exit=$?'],
    ['dd', 'dd if=/dev/zero of=/outputs/big bs=1M count=200; echo exit=$?'],
  ])('%s of 200 MiB against a 10 MiB cap stops at the cap on the host: output_too_large', async (_name, script) => {
    const req = await request(script, cap);
    const root = join(req.hostOutputDir, '..');
    const before = await diskUsage(root);
    expect(await mountCappedOutputs(req.hostOutputDir, cap)).toEqual({ capped: true });
    const outcome = await executor.run(req);
    const after = await diskUsage(root);
    console.info(`${_name}: work folder ${before} -> ${after} bytes on disk (cap ${cap}, image ${bound})`);
    expectFailed(outcome, 'output_too_large');
    expect(after - before).toBeLessThanOrEqual(bound);
    expect(after - before).toBeLessThan(20 * MIB);
    await unmountOutputs(req.hostOutputDir);
    expect(await isMountPoint(req.hostOutputDir)).toBe(false);
  });

  it('a job within its cap writes and ships its outputs as before', async () => {
    const req = await request(
      'mkdir -p /outputs/a/b && echo hi > /outputs/a/b/f && head -c 5000000 /dev/zero > /outputs/g',
      cap,
    );
    expect(await mountCappedOutputs(req.hostOutputDir, cap)).toEqual({ capped: true });
    const outcome = await executor.run(req);
    expect(outcome.kind, JSON.stringify(outcome)).toBe('exited');
    expect((await stat(join(req.hostOutputDir, 'g'))).size).toBe(5_000_000);
    expect(await readdir(req.hostOutputDir)).toEqual(['a', 'g']); // no lost+found
    await removeWorkDir(workDirs(dataDir, req.executionId));
    expect(await isMountPoint(req.hostOutputDir)).toBe(false);
  });

  it('never stops a job within its cap: as many files as it has inodes, each just over a block multiple', async () => {
    const plan = outputFsPlan(cap);
    const files = plan.inodes - 16; // a few inodes are the filesystem's own (root, reserved)
    const size = Math.floor(cap / files); // > 4 KiB: every file wastes almost a block to rounding
    expect(size % plan.blockSize).toBeGreaterThan(0);
    const req = await request(
      `i=0; while [ $i -lt ${files} ]; do head -c ${size} /dev/zero > /outputs/f$i || exit 9; i=$((i+1)); done`,
      cap,
    );
    expect(await mountCappedOutputs(req.hostOutputDir, cap)).toEqual({ capped: true });
    const outcome = await executor.run(req);
    expect(outcome, JSON.stringify(outcome)).toMatchObject({ kind: 'exited', exitCode: 0 });
    expect((await readdir(req.hostOutputDir)).length).toBe(files);
    await removeWorkDir(workDirs(dataDir, req.executionId));
  });

  it('mounts an image left by an earlier run again with its files (create: false)', async () => {
    const req = await request('true', cap);
    await mountCappedOutputs(req.hostOutputDir, cap);
    await writeFile(join(req.hostOutputDir, 'kept'), 'x');
    await unmountOutputs(req.hostOutputDir);
    expect(await mountCappedOutputs(req.hostOutputDir, cap, { create: false })).toEqual({ capped: true });
    expect(await readdir(req.hostOutputDir)).toEqual(['kept']);
    await removeWorkDir(workDirs(dataDir, req.executionId));
  });
});

describe('outputs the agent cannot package', () => {
  it("250 nested folders (a path past PATH_MAX) are the job's outputs_unpackageable, not ENAMETOOLONG", async () => {
    const name = 'a'.repeat(20);
    const req = await request(
      `cd /outputs; for i in $(seq 250); do mkdir ${name} && cd ${name}; done; echo x > f`,
      MIB,
    );
    expect(await mountCappedOutputs(req.hostOutputDir, MIB)).toEqual({ capped: true });
    const outcome = await executor.run(req);
    // The executor's output poll may see the deep path while the container runs (then it stops it as the job's
    // outputs_unpackageable); if the container exits first, packaging refuses the path. Never ENAMETOOLONG.
    if (outcome.kind === 'failed') expect(outcome.reason, JSON.stringify(outcome)).toBe('outputs_unpackageable');
    else {
      expect(outcome.kind, JSON.stringify(outcome)).toBe('exited');
      await expect(buildManifest(req.hostOutputDir, 0, req.stdoutPath)).rejects.toThrow(UnpackageableOutputsError);
    }
    await removeWorkDir(workDirs(dataDir, req.executionId));
  });
});

describe('inputs stored once per blob', () => {
  it('a 20 MiB blob under 50 input paths takes ~20 MiB and every path reads it, read-only', async () => {
    const blob = randomBytes(20 * MIB);
    const sha = createHash('sha256').update(blob).digest('hex');
    const inputs = Array.from({ length: 50 }, (_, i) => ({ path: `d${i % 5}/copy${i}.bin`, blob: sha }));
    const req = await request(
      'ls /inputs/d*/copy*.bin | wc -l; stat -c %i /inputs/d*/copy*.bin | sort -u | wc -l; sha256sum /inputs/d4/copy49.bin | cut -d" " -f1; echo x >> /inputs/d0/copy0.bin || echo read-only',
      MIB,
    );
    let downloads = 0;
    await placeInputs(inputs, req.hostInputsDir, async (_b, dest) => {
      downloads++;
      await writeFile(dest, blob);
    });
    const used = await diskUsage(req.hostInputsDir);
    console.info(`inputs: 50 paths of one 20 MiB blob take ${used} bytes on disk`);
    expect(downloads).toBe(1);
    expect(used).toBeLessThan(21 * MIB);
    const outcome = await executor.run(req);
    expect(outcome.kind, JSON.stringify(outcome)).toBe('exited');
    const { stdout } = await run('cat', [req.stdoutPath]);
    expect(
      stdout
        .trim()
        .split('\n')
        .map((l) => l.trim()),
    ).toEqual(['50', '1', sha, 'read-only']); // 50 paths, one file
  });

  it('refuses a download that does not match its SHA-256, naming the input', async () => {
    const dir = await mkdtemp(join(dataDir, 'in-'));
    await expect(
      placeInputs([{ path: 'a.txt', blob: '0'.repeat(64) }], dir, (_b, dest) => writeFile(dest, 'other')),
    ).rejects.toThrow(/input a\.txt does not match/);
  });
});
