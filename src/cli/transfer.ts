/** Uploads and downloads with a progress bar on stderr for large transfers (cli-progress). */
import { stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { createRequire } from 'node:module';
import { downloadBlob, uploadFile, type DeqoClient, type Progress } from '../client/index.js';
import { formatBytes } from '../core/index.js';
import type { BlobInfo } from '../protocol/index.js';
import { CliError, EXIT } from './exit-codes.js';

const require = createRequire(import.meta.url);

/** Transfers smaller than this show no bar, bytes. */
export const PROGRESS_THRESHOLD_BYTES = 4 * 1024 * 1024;

/** A progress callback drawing a bar when the transfer is large and stderr is a terminal; call `done()` after. */
export function progressBar(label: string, total: number | null): { onProgress: Progress; done: () => void } {
  if (!process.stderr.isTTY || total === null || total < PROGRESS_THRESHOLD_BYTES)
    return { onProgress: () => undefined, done: () => undefined };
  // Loaded when a bar is drawn, not with every command (`deqo --help` stays light).
  const cliProgress = require('cli-progress') as typeof import('cli-progress');
  const bar = new cliProgress.SingleBar(
    { format: `${label} [{bar}] {percentage}% {doneH}/{totalH}`, stream: process.stderr, hideCursor: true },
    cliProgress.Presets.shades_classic,
  );
  bar.start(total, 0, { doneH: formatBytes(0), totalH: formatBytes(total) });
  return { onProgress: (d) => bar.update(d, { doneH: formatBytes(d) }), done: () => bar.stop() };
}

/** Uploads a local file as a blob. Throws CliError (USAGE) when the file cannot be read. */
export async function uploadWithProgress(client: DeqoClient, path: string): Promise<BlobInfo> {
  let size: number;
  try {
    size = (await stat(path)).size;
  } catch {
    throw new CliError(`input file ${path} does not exist or cannot be read`, EXIT.USAGE);
  }
  const bar = progressBar(`upload ${basename(path)}`, size);
  try {
    return await uploadFile(client, path, bar.onProgress);
  } finally {
    bar.done();
  }
}

/** Downloads a blob to `dest` with a bar for large blobs; returns bytes written. */
export async function downloadWithProgress(
  client: DeqoClient,
  sha256: string,
  dest: string,
  label: string,
): Promise<number> {
  let bar: ReturnType<typeof progressBar> | null = null;
  try {
    return await downloadBlob(client, sha256, dest, (d, total) => {
      bar ??= progressBar(label, total);
      bar.onProgress(d, total);
    });
  } finally {
    (bar as ReturnType<typeof progressBar> | null)?.done();
  }
}
