/**
 * The output cap that holds at the write: each execution's output directory is an ext4 filesystem of its own,
 * in a sparse image file `<work>/outputs.img` loop-mounted on `<work>/outputs`, sized from `limits.outputBytes`.
 * A write past it fails inside the container with ENOSPC, so the provider's disk holds at most the image's size
 * whatever the job does (fallocate, dd, sparse files). The executor's poll of the directory's size and its check at
 * exit still decide `output_too_large` against the exact cap (the image leaves slack for block rounding).
 *
 * Why not a tmpfs: pages of a tmpfs are charged to the memory cgroup of the container that writes them (measured
 * on this engine: 48 MiB written to a 64 MiB tmpfs in a container limited to 32 MiB is OOM-killed at 32 MiB), so
 * outputs up to 16 GiB would need as much memory. The ext4 image lives on the provider's disk instead.
 *
 * Needs root (mount, losetup via `mount -o loop`) and mkfs.ext4 (Debian's e2fsprogs). Without them the directory
 * stays a plain one and only the poll (once a second) bounds it: {@link mountCappedOutputs} says which.
 */
import { execFile } from 'node:child_process';
import { rm, stat, truncate, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { OUTPUT_FS_INODE_BYTES, outputFsPlan } from '../core/index.js';
import { CONTAINER_GID, CONTAINER_UID } from './docker-hardening.js';

const run = promisify(execFile);

/** True when `dir` is a mount point (another device than its parent). False when it does not exist. */
export async function isMountPoint(dir: string): Promise<boolean> {
  try {
    const [d, p] = await Promise.all([stat(dir), stat(dirname(dir))]);
    return d.dev !== p.dev;
  } catch {
    return false;
  }
}

/** The image file backing the output directory `outputsDir`. */
export function imageOf(outputsDir: string): string {
  return join(dirname(outputsDir), 'outputs.img');
}

/**
 * Mounts a size-capped ext4 filesystem on `outputsDir` (an existing, empty directory), owned by the container user.
 * Idempotent: an image already mounted is kept; an image left by an earlier run of the agent (host rebooted) is
 * mounted again with its files; `create: false` mounts only such an existing image. Returns `capped` when the
 * directory is capped at the write, else `uncapped` with why (not root, no mkfs.ext4, no loop device): the caller
 * then relies on the poll. Never throws.
 */
export async function mountCappedOutputs(
  outputsDir: string,
  capBytes: number,
  opts: { create: boolean } = { create: true },
): Promise<{ capped: true } | { capped: false; why: string }> {
  if (await isMountPoint(outputsDir)) return { capped: true };
  if (typeof process.getuid !== 'function' || process.getuid() !== 0)
    return { capped: false, why: 'the agent does not run as root (needed to mount a filesystem)' };
  const image = imageOf(outputsDir);
  let created = false;
  try {
    const exists = await stat(image).then(
      () => true,
      () => false,
    );
    if (!exists) {
      if (!opts.create) return { capped: false, why: 'no output image to mount again' };
      created = true;
      const plan = outputFsPlan(capBytes);
      await writeFile(image, '');
      await truncate(image, plan.bytes);
      // No journal (nothing here outlives the execution), no reserved blocks, root directory for the container user.
      await run('mkfs.ext4', [
        '-q',
        '-F',
        '-m',
        '0',
        '-O',
        '^has_journal',
        '-b',
        String(plan.blockSize),
        '-I',
        String(OUTPUT_FS_INODE_BYTES),
        '-N',
        String(plan.inodes),
        '-E',
        `root_owner=${CONTAINER_UID}:${CONTAINER_GID},lazy_itable_init=1,nodiscard`,
        image,
      ]);
    }
    await run('mount', ['-t', 'ext4', '-o', 'loop,nosuid,nodev', image, outputsDir]);
    await rm(join(outputsDir, 'lost+found'), { recursive: true, force: true });
    return { capped: true };
  } catch (e) {
    if (created) await rm(image, { force: true }).catch(() => undefined);
    return { capped: false, why: `cannot mount a capped filesystem: ${(e as Error).message.split('\n')[0]}` };
  }
}

/** Unmounts the capped filesystem of `outputsDir` (the loop device goes with it); nothing when it is not mounted. */
export async function unmountOutputs(outputsDir: string): Promise<void> {
  if (!(await isMountPoint(outputsDir))) return;
  await run('umount', [outputsDir]).catch(async () => {
    await run('umount', ['-l', outputsDir]);
  });
}
