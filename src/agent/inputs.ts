/**
 * An execution's inputs on the provider's disk: each distinct blob is downloaded once and checked against its
 * SHA-256; every further input path naming the same blob is a hard link to it (read-only, mode 0644, and mounted
 * read-only into the container), so a blob listed under many paths takes its size once.
 */
import { chmod, link, mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { sha256File } from '../client/index.js';
import type { Input } from '../protocol/index.js';

/** Downloads blob `blob` to the file `dest` (created or replaced). */
export type DownloadBlob = (blob: string, dest: string) => Promise<void>;

/**
 * Places `inputs` under `dir`: the first path of each blob is downloaded with `download` and checked, the others are
 * hard links to it. Throws Error naming the input whose download does not match its SHA-256, or the download's error.
 */
export async function placeInputs(inputs: readonly Input[], dir: string, download: DownloadBlob): Promise<void> {
  const placed = new Map<string, string>();
  for (const input of inputs) {
    const dest = join(dir, input.path);
    await mkdir(dirname(dest), { recursive: true });
    const first = placed.get(input.blob);
    if (first !== undefined) {
      await link(first, dest);
      continue;
    }
    await download(input.blob, dest);
    if ((await sha256File(dest)) !== input.blob) throw new Error(`input ${input.path} does not match its SHA-256`);
    await chmod(dest, 0o644);
    placed.set(input.blob, dest);
  }
}
