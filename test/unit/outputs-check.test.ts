/**
 * Outputs checked at the door: a real outputs tarball (the agent's tarOutputs) held against its manifest by the
 * engine's streaming check (engine/outputs.ts with core's OutputsCheck), honest and tampered with — extra, missing,
 * changed and resized files, symlink, hard-link, `..`, absolute and duplicate entries, not gzip, truncated, padded
 * past what the manifest accounts for — with the blobs in a real BlobStore.
 */
import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { link, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import * as tar from 'tar';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildManifest, tarOutputs } from '../../src/agent/results.js';
import type { BlobStore } from '../../src/coordinator/blobs.js';
import { DeqoError, OutputsCheck } from '../../src/core/index.js';
import { checkOutputs } from '../../src/engine/index.js';
import type { Manifest } from '../../src/protocol/index.js';
import { tempBlobStore } from '../helpers/outputs.js';

let blobs: BlobStore;
let work: string;
let n = 0;

beforeAll(async () => {
  blobs = await tempBlobStore();
  work = await mkdtemp(join(tmpdir(), 'deqo-outputs-check-'));
});
afterAll(async () => {
  await rm(blobs.dir, { recursive: true, force: true });
  await rm(work, { recursive: true, force: true });
});

/** A fresh output folder holding `files`. */
async function folder(files: Record<string, string | Buffer>): Promise<string> {
  const dir = join(work, `out-${n++}`);
  await mkdir(dir);
  for (const [path, content] of Object.entries(files)) {
    await mkdir(join(dir, path, '..'), { recursive: true });
    await writeFile(join(dir, path), content);
  }
  return dir;
}

/** The manifest an honest agent builds for `dir`. */
async function manifestOf(dir: string): Promise<Manifest> {
  const stdout = join(work, `stdout-${n++}`);
  await writeFile(stdout, '');
  return buildManifest(dir, 0, stdout);
}

/** Puts a file's bytes in the blob store; returns its SHA-256. */
async function put(path: string): Promise<string> {
  return (await blobs.put(createReadStream(path))).sha256;
}

/** The agent's tarball of `dir`, stored. */
async function tarballOf(dir: string): Promise<string> {
  const file = join(work, `t-${n++}.tar.gz`);
  await tarOutputs(dir, file);
  return put(file);
}

/** A tarball made by node-tar from `paths` under `cwd` (links kept as links; `preservePaths` keeps `..` and `/`). */
async function tarballFrom(cwd: string, paths: string[], preservePaths = false): Promise<string> {
  const file = join(work, `t-${n++}.tar.gz`);
  // Packed plain, then gzipped whole: node-tar's own gzip stream once threw Z_STREAM_ERROR after a hard-link entry.
  await tar.create({ file: `${file}.tar`, cwd, portable: true, noDirRecurse: true, preservePaths }, paths);
  await writeFile(file, gzipSync(await readFile(`${file}.tar`)));
  return put(file);
}

/** Stores `bytes` as a blob. */
async function putBytes(bytes: Buffer): Promise<string> {
  const file = join(work, `b-${n++}`);
  await writeFile(file, bytes);
  return put(file);
}

/** The uncompressed tar of a stored blob. */
async function rawTar(sha256: string): Promise<Buffer> {
  return gunzipSync(await readFile(join(blobs.dir, sha256.slice(0, 2), sha256)));
}

describe('an honest outputs tarball', () => {
  it('matches its manifest: nested folders, a long (pax) path, an empty file, a large file', async () => {
    const dir = await folder({
      'result.json': '{"accuracy": 0.975}\n',
      'plots/a/b/c.csv': 'x,y\n1,2\n',
      [`deep/${'d'.repeat(150)}/${'f'.repeat(120)}.txt`]: 'long path',
      'empty.txt': '',
      'big.bin': randomBytes(3 * 1024 * 1024 + 17),
    });
    const manifest = await manifestOf(dir);
    expect(await checkOutputs(blobs, await tarballOf(dir), manifest)).toBeNull();
  });

  it('of an empty output folder matches an empty manifest', async () => {
    const dir = await folder({});
    expect(await checkOutputs(blobs, await tarballOf(dir), await manifestOf(dir))).toBeNull();
  });
});

describe('a tampered outputs tarball is the first mismatch, naming its path', () => {
  it('an extra file', async () => {
    const honest = await folder({ 'a.txt': 'one' });
    const more = await folder({ 'a.txt': 'one', 'b.txt': 'two' });
    expect(await checkOutputs(blobs, await tarballOf(more), await manifestOf(honest))).toEqual({
      path: 'b.txt',
      problem: 'a file the manifest does not list',
    });
  });

  it('a missing file', async () => {
    const honest = await folder({ 'a.txt': 'one', 'b.txt': 'two' });
    const fewer = await folder({ 'a.txt': 'one' });
    expect(await checkOutputs(blobs, await tarballOf(fewer), await manifestOf(honest))).toEqual({
      path: 'b.txt',
      problem: 'listed in the manifest but not in the tarball',
    });
  });

  it('different bytes of the same size', async () => {
    const honest = await folder({ 'a.txt': 'accuracy 0.97' });
    const forged = await folder({ 'a.txt': 'accuracy 0.99' });
    const m = await manifestOf(honest);
    const got = await checkOutputs(blobs, await tarballOf(forged), m);
    expect(got?.path).toBe('a.txt');
    expect(got?.problem).toContain(`the manifest says ${m.files[0]!.sha256}`);
  });

  it('a different size', async () => {
    const honest = await folder({ 'a.txt': 'accuracy 0.97' });
    const forged = await folder({ 'a.txt': 'accuracy 0.9' });
    expect(await checkOutputs(blobs, await tarballOf(forged), await manifestOf(honest))).toEqual({
      path: 'a.txt',
      problem: '12 bytes in the tarball, 13 in the manifest',
    });
  });

  it('a symlink entry, even one named in the manifest', async () => {
    const dir = await folder({ 'a.txt': 'one' });
    await symlink('a.txt', join(dir, 'l.txt'));
    const honest = await folder({ 'a.txt': 'one', 'l.txt': 'one' });
    expect(await checkOutputs(blobs, await tarballFrom(dir, ['a.txt', 'l.txt']), await manifestOf(honest))).toEqual({
      path: 'l.txt',
      problem: 'a symbolic link (only regular files are accepted)',
    });
  });

  it('accepts what the agent packs of hard-linked outputs: each path as a regular file', async () => {
    const dir = await folder({ 'a.txt': 'one' });
    await link(join(dir, 'a.txt'), join(dir, 'h.txt'));
    expect(await checkOutputs(blobs, await tarballOf(dir), await manifestOf(dir))).toBeNull();
  });

  it('a hard-link entry', async () => {
    const dir = await folder({ 'a.txt': 'one' });
    await link(join(dir, 'a.txt'), join(dir, 'h.txt'));
    const honest = await folder({ 'a.txt': 'one', 'h.txt': 'one' });
    expect(await checkOutputs(blobs, await tarballFrom(dir, ['a.txt', 'h.txt']), await manifestOf(honest))).toEqual({
      path: 'h.txt',
      problem: 'a hard link (only regular files are accepted)',
    });
  });

  it('a ../x entry and an absolute one', async () => {
    const parent = await folder({ x: 'outside', 'out/a.txt': 'one' });
    const m = await manifestOf(await folder({ 'a.txt': 'one' }));
    const dotdot = await tarballFrom(join(parent, 'out'), ['a.txt', '../x'], true);
    expect(await checkOutputs(blobs, dotdot, m)).toEqual({
      path: '../x',
      problem: 'a path with a ".." segment (it points outside the output directory)',
    });
    const absolute = await tarballFrom(join(parent, 'out'), ['a.txt', join(parent, 'x')], true);
    expect(await checkOutputs(blobs, absolute, m)).toMatchObject({
      path: join(parent, 'x'),
      problem: 'an absolute path (only paths inside the output directory are accepted)',
    });
  });

  it('a file twice (two regular entries of one path)', async () => {
    const dir = await folder({ 'a.txt': 'one' });
    const m = await manifestOf(dir);
    const once = await rawTar(await tarballOf(dir));
    // Two archives of the same file, the first without its two end-of-archive blocks.
    const twice = await putBytes(gzipSync(Buffer.concat([once.subarray(0, once.length - 1024), once])));
    expect(await checkOutputs(blobs, twice, m)).toEqual({ path: 'a.txt', problem: 'in the tarball twice' });
  });

  it('a directory entry', async () => {
    const dir = await folder({ 'in/a.txt': 'one' });
    expect(await checkOutputs(blobs, await tarballFrom(dir, ['in', 'in/a.txt']), await manifestOf(dir))).toEqual({
      path: 'in/',
      problem: 'a Directory entry (only regular files are accepted)',
    });
  });

  it('bytes that are not a gzip tar, a truncated tarball, and a tar padded past what its manifest can take', async () => {
    const dir = await folder({ 'a.txt': 'one' });
    const m = await manifestOf(dir);
    const garbage = await checkOutputs(blobs, await putBytes(randomBytes(4096)), m);
    expect(garbage).toMatchObject({ path: '(tarball)' });
    expect(garbage?.problem).toMatch(/^not a gzip-compressed tar/);

    const notTar = await checkOutputs(blobs, await putBytes(gzipSync(randomBytes(4096))), m);
    expect(notTar).toMatchObject({ path: '(tarball)' });
    expect(notTar?.problem).toMatch(/^not a valid tar archive/);

    const whole = await readFile(join(blobs.dir, (await tarballOf(dir)).slice(0, 2), await tarballOf(dir)));
    const truncated = await checkOutputs(blobs, await putBytes(whole.subarray(0, whole.length - 10)), m);
    expect(truncated?.path).toBe('(tarball)');

    // 64 MiB of zeros after the archive compress to about 64 KiB: a small blob that would take long to read.
    const raw = await rawTar(await tarballOf(dir));
    const padded = await putBytes(gzipSync(Buffer.concat([raw, Buffer.alloc(64 * 1024 * 1024)])));
    const bomb = await checkOutputs(blobs, padded, m);
    expect(bomb).toMatchObject({ path: '(tarball)' });
    expect(bomb?.problem).toMatch(/^more than the \d+ bytes of tar the manifest's files can take/);
  });
});

describe('the check itself', () => {
  it('answers unavailable (retryable) for a blob the store does not hold: the coordinator lost it, not the provider', async () => {
    const dir = await folder({ 'a.txt': 'one' });
    const err = await checkOutputs(blobs, 'f'.repeat(64), await manifestOf(dir)).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(DeqoError);
    expect((err as DeqoError).code).toBe('unavailable');
    expect((err as DeqoError).retryable).toBe(true);
  });

  it('reads at most one entry per manifest file: the first entry the manifest does not list ends it', () => {
    const check = new OutputsCheck({ exitCode: 0, stdoutSha256: 'a'.repeat(64), files: [] });
    expect(check.entry({ path: 'x', type: 'File', size: 0 })).toEqual({
      path: 'x',
      problem: 'a file the manifest does not list',
    });
    expect(check.end()).toBeNull();
    expect(check.byteBound).toBeLessThan(64 * 1024);
  });
});
