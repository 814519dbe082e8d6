/** Unit tests of the pure Docker hardening helpers (no Docker engine needed). */
import { describe, expect, it } from 'vitest';
import {
  buildCreateOptions,
  classifyExit,
  logMaxBytes,
  parseStatsLine,
  startFailureExitCode,
  type ExitFacts,
} from '../../src/agent/docker-hardening.js';
import type { ExecutionRequest } from '../../src/agent/executor.js';
import { LimitsSchema, ResourcesSchema } from '../../src/protocol/index.js';

function req(over: Partial<ExecutionRequest> = {}): ExecutionRequest {
  return {
    executionId: 'ex1',
    fencingToken: 4,
    image: 'deqo/busybox:test',
    command: ['sh', '-c', 'echo hi'],
    env: { DEQO_TASK_INDEX: '3', HOME: '/root' },
    resources: { ...ResourcesSchema.parse({}), cpus: 1.5, memoryMb: 64, pids: 32 },
    limits: LimitsSchema.parse({}),
    hostInputsDir: '/var/lib/deqo/ex1/inputs',
    hostOutputDir: '/var/lib/deqo/ex1/outputs',
    outputDir: '/outputs',
    stdoutPath: '/var/lib/deqo/ex1/stdout',
    stderrPath: '/var/lib/deqo/ex1/stderr',
    network: false,
    ...over,
  };
}

describe('buildCreateOptions', () => {
  it('hardens the container along CIS Docker §5', () => {
    const o = buildCreateOptions(req(), 'agent-7');
    const h = o.HostConfig!;
    expect(o.name).toBe('deqo-ex1');
    expect(o.User).toBe('65534:65534');
    expect(o.WorkingDir).toBe('/tmp');
    expect(o.Cmd).toEqual(['sh', '-c', 'echo hi']);
    expect(o.Entrypoint).toEqual([]);
    expect(o.Labels).toEqual({ 'deqo.agent': 'agent-7', 'deqo.execution': 'ex1', 'deqo.fencing-token': '4' });
    expect(o.Env).toContain('DEQO_TASK_INDEX=3');
    expect(o.Env).toContain('HOME=/tmp');
    expect(o.Env).not.toContain('HOME=/root');
    expect(h.NetworkMode).toBe('none');
    expect(h.ReadonlyRootfs).toBe(true);
    expect(h.Tmpfs).toEqual({ '/tmp': expect.stringMatching(/^rw,nosuid,nodev,size=64m,mode=1777/) });
    expect(h.CapDrop).toEqual(['ALL']);
    expect(h.CapAdd).toEqual([]);
    expect(h.SecurityOpt).toEqual(['no-new-privileges']);
    expect(h.Privileged).toBe(false);
    expect(h.PidsLimit).toBe(32);
    expect(h.Memory).toBe(64 * 1024 * 1024);
    expect(h.MemorySwap).toBe(64 * 1024 * 1024);
    expect(h.NanoCpus).toBe(1_500_000_000);
    expect(h.AutoRemove).toBe(false);
    expect(h.Binds).toEqual(['/var/lib/deqo/ex1/inputs:/inputs:ro', '/var/lib/deqo/ex1/outputs:/outputs:rw']);
    for (const mode of [h.PidMode, h.IpcMode, h.UTSMode, h.UsernsMode, h.NetworkMode]) expect(mode).not.toBe('host');
    expect(JSON.stringify(o)).not.toContain('docker.sock');
  });

  it('keeps a bounded json-file log (one file) for reattaching after a restart', () => {
    const MiB = 1024 * 1024;
    expect(buildCreateOptions(req(), 'a').HostConfig!.LogConfig).toEqual({
      Type: 'json-file',
      Config: { 'max-size': String(16 * MiB), 'max-file': '1' },
    });
    expect(logMaxBytes({ stdoutBytes: 4 * MiB, stderrBytes: 1 * MiB })).toBe(40 * MiB);
    expect(logMaxBytes({ stdoutBytes: 64 * MiB, stderrBytes: 64 * MiB })).toBe(1024 * MiB);
    expect(logMaxBytes({ stdoutBytes: 0, stderrBytes: 0 })).toBe(16 * MiB);
  });

  it('uses the bridge network only when asked', () => {
    expect(buildCreateOptions(req({ network: true }), 'a').HostConfig!.NetworkMode).toBe('bridge');
  });

  it("puts network jobs on the agent's job network, never the host's", () => {
    expect(buildCreateOptions(req({ network: true }), 'a', 'deqo-jobs').HostConfig!.NetworkMode).toBe('deqo-jobs');
    expect(buildCreateOptions(req({ network: false }), 'a', 'deqo-jobs').HostConfig!.NetworkMode).toBe('none');
    expect(() => buildCreateOptions(req({ network: true }), 'a', 'host')).toThrow(/host network/);
  });

  it('mounts the output directory at the requested path', () => {
    expect(buildCreateOptions(req({ outputDir: '/work/out' }), 'a').HostConfig!.Binds).toContain(
      '/var/lib/deqo/ex1/outputs:/work/out:rw',
    );
  });

  it('refuses the Docker socket, relative paths and bind-spec separators', () => {
    expect(() => buildCreateOptions(req({ hostInputsDir: '/var/run/docker.sock' }), 'a')).toThrow(/Docker socket/);
    expect(() => buildCreateOptions(req({ hostOutputDir: '/run/' }), 'a')).toThrow(/refusing/);
    expect(() => buildCreateOptions(req({ hostOutputDir: 'out' }), 'a')).toThrow(/absolute/);
    expect(() => buildCreateOptions(req({ hostOutputDir: '/x:/etc' }), 'a')).toThrow(/':'/);
    expect(() => buildCreateOptions(req({ outputDir: '/inputs' }), 'a')).toThrow(/reserved/);
    // The same rule as the job spec's (protocol outputDirProblem): a spec the coordinator accepted never fails here.
    for (const outputDir of ['//inputs', '/.', '/proc', '/tmp/out', '/a/'])
      expect(() => buildCreateOptions(req({ outputDir }), 'a')).toThrow(/outputDir/);
  });
});

describe('classifyExit', () => {
  const base: ExitFacts = {
    exitCode: 0,
    oomKilled: false,
    memoryMb: 32,
    timeoutSeconds: 5,
    outputBytes: 100,
    outputSize: 10,
  };

  it('passes through normal exits, zero or not', () => {
    expect(classifyExit(base)).toEqual({ kind: 'exited', exitCode: 0 });
    expect(classifyExit({ ...base, exitCode: 3 })).toEqual({ kind: 'exited', exitCode: 3 });
  });

  it('reports OOM from the flag or an unexplained SIGKILL, naming the limit', () => {
    for (const f of [
      { ...base, oomKilled: true, exitCode: 1 },
      { ...base, exitCode: 137 },
    ]) {
      const c = classifyExit(f);
      expect(c).toMatchObject({ kind: 'failed', reason: 'out_of_memory' });
      if (c.kind === 'failed') expect(c.message).toMatch(/32 MiB/);
    }
  });

  it('our own kill cause wins over the SIGKILL exit code', () => {
    expect(classifyExit({ ...base, exitCode: 137, killedBy: 'timeout' })).toMatchObject({ reason: 'timeout' });
    expect(classifyExit({ ...base, exitCode: 137, killedBy: 'cancelled' })).toMatchObject({ reason: 'cancelled' });
    expect(classifyExit({ ...base, exitCode: 137, killedBy: 'output_too_large', outputSize: 500 })).toMatchObject({
      reason: 'output_too_large',
    });
  });

  it('flags an output directory over the cap found after exit', () => {
    expect(classifyExit({ ...base, outputSize: 101 })).toMatchObject({ kind: 'failed', reason: 'output_too_large' });
    expect(classifyExit({ ...base, outputSize: 100 })).toEqual({ kind: 'exited', exitCode: 0 });
    // An output directory beyond what a report carries (files, path length) is the job's outputs_unpackageable.
    const beyond = 'output path "d/d/…"… is longer than 1024 bytes';
    expect(classifyExit({ ...base, outputBeyond: beyond })).toEqual({
      kind: 'failed',
      reason: 'outputs_unpackageable',
      message: beyond,
    });
    expect(classifyExit({ ...base, killedBy: 'output_too_large', outputBeyond: beyond })).toMatchObject({
      reason: 'outputs_unpackageable',
      message: `${beyond}; the execution was killed`,
    });
  });
});

describe('startFailureExitCode', () => {
  it('maps exec failures like docker run does', () => {
    expect(
      startFailureExitCode('OCI runtime create failed: exec: "nope": executable file not found in $PATH: unknown'),
    ).toBe(127);
    expect(startFailureExitCode('exec: "/x": stat /x: no such file or directory')).toBe(127);
    expect(startFailureExitCode('exec: "/etc/passwd": permission denied')).toBe(126);
    expect(startFailureExitCode('driver failed programming external connectivity')).toBeUndefined();
  });
});

describe('parseStatsLine', () => {
  it('reads cpu ns and the larger memory figure; zeros for a stopped container', () => {
    expect(
      parseStatsLine('{"cpu_stats":{"cpu_usage":{"total_usage":1500000}},"memory_stats":{"usage":10,"max_usage":20}}'),
    ).toEqual({ cpuNs: 1_500_000, memoryBytes: 20 });
    expect(parseStatsLine('{"cpu_stats":{"cpu_usage":{"total_usage":0}},"memory_stats":{}}')).toEqual({
      cpuNs: 0,
      memoryBytes: 0,
    });
    expect(parseStatsLine('{"cpu_stats":')).toBeUndefined();
    expect(parseStatsLine('  ')).toBeUndefined();
  });
});
