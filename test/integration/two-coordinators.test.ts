/**
 * Two coordinators, one PostgreSQL database: two `deqo coordinator` processes on a fresh database and one
 * shared blob folder, two `deqo agent` processes attached to each, busybox jobs (2 replicas, quorum 2)
 * submitted alternately to either. Every job must be verified and settled once, whichever coordinator took
 * it and whichever agents ran it; the ledger must audit clean; outputs must download from both coordinators.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DeqoClient, fetchBlob } from '../../src/client/index.js';
import { DEQO_BIN } from '../../src/cli/network.js';
import { settled, waitForJob } from '../helpers/network.js';
import { createPgDatabase } from '../helpers/stores.js';

const exec = promisify(execFile);
const children: ChildProcess[] = [];
let dir: string;
let database: Awaited<ReturnType<typeof createPgDatabase>>;
let urls: string[];
let adminKey: string;
let buyerKey: string;

/** Starts `deqo <args>` with its output in `<dir>/<name>.log`. */
function start(name: string, args: string[], env: Record<string, string> = {}): ChildProcess {
  const child = spawn(process.execPath, [DEQO_BIN, ...args], {
    env: { ...process.env, DEQO_HOME: dir, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const log = createWriteStream(join(dir, `${name}.log`));
  child.stdout!.pipe(log);
  child.stderr!.pipe(log);
  children.push(child);
  return child;
}

/** Starts a coordinator on a free port and resolves with its URL once it listens (30 s at most). */
function coordinator(name: string, extra: string[] = []): Promise<string> {
  const child = start(
    name,
    [
      'coordinator',
      '--port',
      '0',
      '--data-dir',
      join(dir, name),
      '--blob-dir',
      join(dir, 'blobs'),
      '--log-level',
      'warn',
      ...extra,
    ],
    { DEQO_DATABASE_URL: database.url },
  );
  return new Promise((resolve, reject) => {
    let err = '';
    const timer = setTimeout(() => reject(new Error(`${name} did not start: ${err}`)), 30_000);
    child.stderr!.on('data', (b: Buffer) => {
      err += b.toString();
      const m = /coordinator listening on (\S+) \(postgres\)/.exec(err);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited with ${code}: ${err}`));
    });
  });
}

async function sql<R extends pg.QueryResultRow>(text: string): Promise<R[]> {
  const c = new pg.Client({ connectionString: database.url });
  await c.connect();
  try {
    return (await c.query<R>(text)).rows;
  } finally {
    await c.end();
  }
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'deqo-two-'));
  database = await createPgDatabase();
  // Both start at once: their migrations meet on the new database (one waits for the other's lock).
  urls = await Promise.all([
    coordinator('coordinator-1', ['--admin-key-file', join(dir, 'admin.key')]),
    coordinator('coordinator-2'),
  ]);
  adminKey = (await readFile(join(dir, 'admin.key'), 'utf8')).trim();
  const admin = new DeqoClient(urls[0]!, adminKey);
  buyerKey = (await admin.adminCreateAccount('buyer', ['buyer'])).apiKey;
  await admin.adminGrant('buyer', 100, 'test credits');
  // provider-1 and -2 talk to coordinator 1, provider-3 and -4 to coordinator 2.
  for (let i = 1; i <= 4; i++) {
    const { apiKey } = await admin.adminCreateAccount(`provider-${i}`, ['provider']);
    const agentDir = join(dir, `agent-${i}`);
    await mkdir(agentDir, { recursive: true });
    start(
      `agent-${i}`,
      [
        'agent',
        '--coordinator',
        urls[i <= 2 ? 0 : 1]!,
        '--data-dir',
        agentDir,
        '--name',
        `provider-${i}`,
        '--no-idle-policy',
        '--cpus',
        '1',
      ],
      { DEQO_API_KEY: apiKey },
    );
  }
  const buyer = new DeqoClient(urls[1]!, buyerKey);
  const deadline = Date.now() + 30_000;
  while ((await buyer.listProviders()).filter((p) => p.online).length < 4) {
    if (Date.now() > deadline) throw new Error(`agents did not come online; see ${dir}/agent-*.log`);
    await new Promise((r) => setTimeout(r, 200));
  }
});

afterAll(async () => {
  await Promise.all(
    children.map(
      (c) =>
        new Promise<void>((resolve) => {
          if (c.exitCode !== null || c.signalCode !== null) {
            resolve();
            return;
          }
          c.once('exit', () => resolve());
          c.kill('SIGTERM');
          setTimeout(() => c.kill('SIGKILL'), 10_000).unref();
        }),
    ),
  );
  await database?.drop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('two coordinators on one PostgreSQL database', () => {
  it('verifies and settles every job once, whichever coordinator took it and whichever agents ran it', async () => {
    const clients = urls.map((u) => new DeqoClient(u, buyerKey));
    const jobs: Array<{ id: string; via: number; text: string }> = [];
    for (let i = 0; i < 6; i++) {
      const text = `hello from job ${i}`;
      const { jobId } = await clients[i % 2]!.submitJob({
        image: 'deqo/busybox:test',
        command: ['sh', '-c', `echo '${text}' > /outputs/result.txt`],
        resources: { cpus: 1, memoryMb: 64, timeoutSeconds: 60 },
        verification: { replicas: 2, quorum: 2 },
      });
      jobs.push({ id: jobId, via: i % 2, text });
    }
    // Each job is followed through the other coordinator than the one that took it.
    const views = await Promise.all(
      jobs.map((j) => waitForJob(clients[1 - j.via]!, j.id, (v) => settled(v) && v.billing.settled)),
    );
    const agentsUsed = new Set<string>();
    for (const v of views) {
      expect(v.state).toBe('succeeded');
      const valid = v.tasks[0]!.executions.filter((e) => e.state === 'valid');
      expect(valid).toHaveLength(2);
      expect(new Set(valid.map((e) => e.providerId)).size).toBe(2);
      for (const e of valid) agentsUsed.add(e.agentName);
    }
    // Agents of both coordinators ran work (so work was handed across coordinators).
    expect([...agentsUsed].some((n) => n === 'provider-1' || n === 'provider-2')).toBe(true);
    expect([...agentsUsed].some((n) => n === 'provider-3' || n === 'provider-4')).toBe(true);

    // Paid at most once: one payment per valid execution, nothing for the others; one refund per job; one
    // reputation event per settled execution.
    const payments = await sql<{ execution_id: string; n: string }>(
      "SELECT execution_id, count(*) AS n FROM ledger_entries WHERE kind = 'payment' AND account LIKE 'acct:%' GROUP BY execution_id",
    );
    const valid = await sql<{ id: string }>("SELECT id FROM executions WHERE state = 'valid'");
    expect(payments.map((p) => p.execution_id).sort()).toEqual(valid.map((v) => v.id).sort());
    expect(payments.every((p) => Number(p.n) === 1)).toBe(true);
    const refunds = await sql<{ job_id: string; n: string }>(
      "SELECT job_id, count(DISTINCT txn_id) AS n FROM ledger_entries WHERE kind = 'refund' GROUP BY job_id",
    );
    expect(refunds.every((r) => Number(r.n) === 1)).toBe(true);
    const events = await sql<{ n: string }>(
      'SELECT count(*) AS n FROM reputation_events GROUP BY execution_id HAVING count(*) > 1',
    );
    expect(events).toEqual([]);
    for (const url of urls)
      expect(await new DeqoClient(url, adminKey).adminAudit()).toEqual({ sound: true, problems: [] });

    // Outputs: the same bytes from both coordinators (shared blob folder); `deqo results` through the
    // coordinator that did not take the job checks every file against the verified manifest.
    for (const j of jobs) {
      const results = await clients[j.via]!.getResults(j.id);
      const blob = results.tasks[0]!.outputsBlob!;
      const [a, b] = await Promise.all(clients.map((c) => fetchBlob(c, blob)));
      expect(a!.length).toBeGreaterThan(0);
      expect(b!.equals(a!)).toBe(true);
      const out = join(dir, 'results', j.id);
      await exec(
        process.execPath,
        [DEQO_BIN, 'results', j.id, '-o', out, '--coordinator', urls[1 - j.via]!, '--api-key', buyerKey],
        { env: { ...process.env, DEQO_HOME: dir } },
      );
      expect((await readFile(join(out, 'task-0', 'result.txt'), 'utf8')).trim()).toBe(j.text);
    }
  });
});
