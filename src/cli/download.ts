/**
 * Downloading a job's verified outputs: each verified task's tarball is fetched and unpacked into a temporary sibling
 * of `<dir>/task-<index>/`, entry by entry held against the verified manifest with core's rule (OutputsCheck: regular
 * files of the manifest only, each once with its size, no absolute path, no `..`, no link, no device), then the
 * folder is checked (exactly the manifest's files, each with its SHA-256) and renamed into place. The first entry
 * refused stops the unpacking; a copy that fails leaves nothing behind. When a copy does not match (a blob damaged on
 * the coordinator's disk, or one that is hostile), the next agreeing execution's copy is tried (the results'
 * `replicas`, canonical first).
 */
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, readdir, rename, rm } from 'node:fs/promises';
import { basename, dirname, join, relative, sep } from 'node:path';
import * as tar from 'tar';
import { ApiError, sha256File, type DeqoClient } from '../client/index.js';
import { OutputsCheck, type OutputsMismatch } from '../core/index.js';
import type { JobResults, Manifest, TaskResult } from '../protocol/index.js';
import { CliError, EXIT } from './exit-codes.js';
import { terminalLine } from './terminal.js';
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
  try {
    return await folderMismatch(dir, manifest);
  } catch (err) {
    return `cannot read the unpacked files: ${(err as Error).message}`;
  }
}

async function folderMismatch(dir: string, manifest: Manifest): Promise<string | null> {
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

/** Largest pax or GNU long-name header accepted, bytes (a manifest path is at most 4096 characters). */
const MAX_META_ENTRY_BYTES = 16 * 1024;

/** A refused entry as the error line names it. */
function refusal(m: OutputsMismatch): string {
  return `entry ${JSON.stringify(m.path)} refused: ${m.problem}`;
}

/**
 * Unpacks the tarball `file` into the empty folder `dest`, entry by entry held against `manifest` (OutputsCheck).
 * Files get mode 0644, or 0755 when any execute bit was set (no set-id bits), and belong to the user running
 * this (not the archive's owner, even as root). Returns the first refused entry or unpacking error, or null.
 */
async function unpack(file: string, dest: string, manifest: Manifest): Promise<string | null> {
  let check: OutputsCheck;
  try {
    check = new OutputsCheck(manifest);
  } catch (err) {
    return (err as Error).message; // a manifest listing a path twice
  }
  let refused: OutputsMismatch | null = null;
  const unpacker = new tar.Unpack({
    cwd: dest,
    strict: true,
    preservePaths: false,
    preserveOwner: false,
    maxMetaEntrySize: MAX_META_ENTRY_BYTES,
    filter: (path, entry) => {
      const e = entry as tar.ReadEntry;
      refused ??= check.entry({ path, type: e.type, size: e.size });
      if (refused) {
        unpacker.abort(new Error(refusal(refused)));
        return false;
      }
      e.mode = (e.mode ?? 0) & 0o111 ? 0o755 : 0o644;
      return true;
    },
  });
  unpacker.on('ignoredEntry', (e: tar.ReadEntry) => {
    refused ??= e.meta
      ? { path: e.path, problem: `an extended header over ${MAX_META_ENTRY_BYTES} bytes` }
      : { path: e.path, problem: `a ${e.type} entry (only regular files are accepted)` };
    unpacker.abort(new Error(refusal(refused)));
  });
  const source = createReadStream(file);
  try {
    await new Promise<void>((resolve, reject) => {
      unpacker.on('error', reject);
      unpacker.on('close', () => resolve());
      source.on('error', reject);
      source.pipe(unpacker);
    });
  } catch (err) {
    return refused ? refusal(refused) : `cannot unpack it: ${(err as Error).message}`;
  } finally {
    source.destroy();
  }
  if (refused) return refusal(refused);
  const missing = check.end();
  return missing ? `${missing.path} is missing` : null;
}

/**
 * Fetches one copy into a temporary sibling of `taskDir`, checks it, and only then renames it to `taskDir` (replacing
 * an earlier download). Returns what did not match, or null; a copy that does not match leaves no trace. Rethrows
 * what no other copy can fix: an unreachable coordinator, a missing or refused API key.
 */
async function fetchCopy(
  client: DeqoClient,
  copy: Copy,
  manifest: Manifest,
  taskDir: string,
  label: string,
): Promise<string | null> {
  await mkdir(dirname(taskDir), { recursive: true });
  const temp = await mkdtemp(join(dirname(taskDir), `.${basename(taskDir)}-partial-`));
  try {
    const files = join(temp, 'files');
    await mkdir(files);
    // No files: the empty folder is the verified result (node-tar refuses to unpack an archive of no entries).
    if (manifest.files.length > 0) {
      const tarball = join(temp, 'outputs.tar.gz');
      try {
        await downloadWithProgress(client, copy.outputsBlob, tarball, label);
      } catch (err) {
        if (err instanceof ApiError && (err.status === 0 || err.status === 401 || err.status === 403)) throw err;
        return `cannot download it: ${(err as Error).message}`;
      }
      const wrong = (await unpack(tarball, files, manifest)) ?? (await mismatchOf(files, manifest));
      if (wrong) return wrong;
    }
    await rm(taskDir, { recursive: true, force: true });
    await rename(files, taskDir);
    return null;
  } finally {
    await rm(temp, { recursive: true, force: true });
  }
}

/**
 * Downloads and checks the outputs of every verified task into `dir` (one `task-<index>` folder each), trying each
 * agreeing execution's copy in turn until one matches the verified manifest; `note` hears of each copy that did not
 * (default: a line on stderr). Throws CliError (EXIT.INTERNAL) when no copy of a task's outputs matches (its
 * folder is then left as it was: absent, or an earlier complete download), the client's ApiError when the coordinator cannot be reached or refuses the key.
 */
export async function downloadResults(
  client: DeqoClient,
  results: JobResults,
  dir: string,
  note: (line: string) => void = (line) => process.stderr.write(`${terminalLine(line)}\n`),
): Promise<DownloadedTask[]> {
  const done: DownloadedTask[] = [];
  for (const t of results.tasks) {
    if (t.state !== 'verified' || !t.outputsBlob || !t.manifest) continue;
    const taskDir = join(dir, `task-${t.taskIndex}`);
    const copies = copiesOf({ ...t, outputsBlob: t.outputsBlob });
    const failures: string[] = [];
    let used: Copy | null = null;
    for (const [i, copy] of copies.entries()) {
      const whose = copy.agentName ? `${copy.agentName}'s copy` : 'the verified copy';
      const wrong = await fetchCopy(client, copy, t.manifest, taskDir, `task ${t.taskIndex} outputs`);
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
    if (!used)
      throw new CliError(
        `task ${t.taskIndex}: no copy of the outputs matches the verified result (${failures.join('; ')}); ` +
          "the coordinator's stored outputs are damaged: tell its operator",
        EXIT.INTERNAL,
      );
    done.push({
      taskIndex: t.taskIndex,
      dir: taskDir,
      files: (await readdir(taskDir)).filter((n) => !n.startsWith('.')),
      from: used.agentName,
    });
  }
  return done;
}
