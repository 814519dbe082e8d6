/**
 * A throw-away PostgreSQL database for a benchmark run: `deqo_bench_<random>` created on a server with the
 * `psql` client (no database driver is needed in the benchmark itself) and dropped afterwards.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Default server of the benchmarks (the superuser on this machine, no password). */
export const DEFAULT_POSTGRES_URL = 'postgres://postgres@127.0.0.1:5432';

/** A created database: its URL and how to drop it. */
export interface BenchDatabase {
  url: string;
  name: string;
  drop(): Promise<void>;
}

async function psql(serverUrl: string, sql: string): Promise<void> {
  await run('psql', [`${serverUrl.replace(/\/+$/, '')}/postgres`, '-v', 'ON_ERROR_STOP=1', '-qtAc', sql], {
    timeout: 30_000,
  });
}

/**
 * Creates a fresh database on the server at `serverUrl` (no database path: `postgres://user@host:port`).
 * Throws Error saying why when `psql` is missing or the server refuses.
 */
export async function createBenchDatabase(serverUrl = DEFAULT_POSTGRES_URL): Promise<BenchDatabase> {
  const name = `deqo_bench_${randomBytes(5).toString('hex')}`;
  try {
    await psql(serverUrl, `CREATE DATABASE ${name}`);
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === 'ENOENT') throw new Error('the psql client is not installed (apt-get install postgresql-client)');
    throw new Error(`cannot create a database on ${serverUrl}: ${(e.stderr ?? e.message).trim()}`);
  }
  return {
    url: `${serverUrl.replace(/\/+$/, '')}/${name}`,
    name,
    drop: () => psql(serverUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`),
  };
}
