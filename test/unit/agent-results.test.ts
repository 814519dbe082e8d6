/**
 * Packaging limits of the agent (results.ts, report-body.ts): outputs it cannot package into a report the
 * coordinator accepts end as the job's `outputs_unpackageable`, never as an agent error.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { packageResult, workDirs } from '../../src/agent/report-body.js';
import { buildManifest, listOutputFiles, UnpackageableOutputsError } from '../../src/agent/results.js';
import type { DeqoClient } from '../../src/client/index.js';
import { FAILURES } from '../../src/core/index.js';
import { MAX_OUTPUT_PATH_BYTES } from '../../src/protocol/index.js';

let dir: string;
const limits = { files: 3, pathBytes: 40, manifestBytes: 10_000 };

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'deqo-results-'));
  await writeFile(join(dir, 'stdout'), '');
});
afterEach(() => rm(dir, { recursive: true, force: true }));

describe('packaging limits', () => {
  it('lists up to the file limit and refuses one more', async () => {
    const out = join(dir, 'o');
    await mkdir(out);
    for (const n of ['a', 'b', 'c']) await writeFile(join(out, n), n);
    await expect(listOutputFiles(out, limits)).resolves.toEqual(['a', 'b', 'c']);
    await writeFile(join(out, 'd'), 'd');
    await expect(listOutputFiles(out, limits)).rejects.toThrow(UnpackageableOutputsError);
    await expect(listOutputFiles(out, limits)).rejects.toThrow('more than 3 output files');
  });

  it('refuses a path longer than the limit, even of an empty directory (too deep)', async () => {
    await mkdir(join(dir, 'o', ...Array.from({ length: 12 }, () => 'abcd')), { recursive: true });
    await expect(listOutputFiles(join(dir, 'o'), limits)).rejects.toThrow(/is longer than 40 bytes/);
  });

  it('refuses a manifest larger than the limit', async () => {
    const out = join(dir, 'o');
    await mkdir(out);
    await writeFile(join(out, 'x'.repeat(30)), '');
    await expect(buildManifest(out, 0, join(dir, 'stdout'), limits)).resolves.toMatchObject({ exitCode: 0 });
    await expect(buildManifest(out, 0, join(dir, 'stdout'), { ...limits, manifestBytes: 100 })).rejects.toThrow(
      /manifest of 1 output files is \d+ bytes, over 100/,
    );
  });

  it('reports outputs nested deeper than MAX_OUTPUT_PATH_BYTES as outputs_unpackageable (job-blamed, votes, charged)', async () => {
    const dirs = workDirs(dir, 'e1');
    const deep = join(dirs.outputs, ...Array.from({ length: 260 }, () => 'abc'));
    expect(260 * 4).toBeGreaterThan(MAX_OUTPUT_PATH_BYTES);
    await mkdir(deep, { recursive: true });
    await writeFile(join(deep, 'f'), 'x');
    const usage = { wallMs: 5, cpuMs: 1, maxMemoryBytes: 1 };
    const outcome = { kind: 'exited', exitCode: 0, usage, stdoutTruncated: false, stderrTruncated: false } as const;
    // No stdout/stderr files: nothing to upload, so the client is never used.
    const report = await packageResult({} as DeqoClient, 7, outcome, dirs, false);
    expect(report).toMatchObject({ outcome: 'failed', fencingToken: 7, reason: 'outputs_unpackageable', usage });
    expect(FAILURES.outputs_unpackageable).toMatchObject({
      blame: 'job',
      source: 'agent',
      votes: true,
      charged: true,
      againstProvider: false,
    });
  });
});
