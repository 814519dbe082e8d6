/**
 * Comparator grouping (verification.compare): when a job's results may differ within a tolerance, an execution's
 * verdict — what votes compare — is the verdict of the first existing group of its task whose founding result agrees
 * with it under the job's rules (core/compare.ts), else its own result hash (it founds a group). The files a rule
 * matches are read from the outputs tarballs in the blob store (already checked against their manifests at the door,
 * outputs.ts), streamed, only the files needed, each at most COMPARE_MAX_FILE_BYTES.
 *
 * Ordering: the report's transaction locks the job first (ReportSystem.report), so reports of one task are decided
 * one after the other and each sees every group founded before it; two concurrent reports cannot both found groups
 * that agree. Comparisons are cached per report so the work done before the transaction (against the groups seen
 * then) is not repeated inside it; only groups founded meanwhile are compared while the lock is held.
 */
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { Parser, type ReadEntry } from 'tar';
import { COMPARE_MAX_FILE_BYTES, compareFileContents, planComparison, type OutputDifference } from '../core/index.js';
import type { CompareRule, Manifest } from '../protocol/index.js';
import type { ComparableResult } from '../store/index.js';
import type { BlobReader } from './resources.js';

/** A result as the comparator reads it: its manifest and outputs tarball. */
export interface ResultOutputs {
  manifest: Manifest;
  outputsBlob: string;
}

/**
 * Reads the files `paths` of the outputs tarball `sha256` as UTF-8 text (each at most `maxFileBytes`; a larger one
 * is cut there, which the comparison then finds unparsable). Files absent from the tarball are absent from the map.
 * Throws the blob store's error when the blob cannot be read.
 */
export async function readOutputTexts(
  blobs: BlobReader,
  sha256: string,
  paths: ReadonlySet<string>,
  maxFileBytes = COMPARE_MAX_FILE_BYTES,
): Promise<Map<string, string>> {
  const found = new Map<string, string>();
  if (paths.size === 0) return found;
  const { stream } = await blobs.open(sha256);
  const parser = new Parser({ strict: false, zstd: false, brotli: false });
  parser.on('entry', (entry: ReadEntry) => {
    if (!paths.has(entry.path) || entry.type !== 'File') {
      entry.resume();
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    entry.on('data', (chunk: Buffer) => {
      if (size < maxFileBytes) chunks.push(chunk.subarray(0, maxFileBytes - size));
      size += chunk.length;
    });
    entry.on('end', () => found.set(entry.path, Buffer.concat(chunks).toString('utf8')));
  });
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      if (parser.write(chunk)) done();
      else parser.once('drain', () => done());
    },
    final(done) {
      parser.end(() => done());
    },
  });
  await pipeline(stream, createGunzip(), sink);
  return found;
}

/**
 * Whether results `a` and `b` agree under `rules`: null when they do, else the first difference (by path). Reads
 * only the files a rule matches whose SHA-256s differ.
 */
export async function compareOutputs(
  blobs: BlobReader,
  rules: readonly CompareRule[],
  a: ResultOutputs,
  b: ResultOutputs,
): Promise<OutputDifference | null> {
  const plan = planComparison(rules, a.manifest, b.manifest);
  if (plan.kind === 'differ') return plan.difference;
  if (plan.files.length === 0) return null;
  const paths = new Set(plan.files.map((f) => f.path));
  const [ta, tb] = await Promise.all([
    readOutputTexts(blobs, a.outputsBlob, paths),
    readOutputTexts(blobs, b.outputsBlob, paths),
  ]);
  for (const { path, rule } of plan.files) {
    const d = compareFileContents(path, rule, ta.get(path) ?? '', tb.get(path) ?? '');
    if (d) return d;
  }
  return null;
}

/** Comparisons already made for one report: founding execution id → difference (null: agrees). */
export type ComparisonCache = Map<string, OutputDifference | null>;

/**
 * The verdict of result `mine` (its manifest, result hash and outputs) among `existing` results of its task (earliest
 * first, ComparableResult), under `rules`: the verdict of a result with the same result hash; else of the first group
 * (in order of foundation) whose founder — the member whose result hash is the verdict, or its earliest member —
 * agrees with it; else its own result hash. `seeds` are results of the task a replay replays (its canonical result,
 * with that task's verdict), tried first, so a re-verification that agrees within tolerance takes the original's
 * verdict.
 */
export async function groupVerdict(
  blobs: BlobReader,
  rules: readonly CompareRule[],
  mine: ResultOutputs & { resultHash: string },
  existing: readonly ComparableResult[],
  cache: ComparisonCache,
  seeds: readonly ComparableResult[] = [],
): Promise<string> {
  const all = [...seeds, ...existing];
  const same = all.find((e) => e.resultHash === mine.resultHash);
  if (same) return same.verdict;
  const founders = new Map<string, ComparableResult>();
  for (const e of all) {
    const cur = founders.get(e.verdict);
    if (!cur || (cur.resultHash !== e.verdict && e.resultHash === e.verdict)) founders.set(e.verdict, e);
  }
  for (const [verdict, founder] of founders) {
    let d = cache.get(founder.id);
    if (d === undefined) {
      d = await compareOutputs(blobs, rules, founder, mine);
      cache.set(founder.id, d);
    }
    if (d === null) return verdict;
  }
  return mine.resultHash;
}
