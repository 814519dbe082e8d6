/**
 * Packaging an execution's result: the manifest of the output directory (regular files only — symlinks and
 * special files a container leaves are never followed or shipped), the result hash, and the output tarball.
 */
import { appendFile, lstat, readdir, writeFile } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { gzipSync } from 'node:zlib';
import * as tar from 'tar';
import { sha256File } from '../client/index.js';
import { MAX_MANIFEST_BYTES, MAX_OUTPUT_FILES, MAX_OUTPUT_PATH_BYTES, type Manifest } from '../protocol/index.js';

/**
 * Outputs the agent cannot package into a report the coordinator accepts — more than MAX_OUTPUT_FILES files, a
 * path (of a file or a directory) longer than MAX_OUTPUT_PATH_BYTES, or a manifest over MAX_MANIFEST_BYTES. The
 * same outputs fail the same way on every provider, so it is reported as the job's `outputs_unpackageable`.
 */
export class UnpackageableOutputsError extends Error {
  override readonly name = 'UnpackageableOutputsError';
}

/** The packaging limits: files, path bytes, manifest bytes (the protocol's constants; tests pass smaller ones). */
export interface OutputLimits {
  files: number;
  pathBytes: number;
  manifestBytes: number;
}

const LIMITS: OutputLimits = {
  files: MAX_OUTPUT_FILES,
  pathBytes: MAX_OUTPUT_PATH_BYTES,
  manifestBytes: MAX_MANIFEST_BYTES,
};

/**
 * Why an entry of an output folder cannot be packaged, or null: `rel` its path relative to the folder, `files` the
 * regular files seen so far (this one included). The one rule of the packager (listOutputFiles) and of the executor's
 * output-size poll (docker-streams.ts dirSize).
 */
export function outputEntryProblem(rel: string, files: number, limits: OutputLimits = LIMITS): string | null {
  if (Buffer.byteLength(rel) > limits.pathBytes)
    return `output path ${JSON.stringify(rel.slice(0, 120))}… is longer than ${limits.pathBytes} bytes`;
  if (files > limits.files) return `more than ${limits.files} output files`;
  return null;
}

/**
 * Regular files under `dir`, as paths relative to it with `/` separators, sorted. Throws UnpackageableOutputsError
 * as soon as there are more than MAX_OUTPUT_FILES of them or an entry's relative path is over MAX_OUTPUT_PATH_BYTES
 * (so a walk never meets the system's ENAMETOOLONG, nor reads more than the limit).
 */
export async function listOutputFiles(dir: string, limits: OutputLimits = LIMITS): Promise<string[]> {
  const out: string[] = [];
  async function walk(d: string): Promise<void> {
    for (const entry of await readdir(d, { withFileTypes: true })) {
      const full = join(d, entry.name);
      const rel = relative(dir, full).split(sep).join('/');
      if (!entry.isDirectory() && !entry.isFile()) continue;
      if (entry.isFile()) out.push(rel);
      const problem = outputEntryProblem(rel, out.length, limits);
      if (problem) throw new UnpackageableOutputsError(problem);
      if (entry.isDirectory()) await walk(full);
    }
  }
  await walk(dir);
  return out.sort();
}

/** Manifest of an output directory for an exit code and stdout file. Throws UnpackageableOutputsError (see above). */
export async function buildManifest(
  outputDir: string,
  exitCode: number,
  stdoutPath: string,
  limits: OutputLimits = LIMITS,
): Promise<Manifest> {
  const files = [];
  for (const path of await listOutputFiles(outputDir, limits)) {
    const full = join(outputDir, path);
    files.push({ path, sha256: await sha256File(full), size: (await lstat(full)).size });
  }
  const manifest = { exitCode, files, stdoutSha256: await sha256File(stdoutPath) };
  const bytes = Buffer.byteLength(JSON.stringify(manifest));
  if (bytes > limits.manifestBytes)
    throw new UnpackageableOutputsError(
      `the manifest of ${files.length} output files is ${bytes} bytes, over ${limits.manifestBytes}`,
    );
  return manifest;
}

/**
 * A node-tar link cache that never finds a link, so a file the job hard-linked under two output paths is packed as
 * two regular files: the coordinator accepts only regular files (a hard-link entry is refused as the provider's
 * `outputs_mismatch`), and a job must not be able to get honest providers blamed by linking its outputs.
 */
class NoHardLinks extends Map<`${number}:${number}`, string> {
  override get(): string | undefined {
    return undefined;
  }
}

/** Writes a gzip tarball of the regular files of `outputDir` (paths relative to it) to `dest`; hard links as files. */
export async function tarOutputs(outputDir: string, dest: string): Promise<void> {
  const files = await listOutputFiles(outputDir);
  // An empty tar archive is two 512-byte zero blocks.
  if (files.length === 0) {
    await writeFile(dest, gzipSync(Buffer.alloc(1024)));
    return;
  }
  await tar.create(
    { gzip: true, file: dest, cwd: outputDir, portable: true, noDirRecurse: true, linkCache: new NoHardLinks() },
    files,
  );
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
