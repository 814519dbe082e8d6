/**
 * Real outputs for tests that report executions: files written to a temp folder, packed with the agent's own
 * `tarOutputs`, and stored in a real BlobStore (the coordinator's), whose folder the engine reads them from.
 */
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { buildManifest, tarOutputs } from '../../src/agent/results.js';
import { BlobStore } from '../../src/coordinator/blobs.js';
import type { Manifest } from '../../src/protocol/index.js';

/** A BlobStore in a fresh temp folder (largest blob `maxBytes`, default 1 GiB). */
export async function tempBlobStore(maxBytes = 1024 ** 3): Promise<BlobStore> {
  return new BlobStore(await mkdtemp(join(tmpdir(), 'deqo-blobs-')), maxBytes);
}

/**
 * A BlobStore over a folder that holds nothing and takes nothing, for engines that never read a blob (tests without
 * completed reports): a read answers not_found like any missing blob.
 */
export function emptyBlobStore(): BlobStore {
  return new BlobStore(join(tmpdir(), `deqo-no-blobs-${process.pid}`), 0);
}

/** A packed outputs folder: the tarball (in a temp folder `dir`, the caller's to remove) and the manifest's files. */
interface PackedOutputs {
  dir: string;
  tarball: string;
  files: Manifest['files'];
}

/**
 * Writes `files` (path relative to the output folder → content) to a temp folder and packs it with the agent's
 * `tarOutputs`. `mtime` (s since the epoch) sets every file's time, so equal contents can make different tarballs
 * (tar keeps file times).
 */
async function packOutputs(files: Record<string, string | Uint8Array>, mtime?: number): Promise<PackedOutputs> {
  const dir = await mkdtemp(join(tmpdir(), 'deqo-outputs-'));
  const out = join(dir, 'outputs');
  await mkdir(out);
  for (const [path, content] of Object.entries(files)) {
    await mkdir(dirname(join(out, path)), { recursive: true });
    await writeFile(join(out, path), content);
    if (mtime !== undefined) await utimes(join(out, path), mtime, mtime);
  }
  await writeFile(join(dir, 'stdout'), '');
  const manifest = await buildManifest(out, 0, join(dir, 'stdout'));
  const tarball = join(dir, 'outputs.tar.gz');
  await tarOutputs(out, tarball);
  await rm(out, { recursive: true, force: true });
  return { dir, tarball, files: manifest.files };
}

/** The bytes of a packed outputs folder (for uploading it over HTTP) and the manifest's file entries. */
export async function outputsBytes(
  files: Record<string, string | Uint8Array>,
  mtime?: number,
): Promise<{ bytes: Buffer; files: Manifest['files'] }> {
  const packed = await packOutputs(files, mtime);
  try {
    return { bytes: await readFile(packed.tarball), files: packed.files };
  } finally {
    await rm(packed.dir, { recursive: true, force: true });
  }
}

/** A packed outputs folder stored in `blobs`: the tarball's blob (SHA-256) and the manifest's file entries. */
export async function storeOutputs(
  blobs: BlobStore,
  files: Record<string, string | Uint8Array>,
  mtime?: number,
): Promise<{ outputsBlob: string; files: Manifest['files'] }> {
  const packed = await packOutputs(files, mtime);
  try {
    const { sha256 } = await blobs.put(createReadStream(packed.tarball));
    return { outputsBlob: sha256, files: packed.files };
  } finally {
    await rm(packed.dir, { recursive: true, force: true });
  }
}
