/** Capacity probe: what this machine has (cores, memory, arch, OS, GPUs via nvidia-smi where it answers). */
import { execFile } from 'node:child_process';
import { arch, cpus, platform, totalmem } from 'node:os';
import { promisify } from 'node:util';
import type { Capacity } from '../protocol/index.js';

const run = promisify(execFile);

/** GPUs reported by `nvidia-smi` (model, memory MiB); empty when it is absent or fails. */
export async function probeGpus(): Promise<Capacity['gpus']> {
  try {
    const { stdout } = await run('nvidia-smi', ['--query-gpu=name,memory.total', '--format=csv,noheader,nounits'], {
      timeout: 5000,
    });
    return stdout
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((line) => {
        const [model, mem] = line.split(',').map((s) => s.trim());
        return { model: model ?? 'unknown', memoryMb: Number.parseInt(mem ?? '0', 10) || 0 };
      });
  } catch {
    return [];
  }
}

/** Docker's name for a Node architecture (x64 → amd64). */
export function dockerArch(nodeArch: string = arch()): string {
  return (
    (
      { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x' } as Record<
        string,
        string
      >
    )[nodeArch] ?? nodeArch
  );
}

/**
 * The capacity this agent lends: the machine's cores and memory unless limited by `lend`
 * (cores; memory MiB), never more than the machine has.
 */
export async function probeCapacity(
  dockerVersion: string,
  lend: { cpus?: number; memoryMb?: number; allowNetwork: boolean },
): Promise<Capacity> {
  const machineCpus = cpus().length;
  const machineMemMb = Math.floor(totalmem() / 1024 / 1024);
  return {
    cpus: Math.min(lend.cpus ?? machineCpus, machineCpus),
    memoryMb: Math.min(lend.memoryMb ?? machineMemMb, machineMemMb),
    arch: dockerArch(),
    os: platform(),
    dockerVersion,
    gpus: await probeGpus(),
    allowNetwork: lend.allowNetwork,
  };
}
