/**
 * `deqo results`' download (src/cli/download.ts) against a real coordinator over HTTP, with real tarballs in its
 * blob folder: a canonical copy damaged on disk after the fact is replaced by another agreeing replica's; when no
 * copy matches, a CliError (exit 70) says so; a task without output files downloads to an empty folder. Hostile
 * tarballs (built with node-tar's Header: `..`, absolute paths, links pointing out, devices) are refused at their
 * first bad entry, named in the error, and leave nothing: no file outside, no half-unpacked folder, an earlier
 * download untouched.
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import pino from 'pino';
import * as tar from 'tar';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { downloadResults } from '../../src/cli/download.js';
import { CliError, EXIT } from '../../src/cli/exit-codes.js';
import { DeqoClient } from '../../src/client/index.js';
import { BlobStore, buildServer } from '../../src/coordinator/index.js';
import { grantTxn, toMicro } from '../../src/core/index.js';
import { DEFAULT_ENGINE_CONFIG, Engine } from '../../src/engine/index.js';
import type { JobResults } from '../../src/protocol/index.js';
import { openSqliteStore, type Store } from '../../src/store/index.js';
import { claimAll, completedReport, registerAgents, submitJob } from '../helpers/engine-flow.js';

let store: Store;
let blobs: BlobStore;
let engine: Engine;
let app: ReturnType<typeof buildServer>;
let client: DeqoClient;
let buyerId: string;
let agentIds: string[];
let out: string;

beforeEach(async () => {
  store = await openSqliteStore(':memory:');
  const log = pino({ level: 'silent' });
  blobs = new BlobStore(await mkdtemp(join(tmpdir(), 'deqo-download-blobs-')), 1 << 24);
  engine = new Engine(store, { blobs, config: { ...DEFAULT_ENGINE_CONFIG }, log });
  app = buildServer({ store, engine, blobs, log });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const buyer = await engine.accounts.createAccount('buyer', ['buyer']);
  buyerId = buyer.accountId;
  await store.transaction((tx) => tx.ledger.post(grantTxn(buyerId, toMicro(100), 'test credits'), Date.now()));
  client = new DeqoClient(`http://127.0.0.1:${(app.server.address() as AddressInfo).port}`, buyer.apiKey);
  agentIds = await registerAgents(engine, 2);
  out = await mkdtemp(join(tmpdir(), 'deqo-download-out-'));
});
afterEach(async () => {
  await app.close();
  await store.close();
  await rm(blobs.dir, { recursive: true, force: true });
  await rm(out, { recursive: true, force: true });
});

/**
 * A 2-of-2 job verified by both agents with `files` as outputs; each replica's tarball has its own file times, so the
 * two outputs blobs differ. Returns its results as the buyer reads them.
 */
async function verifiedJob(files: Record<string, string>): Promise<JobResults> {
  const jobId = await submitJob(engine, buyerId, { verification: { replicas: 2, quorum: 2 } });
  await engine.schedule();
  const claimed = await claimAll(engine, agentIds);
  expect(claimed).toHaveLength(2);
  for (const [i, { agentId, a }] of claimed.entries())
    await engine.report(agentId, a.executionId, await completedReport(engine, a, 'out\n', { files, mtime: 1_000 + i }));
  const results = await client.getResults(jobId);
  expect(results.state).toBe('succeeded');
  return results;
}

/** Overwrites a stored blob's file with other bytes, as disk damage (or a hostile coordinator) would. */
async function damage(sha256: string, bytes: Buffer | string = 'not the outputs any more'): Promise<void> {
  await writeFile(join(blobs.dir, sha256.slice(0, 2), sha256), bytes);
}

/** One raw tar entry: `header` (node-tar's Header fields: path, type, linkpath, mode …) and its content. */
interface RawEntry {
  header: ConstructorParameters<typeof tar.Header>[0];
  body?: string;
}

/** A gzip tarball of `entries` exactly as given (no path cleaning), as a hostile provider could write one. */
function rawTarball(entries: RawEntry[]): Buffer {
  const blocks = entries.map(({ header, body = '' }) => {
    const content = Buffer.from(body);
    const block = Buffer.alloc(512);
    new tar.Header({ mode: 0o644, mtime: new Date(0), size: content.length, ...header }).encode(block, 0);
    return Buffer.concat([block, content, Buffer.alloc((512 - (content.length % 512)) % 512)]);
  });
  return gzipSync(Buffer.concat([...blocks, Buffer.alloc(1024)]));
}

/** `result.json` with the content verifiedJob gives it, as a raw entry. */
const RESULT: RawEntry = { header: { path: 'result.json', type: 'File' }, body: '{}\n' };

/** Makes every replica's stored outputs `bytes`; returns the download's error. */
async function downloadHostile(results: JobResults, bytes: Buffer): Promise<CliError> {
  for (const r of results.tasks[0]!.replicas) await damage(r.outputsBlob, bytes);
  const err = await downloadResults(client, results, out, () => undefined).then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CliError);
  return err as CliError;
}

describe('deqo results download', () => {
  it("falls back to another agreeing replica's outputs when the canonical copy no longer matches", async () => {
    const results = await verifiedJob({ 'result.json': '{"accuracy": 0.975}\n', 'plots/roc.csv': 'x,y\n' });
    const t = results.tasks[0]!;
    expect(t.replicas).toHaveLength(2);
    expect(t.replicas[0]!.outputsBlob).toBe(t.outputsBlob);
    expect(t.replicas[1]!.outputsBlob).not.toBe(t.outputsBlob);
    await damage(t.outputsBlob!);

    const notes: string[] = [];
    const [done] = await downloadResults(client, results, out, (l) => notes.push(l));
    expect(done).toMatchObject({ taskIndex: 0, dir: join(out, 'task-0'), from: t.replicas[1]!.agentName });
    expect(await readFile(join(out, 'task-0', 'result.json'), 'utf8')).toBe('{"accuracy": 0.975}\n');
    expect(await readFile(join(out, 'task-0', 'plots', 'roc.csv'), 'utf8')).toBe('x,y\n');
    expect(notes).toHaveLength(1);
    expect(notes[0]).toContain(`${t.replicas[0]!.agentName}'s copy of the outputs does not match the verified result`);
    expect(notes[0]).toContain(`trying ${t.replicas[1]!.agentName}'s copy`);
    expect((await readdir(out)).sort()).toEqual(['task-0']); // no tarball left behind
  });

  it('fails with exit 70 and a clear message when no copy matches, leaving no half-written folder', async () => {
    const results = await verifiedJob({ 'result.json': '{}\n' });
    for (const r of results.tasks[0]!.replicas) await damage(r.outputsBlob);
    const err = await downloadResults(client, results, out, () => undefined).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(CliError);
    expect((err as CliError).exitCode).toBe(EXIT.INTERNAL);
    expect((err as CliError).message).toMatch(/^task 0: no copy of the outputs matches the verified result/);
    await expect(stat(join(out, 'task-0'))).rejects.toThrow();
  });

  it('downloads long (pax header) paths, nested folders and empty files', async () => {
    const long = `deep/${'d'.repeat(150)}/${'f'.repeat(120)}.txt`;
    const results = await verifiedJob({ [long]: 'long path', 'a/b/c/empty.txt': '' });
    await downloadResults(client, results, out, () => undefined);
    expect(await readFile(join(out, 'task-0', long), 'utf8')).toBe('long path');
    expect(await readFile(join(out, 'task-0', 'a/b/c/empty.txt'), 'utf8')).toBe('');
    expect(await readdir(out)).toEqual(['task-0']);
  });

  it('downloads a task without output files as an empty folder', async () => {
    const results = await verifiedJob({});
    expect(results.tasks[0]!.manifest?.files).toEqual([]);
    const [done] = await downloadResults(client, results, out, () => undefined);
    expect(done).toMatchObject({ files: [] });
    expect(await readdir(join(out, 'task-0'))).toEqual([]);
  });
});

describe('deqo results download of a hostile tarball', () => {
  const outside = `deqo-escaped-${randomUUID()}`;
  const cases: Array<{ name: string; entries: RawEntry[]; entry: string; problem: RegExp }> = [
    {
      name: 'a `..` path',
      entries: [RESULT, { header: { path: `../../../${outside}`, type: 'File' }, body: 'x' }],
      entry: `../../../${outside}`,
      problem: /a path with a "\.\." segment/,
    },
    {
      name: 'an absolute path',
      entries: [RESULT, { header: { path: join(tmpdir(), outside), type: 'File' }, body: 'x' }],
      entry: join(tmpdir(), outside),
      problem: /an absolute path/,
    },
    {
      name: 'a symlink pointing outside, then a file through it',
      entries: [{ header: { path: 'result.json', type: 'SymbolicLink', linkpath: join(tmpdir(), outside) } }, RESULT],
      entry: 'result.json',
      problem: /a symbolic link/,
    },
    {
      name: 'a hard link to a file outside',
      entries: [{ header: { path: 'result.json', type: 'Link', linkpath: '/etc/hostname' } }],
      entry: 'result.json',
      problem: /a hard link/,
    },
    {
      name: 'a character device',
      entries: [RESULT, { header: { path: 'null', type: 'CharacterDevice', devmaj: 1, devmin: 3 } }],
      entry: 'null',
      problem: /a CharacterDevice entry/,
    },
    {
      name: 'a file the manifest does not list, before the listed one',
      entries: [{ header: { path: 'extra.bin', type: 'File' }, body: 'y' }, RESULT],
      entry: 'extra.bin',
      problem: /a file the manifest does not list/,
    },
  ];

  for (const c of cases) {
    it(`refuses ${c.name}, names the entry, and leaves nothing behind`, async () => {
      const results = await verifiedJob({ 'result.json': '{}\n' });
      const err = await downloadHostile(results, rawTarball(c.entries));
      expect(err.exitCode).toBe(EXIT.INTERNAL);
      expect(err.message).toContain(`entry ${JSON.stringify(c.entry)} refused: `);
      expect(err.message).toMatch(c.problem);
      expect(await readdir(out)).toEqual([]); // no task folder, no temporary folder
      await expect(stat(join(tmpdir(), outside))).rejects.toThrow();
    });
  }

  it('keeps an earlier complete download when a later one is refused', async () => {
    const results = await verifiedJob({ 'result.json': '{}\n' });
    await downloadResults(client, results, out, () => undefined);
    const err = await downloadHostile(
      results,
      rawTarball([{ header: { path: 'result.json', type: 'SymbolicLink', linkpath: '/etc/passwd' } }]),
    );
    expect(err.message).toContain('entry "result.json" refused: a symbolic link');
    expect((await readdir(out)).sort()).toEqual(['task-0']);
    expect(await readFile(join(out, 'task-0', 'result.json'), 'utf8')).toBe('{}\n');
  });

  it('unpacks files without set-id bits, keeping only whether they are executable', async () => {
    const results = await verifiedJob({ 'result.json': '{}\n', 'run.sh': 'echo\n' });
    for (const r of results.tasks[0]!.replicas)
      await damage(
        r.outputsBlob,
        rawTarball([
          { header: { path: 'result.json', type: 'File', mode: 0o6666 }, body: '{}\n' },
          { header: { path: 'run.sh', type: 'File', mode: 0o4777 }, body: 'echo\n' },
        ]),
      );
    await downloadResults(client, results, out, () => undefined);
    expect((await stat(join(out, 'task-0', 'result.json'))).mode & 0o7777).toBe(0o644);
    expect((await stat(join(out, 'task-0', 'run.sh'))).mode & 0o7777).toBe(0o755);
  });
});
