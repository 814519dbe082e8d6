/**
 * `deqo results`' download (src/cli/download.ts) against a real coordinator over HTTP, with real tarballs in its
 * blob folder: a canonical copy damaged on disk after the fact is replaced by another agreeing replica's; when no
 * copy matches, a CliError (exit 70) says so; a task without output files downloads to an empty folder.
 */
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
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

/** Overwrites a stored blob's file with other bytes, as disk damage would. */
async function damage(sha256: string): Promise<void> {
  await writeFile(join(blobs.dir, sha256.slice(0, 2), sha256), 'not the outputs any more');
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

  it('downloads a task without output files as an empty folder', async () => {
    const results = await verifiedJob({});
    expect(results.tasks[0]!.manifest?.files).toEqual([]);
    const [done] = await downloadResults(client, results, out, () => undefined);
    expect(done).toMatchObject({ files: [] });
    expect(await readdir(join(out, 'task-0'))).toEqual([]);
  });
});
