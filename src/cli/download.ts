/**
 * Downloading a job's verified outputs: each verified task's tarball is fetched, unpacked into
 * `<dir>/task-<index>/`, and every file is checked against the verified manifest (SHA-256).
 */
import { mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import * as tar from 'tar';
import { sha256File, type DeqoClient } from '../client/index.js';
import type { JobResults } from '../protocol/index.js';
import { CliError, EXIT } from './exit-codes.js';
import { downloadWithProgress } from './transfer.js';

/** Where each task's outputs went. */
export interface DownloadedTask {
  taskIndex: number;
  dir: string;
  files: string[];
}

/** Downloads and verifies outputs of every verified task into `dir`. Throws CliError when a file does not match. */
export async function downloadResults(client: DeqoClient, results: JobResults, dir: string): Promise<DownloadedTask[]> {
  const done: DownloadedTask[] = [];
  for (const t of results.tasks) {
    if (t.state !== 'verified' || !t.outputsBlob || !t.manifest) continue;
    const taskDir = join(dir, `task-${t.taskIndex}`);
    await rm(taskDir, { recursive: true, force: true });
    await mkdir(taskDir, { recursive: true });
    const tarball = join(dir, `.task-${t.taskIndex}.tar.gz`);
    await downloadWithProgress(client, t.outputsBlob, tarball, `task ${t.taskIndex} outputs`);
    await tar.extract({ file: tarball, cwd: taskDir, strict: true, preservePaths: false });
    await rm(tarball, { force: true });
    for (const f of t.manifest.files) {
      const actual = await sha256File(join(taskDir, f.path)).catch(() => 'missing');
      if (actual !== f.sha256)
        throw new CliError(
          `task ${t.taskIndex}: ${f.path} does not match the verified result (${actual})`,
          EXIT.INTERNAL,
        );
    }
    done.push({
      taskIndex: t.taskIndex,
      dir: taskDir,
      files: (await readdir(taskDir)).filter((n) => !n.startsWith('.')),
    });
  }
  return done;
}
