/**
 * An execution's work directory and the report built from it: stdout, stderr and the output tarball are
 * uploaded as blobs, the manifest and result hash computed (results.ts). Work directories live under
 * `<dataDir>/work/<executionId>` and survive agent restarts while the execution is recorded (state.ts).
 */
import { access, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ApiError, uploadFile, type DeqoClient } from '../client/index.js';
import { resultHashOf, type FailureReason } from '../core/index.js';
import type { Manifest, ReportRequest, Usage } from '../protocol/index.js';
import type { ExecutionOutcome } from './executor.js';
import { unmountOutputs } from './output-fs.js';
import { removeTree } from './remove-tree.js';
import { buildManifest, corruptOutputs, tarOutputs, UnpackageableOutputsError } from './results.js';

/** An upload gets no byte through (nor an answer) for this long: it is abandoned as unreachable, ms. */
const UPLOAD_IDLE_TIMEOUT_MS = 60_000;

/** Host paths of one execution's work directory. */
export interface WorkDirs {
  root: string;
  inputs: string;
  outputs: string;
  stdout: string;
  stderr: string;
  tarball: string;
}

/** The work directory of an execution: `<dataDir>/work/<executionId>/{inputs,outputs,stdout,stderr,outputs.tar.gz}`. */
export function workDirs(dataDir: string, executionId: string): WorkDirs {
  const root = join(dataDir, 'work', executionId);
  return {
    root,
    inputs: join(root, 'inputs'),
    outputs: join(root, 'outputs'),
    stdout: join(root, 'stdout'),
    stderr: join(root, 'stderr'),
    tarball: join(root, 'outputs.tar.gz'),
  };
}

/** Deletes the work directories under `<dataDir>/work` whose execution is not in `keep`; returns their names. */
export async function removeStrayWorkDirs(dataDir: string, keep: ReadonlySet<string>): Promise<string[]> {
  const names = await readdir(join(dataDir, 'work')).catch(() => [] as string[]);
  const stray = names.filter((n) => !keep.has(n));
  for (const n of stray) await removeWorkDir(workDirs(dataDir, n));
  return stray;
}

/**
 * Deletes an execution's work directory, unmounting its capped output filesystem first (output-fs.ts); removeTree
 * also removes folders a container nested past the host's PATH_MAX.
 */
export async function removeWorkDir(dirs: WorkDirs): Promise<void> {
  await unmountOutputs(dirs.outputs).catch(() => undefined);
  await removeTree(dirs.root);
}

/** A failed report (provider-side unless the reason says otherwise); the message is cut to the protocol's 4096 characters. */
export function failureReport(
  fencingToken: number,
  reason: FailureReason,
  message: string,
  usage?: Usage,
): Extract<ReportRequest, { outcome: 'failed' }> {
  return { outcome: 'failed', fencingToken, reason, message: message.slice(0, 4096), ...(usage ? { usage } : {}) };
}

/**
 * Uploads a file as a blob and returns its SHA-256; aborts as unreachable (ApiError, retryable) when no byte
 * goes through and no answer comes for UPLOAD_IDLE_TIMEOUT_MS, so a partitioned link cannot hang it.
 */
export async function uploadBlob(client: DeqoClient, path: string): Promise<string> {
  const ac = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  let settled = false;
  const touch = (): void => {
    // The file may still be read after the request failed (progress is metered as it is read): no new timer
    // then, or one would keep the agent's process alive for a minute after it stopped.
    if (settled) return;
    clearTimeout(timer);
    timer = setTimeout(
      () => ac.abort(new DOMException(`no progress for ${UPLOAD_IDLE_TIMEOUT_MS / 1000} s`, 'TimeoutError')),
      UPLOAD_IDLE_TIMEOUT_MS,
    );
  };
  touch();
  try {
    return (await uploadFile(client, path, touch, ac.signal)).sha256;
  } finally {
    settled = true;
    clearTimeout(timer);
  }
}

/** A failed report with stdout and stderr uploaded when a container wrote them (not for an unknown image, say). */
async function failedWithLogs(
  client: DeqoClient,
  fencingToken: number,
  reason: FailureReason,
  message: string,
  usage: Usage,
  dirs: WorkDirs,
): Promise<ReportRequest> {
  const present = async (p: string): Promise<string | undefined> => {
    try {
      await access(p);
    } catch {
      return undefined;
    }
    return uploadBlob(client, p);
  };
  const stdoutBlob = await present(dirs.stdout);
  const stderrBlob = await present(dirs.stderr);
  return {
    ...failureReport(fencingToken, reason, message, usage),
    ...(stdoutBlob ? { stdoutBlob } : {}),
    ...(stderrBlob ? { stderrBlob } : {}),
  };
}

/**
 * Builds the report of a finished execution from its work directory: uploads stdout and stderr (when a
 * container wrote them) and, for an exit, the output tarball; computes the manifest and result hash.
 * Outputs it cannot package (results.ts UnpackageableOutputsError) make a failed report, `outputs_unpackageable`.
 * `corrupt` (TEST ONLY) alters the outputs first. Throws ApiError when an upload fails, Error on file errors.
 */
export async function packageResult(
  client: DeqoClient,
  fencingToken: number,
  outcome: ExecutionOutcome,
  dirs: WorkDirs,
  corrupt: boolean,
): Promise<ReportRequest> {
  if (outcome.kind === 'failed')
    return failedWithLogs(client, fencingToken, outcome.reason, outcome.message, outcome.usage, dirs);
  let manifest: Manifest; // before any upload: outputs it cannot package are the job's failure
  try {
    if (corrupt) await corruptOutputs(dirs.outputs);
    manifest = await buildManifest(dirs.outputs, outcome.exitCode, dirs.stdout);
  } catch (e) {
    if (!(e instanceof UnpackageableOutputsError)) throw e;
    return failedWithLogs(client, fencingToken, 'outputs_unpackageable', e.message, outcome.usage, dirs);
  }
  const stdoutBlob = await uploadBlob(client, dirs.stdout);
  const stderrBlob = await uploadBlob(client, dirs.stderr);
  await tarOutputs(dirs.outputs, dirs.tarball);
  let outputsBlob: string;
  try {
    outputsBlob = await uploadBlob(client, dirs.tarball);
  } catch (err) {
    // Outputs within limits.outputBytes can still be more than the coordinator stores (its largest blob): the job's.
    if (!(err instanceof ApiError && err.code === 'payload_too_large')) throw err;
    const message = `the outputs tarball is ${(await stat(dirs.tarball)).size} bytes: ${err.message}`;
    return failedWithLogs(client, fencingToken, 'output_too_large', message, outcome.usage, dirs);
  }
  return {
    outcome: 'completed',
    fencingToken,
    manifest,
    resultHash: resultHashOf(manifest),
    outputsBlob,
    stdoutBlob,
    stderrBlob,
    usage: outcome.usage,
  };
}
