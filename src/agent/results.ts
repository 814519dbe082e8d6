/**
 * Packaging an execution's result: the manifest of the output directory (regular files only — symlinks and
 * special files a container leaves are never followed or shipped), the result hash, and the output tarball.
 * What a report can carry is bounded by protocol/limits.ts (files, path length, folder depth); an output
 * directory beyond it is the job's fault (OutputsUnpackable → output_too_large), never a report the coordinator refuses.
 */
import { appendFile, lstat, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import * as tar from 'tar';
import { sha256File } from '../client/index.js';
import {
  OUTPUT_MAX_FILES,
  OUTPUT_PATH_MAX_BYTES,
  PATH_MAX_DEPTH,
  utf8Bytes,
  type Manifest,
} from '../protocol/index.js';

/** Thrown when an output directory holds more than a report can carry; the message says which limit and what to do. */
export class OutputsUnpackable extends Error {
  override readonly name = 'OutputsUnpackable';
}

/**
 * Why an entry of the output directory is beyond what a report carries, or null: `path` relative to the output
 * directory, `folderDepth` how many folders deep it is when it is a folder (else 0), `files` the regular files seen
 * so far. The one rule of the packager (listOutputFiles) and of the executor's size poll (docker-streams dirSize).
 */
export function outputEntryProblem(path: string, folderDepth: number, files: number): string | null {
  if (utf8Bytes(path) > OUTPUT_PATH_MAX_BYTES)
    return `output path ${path.slice(0, 60)}… is longer than ${OUTPUT_PATH_MAX_BYTES} bytes: use shorter names`;
  if (folderDepth > PATH_MAX_DEPTH)
    return `output folder ${path.slice(0, 60)}… is more than ${PATH_MAX_DEPTH} folders deep: flatten the outputs`;
  if (files > OUTPUT_MAX_FILES)
    return `the output directory holds more than ${OUTPUT_MAX_FILES} files: pack them into an archive`;
  return null;
}

/**
 * Regular files under `dir`, as paths relative to it with `/` separators, sorted. Throws OutputsUnpackable when an
 * entry is beyond what a report carries (outputEntryProblem; a folder is checked before it is read, so a deep chain
 * of folders never reaches the host's PATH_MAX).
 */
export async function listOutputFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  async function walk(d: string, rel: string, depth: number): Promise<void> {
    for (const entry of await readdir(d, { withFileTypes: true })) {
      const path = rel === '' ? entry.name : `${rel}/${entry.name}`;
      const folder = entry.isDirectory();
      if (entry.isFile()) out.push(path);
      const problem = outputEntryProblem(path, folder ? depth + 1 : 0, out.length);
      if (problem) throw new OutputsUnpackable(problem);
      if (folder) await walk(join(d, entry.name), path, depth + 1);
    }
  }
  await walk(dir, '', 0);
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
