/**
 * Coordinators for the benchmarks: `deqo coordinator` as a child process (so its CPU and memory are measured
 * apart from the load generator, and it can be profiled with `--cpu-prof`), or in this process (tests).
 * Both are seeded the same way: an admin key, then buyer and provider accounts through the admin API.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { openSync, closeSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import pino from 'pino';
import { DeqoClient } from '../client/index.js';
import { DEQO_BIN } from '../cli/index.js';
import { DEFAULT_COORDINATOR_CONFIG, startCoordinator } from '../coordinator/index.js';

/** A coordinator the benchmark talks to over HTTP. `pid` is null when it runs in this process. */
export interface BenchCoordinator {
  url: string;
  pid: number | null;
  adminKey: string;
  /** Stops it (SIGTERM for a process, then waits for its exit so a CPU profile is written). */
  stop(): Promise<void>;
}

/** Options of a coordinator process. */
export interface CoordinatorProcessOptions {
  /** Data folder (SQLite database and, without blobDir, blobs). */
  dataDir: string;
  /** postgres://… for PostgreSQL; absent: SQLite in dataDir. */
  databaseUrl?: string;
  blobDir?: string;
  /** File the admin key is written to on first start (a second coordinator reads the same file). */
  adminKeyFile: string;
  /** Write a V8 CPU profile (`--cpu-prof`) into this folder when the process exits. */
  cpuProfDir?: string;
  /** pino log level of the coordinator (default `info`, as deployed). */
  logLevel?: string;
  /** Serve Prometheus metrics at GET /metrics (`--metrics`). */
  metrics?: boolean;
}

/** How long a coordinator process may take to listen, ms. */
const START_TIMEOUT_MS = 30_000;

/**
 * Starts `node bin/deqo.js coordinator --port 0` (dist must be built) and resolves once it listens. Its log
 * goes to `<dataDir>/coordinator.log`. Throws Error with the tail of its stderr when it exits or stays silent.
 */
export async function startCoordinatorProcess(o: CoordinatorProcessOptions): Promise<BenchCoordinator> {
  await mkdir(o.dataDir, { recursive: true });
  const logFd = openSync(join(o.dataDir, 'coordinator.log'), 'a');
  const nodeArgs = o.cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${o.cpuProfDir}`] : [];
  const args = [
    ...nodeArgs,
    DEQO_BIN,
    'coordinator',
    '--data-dir',
    o.dataDir,
    '--port',
    '0',
    '--admin-key-file',
    o.adminKeyFile,
    '--log-level',
    o.logLevel ?? 'info',
    ...(o.databaseUrl ? ['--database-url', o.databaseUrl] : []),
    ...(o.blobDir ? ['--blob-dir', o.blobDir] : []),
    ...(o.metrics ? ['--metrics'] : []),
  ];
  const env = { ...process.env };
  delete env.DEQO_DATABASE_URL;
  const child = spawn(process.execPath, args, { env, stdio: ['ignore', logFd, 'pipe'] });
  closeSync(logFd);
  let stderr = '';
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`coordinator did not start within ${START_TIMEOUT_MS / 1000} s: ${stderr.trim()}`));
    }, START_TIMEOUT_MS);
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
      const m = /coordinator listening on (\S+)/.exec(stderr);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      // The first lines say what went wrong (the rest is a stack trace).
      reject(
        new Error(
          `coordinator exited during start-up (${signal ?? `exit ${code}`}): ${stderr.trim().split('\n').slice(0, 3).join('\n')}`,
        ),
      );
    });
  });
  child.stderr!.resume();
  const adminKey = (await readFile(o.adminKeyFile, 'utf8')).trim();
  return { url, pid: child.pid ?? null, adminKey, stop: () => stopChild(child) };
}

function stopChild(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) {
      resolve();
      return;
    }
    const kill = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.once('exit', () => {
      clearTimeout(kill);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/** Starts a SQLite coordinator in this process (no child, no build needed: unit tests). Logs warnings only. */
export async function startInProcessCoordinator(dataDir: string): Promise<BenchCoordinator> {
  const coord = await startCoordinator({ ...DEFAULT_COORDINATOR_CONFIG, dataDir, port: 0 }, pino({ level: 'warn' }));
  const { apiKey } = await coord.engine.accounts.createAccount('admin', ['admin']);
  return { url: coord.url, pid: null, adminKey: apiKey, stop: () => coord.close() };
}

/** Keys of the accounts a benchmark uses. */
export interface BenchAccounts {
  buyerKeys: string[];
  providerKeys: string[];
}

/**
 * Creates `buyers` buyer accounts (each granted `credits`) and `providers` provider accounts through the admin
 * API of the coordinator at `url`. Names are prefixed so several runs against one database cannot collide.
 */
export async function createBenchAccounts(
  url: string,
  adminKey: string,
  buyers: number,
  providers: number,
  credits: number,
): Promise<BenchAccounts> {
  const admin = new DeqoClient(url, adminKey);
  const tag = Math.random().toString(36).slice(2, 8);
  const buyerKeys: string[] = [];
  for (let i = 0; i < buyers; i++) {
    const a = await admin.adminCreateAccount(`bench-${tag}-buyer-${i + 1}`, ['buyer']);
    await admin.adminGrant(a.accountId, credits, 'benchmark credits');
    buyerKeys.push(a.apiKey);
  }
  const providerKeys: string[] = [];
  for (let i = 0; i < providers; i++)
    providerKeys.push((await admin.adminCreateAccount(`bench-${tag}-provider-${i + 1}`, ['provider'])).apiKey);
  return { buyerKeys, providerKeys };
}
