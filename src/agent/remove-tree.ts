/**
 * Removing a folder a container wrote, however deep: a process in the container can nest folders past the host's
 * PATH_MAX (4096 bytes) with relative mkdir/chdir, and then `fs.rm` fails with ENAMETOOLONG on the first path it
 * builds. Such a tree is first flattened with renames whose paths stay short, then removed.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';

/** Removes `dir` and everything under it (nothing when it does not exist). Throws on other file errors. */
export async function removeTree(dir: string): Promise<void> {
  try {
    await rm(dir, { recursive: true, force: true });
    return;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENAMETOOLONG') throw err;
  }
  const flat = `${dir}.flat`;
  await flatten(dir, flat);
  await rm(dir, { recursive: true, force: true });
  await rm(flat, { recursive: true, force: true });
}

/**
 * Moves every folder nested two or more levels under `dir` (or under `flat`) into `flat` as `flat/<n>`, so no path
 * is longer than `flat` plus two names. Each folder is read when its own path is short: `dir`, a child of `dir`, or
 * `flat/<n>`.
 */
async function flatten(dir: string, flat: string): Promise<void> {
  await mkdir(flat, { recursive: true });
  const run = randomBytes(4).toString('hex'); // names stay unique should an interrupted removal have left some
  let n = 0;
  const queue = (await readdir(dir, { withFileTypes: true }))
    .filter((e) => e.isDirectory())
    .map((e) => join(dir, e.name));
  for (let d = queue.pop(); d !== undefined; d = queue.pop()) {
    for (const e of await readdir(d, { withFileTypes: true })) {
      if (!e.isDirectory()) continue;
      const target = join(flat, `${run}-${n++}`);
      await rename(join(d, e.name), target);
      queue.push(target);
    }
  }
}
