/**
 * Outputs checked at the door: a completed report's outputs tarball (a gzip-compressed tar, as the agent's
 * `tarOutputs` writes it) is streamed from the blob store through gunzip and node-tar's parser, and every entry is
 * held against the reported manifest with core's rule (`OutputsCheck`, core/manifest.ts). Nothing is extracted and
 * no file is held in memory: each entry's bytes are hashed as they pass. The work is bounded: at most one entry per
 * manifest file and at most `OutputsCheck.byteBound` bytes of uncompressed tar (which also stops a gzip bomb); the
 * check stops at the first mismatch.
 */
import { createHash } from 'node:crypto';
import { Transform, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { Parser, type ReadEntry } from 'tar';
import { DeqoError, OutputsCheck, type OutputsMismatch } from '../core/index.js';
import type { Manifest } from '../protocol/index.js';
import type { BlobReader } from './resources.js';

/** The path a mismatch of the archive itself (not of one file) names. */
export const TARBALL = '(tarball)';

/** Largest pax or GNU long-name header accepted, bytes (a manifest path is at most 4096 characters). */
const MAX_META_ENTRY_BYTES = 16 * 1024;

/**
 * Checks the outputs tarball `sha256` in `blobs` against `manifest`: the same set of regular files, each once, with
 * the manifest's sizes and SHA-256s (core's OutputsCheck says what is acceptable). Resolves to the first mismatch,
 * or null when the tarball is exactly the manifest's files. A blob that is not gzip, not a tar, truncated, or larger
 * than its manifest accounts for is a mismatch of `(tarball)`.
 * Throws DeqoError unavailable (503, retryable) when the blob is not in the blob store (the coordinator's problem,
 * not the provider's), or the blob store's read error. Throws RangeError on a manifest listing a path twice.
 */
export async function checkOutputs(
  blobs: BlobReader,
  sha256: string,
  manifest: Manifest,
): Promise<OutputsMismatch | null> {
  const check = new OutputsCheck(manifest);
  let source;
  try {
    source = (await blobs.open(sha256)).stream;
  } catch (err) {
    if (err instanceof DeqoError && err.code === 'not_found')
      throw new DeqoError(
        'unavailable',
        `outputs blob ${sha256} was uploaded but is not in this coordinator's blob folder; try again later`,
      );
    throw err;
  }

  // What the stream callbacks found (an object, as they set it out of the control flow's sight).
  const found: { mismatch: OutputsMismatch | null; gzipError: Error | null; sawEnd: boolean } = {
    mismatch: null,
    gzipError: null,
    sawEnd: false,
  };
  const stop = new AbortController();
  const fail = (m: OutputsMismatch): void => {
    if (found.mismatch) return;
    found.mismatch = m;
    stop.abort();
  };
  const badArchive = (what: string): void => fail({ path: TARBALL, problem: what });

  const parser = new Parser({ strict: false, maxMetaEntrySize: MAX_META_ENTRY_BYTES, zstd: false, brotli: false });
  parser.on('entry', (entry: ReadEntry) => {
    const problem = found.mismatch ? null : check.entry({ path: entry.path, type: entry.type, size: entry.size });
    if (found.mismatch || problem) {
      if (problem) fail(problem);
      entry.resume();
      return;
    }
    const hash = createHash('sha256');
    let size = 0;
    entry.on('data', (chunk: Buffer) => {
      hash.update(chunk);
      size += chunk.length;
    });
    entry.on('end', () => {
      const wrong = check.content(entry.path, hash.digest('hex'), size);
      if (wrong) fail(wrong);
    });
  });
  // node-tar skips (and does not emit as entries) unknown entry types and oversized extended headers.
  parser.on('ignoredEntry', (entry: ReadEntry) =>
    fail(
      entry.meta
        ? { path: entry.path, problem: `an extended header over ${MAX_META_ENTRY_BYTES} bytes` }
        : (check.entry({ path: entry.path, type: entry.type, size: entry.size }) ?? {
            path: entry.path,
            problem: `a ${entry.type} entry (only regular files are accepted)`,
          }),
    ),
  );
  parser.on('eof', () => {
    found.sawEnd = true;
  });
  parser.on('warn', (code: string, message: string) => {
    // An archive of no files (two zero blocks, what tarOutputs writes for an empty output folder) is "unrecognized".
    if (code === 'TAR_BAD_ARCHIVE' && found.sawEnd && /unrecognized archive format/i.test(message)) return;
    badArchive(`not a valid tar archive (${message})`);
  });
  parser.on('error', (err: Error) => badArchive(`not a valid tar archive (${err.message})`));

  let tarBytes = 0;
  const meter = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      if (tarBytes === 0 && chunk[0] === 0x1f && chunk[1] === 0x8b) badArchive('compressed twice (gzip inside gzip)');
      tarBytes += chunk.length;
      if (tarBytes > check.byteBound)
        badArchive(`more than the ${check.byteBound} bytes of tar the manifest's files can take`);
      done(null, chunk);
    },
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
  const gunzip = createGunzip();
  gunzip.on('error', (err) => {
    found.gzipError = err;
  });

  try {
    await pipeline(source, gunzip, meter, sink, { signal: stop.signal });
  } catch (err) {
    if (found.mismatch) return found.mismatch;
    if (found.gzipError) return { path: TARBALL, problem: `not a gzip-compressed tar (${found.gzipError.message})` };
    throw err;
  }
  if (found.mismatch) return found.mismatch;
  if (!found.sawEnd) return { path: TARBALL, problem: 'ends before the end-of-archive blocks (truncated)' };
  return check.end();
}
