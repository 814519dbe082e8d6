/**
 * Packaging an execution's result: the manifest of the output directory (regular files only — symlinks and
 * special files a container leaves are never followed or shipped), the result hash, and the output tarball.
 */
import { appendFile, lstat, readdir, writeFile } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { gzipSync } from 'node:zlib';
import * as tar from 'tar';
import { sha256File } from '../client/index.js';
import type { Manifest } from '../protocol/index.js';

/** Regular files under `dir`, as paths relative to it with `/` separators, sorted. */
export async function listOutputFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  async function walk(d: string): Promise<void> {
    for (const entry of await readdir(d, { withFileTypes: true })) {
      const full = join(d, entry.name);
      if (entry.isDirectory()) await walk(full);
      else if (entry.isFile()) out.push(relative(dir, full).split(sep).join('/'));
    }
  }
  await walk(dir);
  return out.sort();
}

/** Manifest of an output directory for an exit code and stdout file. */
export async function buildManifest(outputDir: string, exitCode: number, stdoutPath: string): Promise<Manifest> {
  const files = [];
  for (const path of await listOutputFiles(outputDir)) {
    const full = join(outputDir, path);
    files.push({ path, sha256: await sha256File(full), size: (await lstat(full)).size });
  }
  return { exitCode, files, stdoutSha256: await sha256File(stdoutPath) };
}

/** Writes a gzip tarball of the regular files of `outputDir` (paths relative to it) to `dest`. */
export async function tarOutputs(outputDir: string, dest: string): Promise<void> {
  const files = await listOutputFiles(outputDir);
  // An empty tar archive is two 512-byte zero blocks.
  if (files.length === 0) {
    await writeFile(dest, gzipSync(Buffer.alloc(1024)));
    return;
  }
  await tar.create({ gzip: true, file: dest, cwd: outputDir, portable: true, noDirRecurse: true }, files);
}

/**
 * Test-only dishonesty: alters every output file (or adds one) so the result hash differs from honest
 * providers'. Used by the integration test that proves a cheater is outvoted.
 */
export async function corruptOutputs(outputDir: string): Promise<void> {
  const files = await listOutputFiles(outputDir);
  if (files.length === 0) await writeFile(join(outputDir, 'corrupted'), 'x');
  for (const f of files) await appendFile(join(outputDir, f), '\n# corrupted by a dishonest provider\n');
}
