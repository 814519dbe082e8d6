/**
 * Downloading a job's verified outputs: each verified task's tarball is fetched, unpacked into
 * `<dir>/task-<index>/`, and the folder is checked against the verified manifest: exactly its files (regular files
 * only, nothing more), each with its SHA-256. When a copy does not match (a blob damaged on the coordinator's disk,
 * say), the next agreeing execution's copy is tried (the results' `replicas`, canonical first).
 */
import { mkdir, readdir, rm } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import * as tar from 'tar';
import { ApiError, sha256File, type DeqoClient } from '../client/index.js';
import type { JobResults, Manifest, TaskResult } from '../protocol/index.js';
import { CliError, EXIT } from './exit-codes.js';
import { downloadWithProgress } from './transfer.js';

/** Where each task's outputs went, and whose copy they are. */
export interface DownloadedTask {
  taskIndex: number;
  dir: string;
  files: string[];
  /** The agent whose outputs were used (null: the coordinator named no replicas, so the canonical blob). */
  from: string | null;
}

/** One copy of a task's outputs to try. */
interface Copy {
  outputsBlob: string;
  agentName: string | null;
}

/** The copies of a task's outputs in the order to try them: the replicas (canonical first), each blob once. */
function copiesOf(t: TaskResult & { outputsBlob: string }): Copy[] {
  const listed: Copy[] = t.replicas.length > 0 ? t.replicas : [{ outputsBlob: t.outputsBlob, agentName: null }];
  const seen = new Set<string>();
  return listed.filter((c) => !seen.has(c.outputsBlob) && seen.add(c.outputsBlob));
}

/** Every entry under `dir` as a path relative to it with `/` separators, and whether it is a regular file. */
async function tree(dir: string): Promise<Array<{ path: string; file: boolean }>> {
  const out: Array<{ path: string; file: boolean }> = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const full = join(dir, entry.name);
    if (entry.isDirectory()) {
      for (const sub of await tree(full)) out.push({ path: `${entry.name}/${sub.path}`, file: sub.file });
    } else {
      out.push({ path: relative(dir, full).split(sep).join('/'), file: entry.isFile() });
    }
  }
  return out;
}

/** What differs between the unpacked folder `dir` and `manifest`, or null when it holds exactly its files. */
async function mismatchOf(dir: string, manifest: Manifest): Promise<string | null> {
  const want = new Set(manifest.files.map((f) => f.path));
  for (const e of await tree(dir)) {
    if (!e.file) return `${e.path} is not a regular file`;
    if (!want.has(e.path)) return `${e.path} is not in the verified result`;
  }
  for (const f of manifest.files) {
    const actual = await sha256File(join(dir, f.path)).catch(() => null);
    if (actual === null) return `${f.path} is missing`;
    if (actual !== f.sha256) return `${f.path} has SHA-256 ${actual}, the verified result ${f.sha256}`;
  }
  return null;
}

/**
 * Fetches one copy into `taskDir` (emptied first) and checks it. Returns what did not match, or null. Rethrows what
 * no other copy can fix: an unreachable coordinator, a missing or refused API key.
 */
async function fetchCopy(
  client: DeqoClient,
  copy: Copy,
  manifest: Manifest,
  taskDir: string,
  tarball: string,
  label: string,
): Promise<string | null> {
  await rm(taskDir, { recursive: true, force: true });
  await mkdir(taskDir, { recursive: true });
  // No files: the empty folder is the verified result (node-tar refuses to unpack an archive of no entries).
  if (manifest.files.length === 0) return null;
  try {
    await downloadWithProgress(client, copy.outputsBlob, tarball, label);
    // Not strict: an archive of no files is "unrecognized" to node-tar; the folder check below is the judge. Paths
    // are kept inside taskDir (no absolute paths, no `..`, no writing through links).
    await tar.extract({ file: tarball, cwd: taskDir, strict: false, preservePaths: false });
  } catch (err) {
    if (err instanceof ApiError && (err.status === 0 || err.status === 401 || err.status === 403)) throw err;
    return `cannot download or unpack it: ${(err as Error).message}`;
  } finally {
    await rm(tarball, { force: true });
  }
  return mismatchOf(taskDir, manifest);
}

/**
 * Downloads and checks the outputs of every verified task into `dir` (one `task-<index>` folder each), trying each
 * agreeing execution's copy in turn until one matches the verified manifest; `note` hears of each copy that did not
 * (default: a line on stderr). Throws CliError (EXIT.INTERNAL) when no copy of a task's outputs matches, the
 * client's ApiError when the coordinator cannot be reached or refuses the key.
 */
export async function downloadResults(
  client: DeqoClient,
  results: JobResults,
  dir: string,
  note: (line: string) => void = (line) => process.stderr.write(`${line}\n`),
): Promise<DownloadedTask[]> {
  const done: DownloadedTask[] = [];
  for (const t of results.tasks) {
    if (t.state !== 'verified' || !t.outputsBlob || !t.manifest) continue;
    const taskDir = join(dir, `task-${t.taskIndex}`);
    const tarball = join(dir, `.task-${t.taskIndex}.tar.gz`);
    const copies = copiesOf({ ...t, outputsBlob: t.outputsBlob });
    const failures: string[] = [];
    let used: Copy | null = null;
    for (const [i, copy] of copies.entries()) {
      const whose = copy.agentName ? `${copy.agentName}'s copy` : 'the verified copy';
      const wrong = await fetchCopy(client, copy, t.manifest, taskDir, tarball, `task ${t.taskIndex} outputs`);
      if (wrong === null) {
        used = copy;
        break;
      }
      failures.push(`${whose}: ${wrong}`);
      const next = copies[i + 1];
      note(
        `task ${t.taskIndex}: ${whose} of the outputs does not match the verified result (${wrong})` +
          (next ? `; trying ${next.agentName ?? 'another'}'s copy` : ''),
      );
    }
    if (!used) {
      await rm(taskDir, { recursive: true, force: true });
      throw new CliError(
        `task ${t.taskIndex}: no copy of the outputs matches the verified result (${failures.join('; ')}); ` +
          "the coordinator's stored outputs are damaged: tell its operator",
        EXIT.INTERNAL,
      );
    }
    done.push({
      taskIndex: t.taskIndex,
      dir: taskDir,
      files: (await readdir(taskDir)).filter((n) => !n.startsWith('.')),
      from: used.agentName,
    });
  }
  return done;
}
