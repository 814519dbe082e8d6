/**
 * What an agent packages and removes when a container is hostile, against a real coordinator over HTTP (listening on
 * a free port): folders nested past the host's PATH_MAX (relative mkdir, as a container can) are the job's
 * `outputs_unpackageable` (the executor's size poll sees them too) and its work folder is still removed; outputs over
 * the coordinator's largest blob are the job's `output_too_large` — never an agent error or a report refused and lost.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { access, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packageResult, removeStrayWorkDirs, workDirs } from '../../src/agent/report-body.js';
import { dirSize } from '../../src/agent/docker-streams.js';
import { removeTree } from '../../src/agent/remove-tree.js';
import { DeqoClient } from '../../src/client/index.js';
import { BlobStore, buildServer } from '../../src/coordinator/index.js';
import { DEFAULT_ENGINE_CONFIG, Engine } from '../../src/engine/index.js';
import { openSqliteStore, type Store } from '../../src/store/index.js';
import type { ExecutionOutcome } from '../../src/agent/executor.js';

/** The coordinator's largest blob in these tests, bytes. */
const BLOB_MAX_BYTES = 2 * 1024 * 1024;
let store: Store;
let app: ReturnType<typeof buildServer>;
let client: DeqoClient;
let dataDir: string;

beforeAll(async () => {
  store = await openSqliteStore(':memory:');
  dataDir = await mkdtemp(join(tmpdir(), 'deqo-pack-'));
  const log = pino({ level: 'silent' });
  const blobs = new BlobStore(join(dataDir, 'blobs'), BLOB_MAX_BYTES);
  const engine = new Engine(store, { blobs, config: DEFAULT_ENGINE_CONFIG, log });
  app = buildServer({ store, engine, blobs, log });
  const address = await app.listen({ port: 0, host: '127.0.0.1' });
  // A buyer key: it may upload without running an execution (a provider key uploads only while it runs one).
  const { apiKey } = await engine.accounts.createAccount('b', ['buyer'], 'buyer');
  client = new DeqoClient(address, apiKey);
});
afterAll(async () => {
  await app.close();
  await store.close();
  await removeTree(dataDir);
});

const exited: ExecutionOutcome = {
  kind: 'exited',
  exitCode: 0,
  usage: { wallMs: 1000, cpuMs: 500, maxMemoryBytes: 1024 },
  stdoutTruncated: false,
  stderrTruncated: false,
};

/** A work directory whose outputs `fill` writes; the report packageResult builds from it. */
async function packaged(id: string, fill: (outputs: string) => Promise<void>) {
  const dirs = workDirs(dataDir, id);
  await mkdir(dirs.outputs, { recursive: true });
  await writeFile(dirs.stdout, 'out');
  await writeFile(dirs.stderr, 'err');
  await fill(dirs.outputs);
  return packageResult(client, 1, exited, dirs, false);
}

describe('packaging and removing what a hostile container leaves', () => {
  it('packages an ordinary output directory as a completed report', async () => {
    const r = await packaged('ok', async (o) => {
      await mkdir(join(o, 'a/b'), { recursive: true });
      await writeFile(join(o, 'a/b/c.txt'), 'c');
    });
    expect(r.outcome).toBe('completed');
  });

  it('fails folders nested past the host PATH_MAX (made with relative mkdir, as a container can) as outputs_unpackageable', async () => {
    const r = await packaged('long', async (o) => {
      // A relative chdir per level, as a process in the container can: the full path is far past PATH_MAX (4096).
      const deep = `process.chdir(process.argv[1]); for (let i = 0; i < 250; i++) { require('fs').mkdirSync('${'d'.repeat(100)}'); process.chdir('${'d'.repeat(100)}'); } require('fs').writeFileSync('f', 'x');`;
      execFileSync(process.execPath, ['-e', deep, o]);
    });
    expect(r).toMatchObject({ outcome: 'failed', reason: 'outputs_unpackageable' });
    expect(r.outcome === 'failed' && r.message).toContain('longer than 1024 bytes');
    // The executor's size poll sees it too, so it stops the container as it happens (a file past PATH_MAX would
    // otherwise escape limits.outputBytes).
    const polled = await dirSize(workDirs(dataDir, 'long').outputs);
    expect(polled.beyond).toContain('longer than 1024 bytes');
  });

  it('removes a work directory nested past PATH_MAX, which fs.rm cannot (ENAMETOOLONG)', async () => {
    const root = workDirs(dataDir, 'long').root;
    await expect(rm(root, { recursive: true, force: true })).rejects.toThrow(/ENAMETOOLONG/);
    expect(await removeStrayWorkDirs(dataDir, new Set(['ok']))).toContain('long');
    await expect(access(root)).rejects.toThrow(/ENOENT/);
    expect(await readdir(join(dataDir, 'work'))).not.toContain('long.flat');
  });

  it("fails outputs within limits.outputBytes but over the coordinator's largest blob as output_too_large", async () => {
    const r = await packaged('big', async (o) => {
      await writeFile(join(o, 'random.bin'), randomBytes(BLOB_MAX_BYTES + 1024));
    });
    expect(r).toMatchObject({ outcome: 'failed', reason: 'output_too_large' });
    expect(r.outcome === 'failed' && r.message).toMatch(/outputs tarball is \d+ bytes/);
  });
});
