/**
 * `npm run bench -- [dispatch|container|datapath|history|queue|agents …] [options]`: runs the benchmarks (all by default), prints one
 * JSON object per benchmark as it ends and a combined JSON document at the end, and writes that document to
 * bench-results.json (and to --json-out). Targets are reported, never enforced: the exit code is non-zero only
 * when a benchmark could not run to its end. docs/benchmarks.md describes each benchmark and its figures.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { cpus, loadavg, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { runAgents } from './agents.js';
import { runContainer } from './container.js';
import { runDatapath } from './datapath.js';
import { runDispatch } from './dispatch.js';
import { runHistory, summarizeHistory } from './history.js';
import { summarizeProfiles } from './profile.js';
import { runQueue } from './queue.js';

const USAGE = `usage: npm run bench -- [dispatch|container|datapath|history|queue|agents ...] [options]
  --json-out <file>       also write the combined results here (always: bench-results.json)
dispatch:  --jobs <n> (default 3000)  --agents <n> (100)  --concurrency <n> (64)  --warmup <n> (300)
           --database sqlite|postgres|both (both)  --postgres-url <url> (postgres://postgres@127.0.0.1:5432)
           --coordinators <n,n,…> PostgreSQL: one run per count of coordinator processes sharing the database (2)
           --rate <jobs/s>        offer this load (open loop) instead of submitting as fast as possible
           --profile <dir>        write the coordinators' CPU profiles (--cpu-prof) here and summarize them
container: --runs <k> (30)  --container-warmup <k> (3)
datapath:  --size-mib <n> (1024)
history:   --history-sizes <n,n,…> (0,10000,100000)  --seed-jobs <n> (100)  --samples <n> (30)
queue:     --queue-sizes <n,n,…> (100,10000,100000)
agents:    --agent-counts <n,n,…> (100,1000)  --idle-seconds <s> (10)  --profile <dir> (as for dispatch)`;

const BENCHMARKS = ['dispatch', 'container', 'datapath', 'history', 'queue', 'agents'] as const;
type Name = (typeof BENCHMARKS)[number];

function int(v: string | undefined, d: number, name: string): number {
  if (v === undefined) return d;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} must be a whole number, got ${v}`);
  return n;
}

async function main(): Promise<number> {
  const { values: v, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      'json-out': { type: 'string' },
      jobs: { type: 'string' },
      agents: { type: 'string' },
      concurrency: { type: 'string' },
      warmup: { type: 'string' },
      rate: { type: 'string' },
      database: { type: 'string' },
      'postgres-url': { type: 'string' },
      coordinators: { type: 'string' },
      profile: { type: 'string' },
      runs: { type: 'string' },
      'container-warmup': { type: 'string' },
      'size-mib': { type: 'string' },
      'history-sizes': { type: 'string' },
      'queue-sizes': { type: 'string' },
      'agent-counts': { type: 'string' },
      'idle-seconds': { type: 'string' },
      'seed-jobs': { type: 'string' },
      samples: { type: 'string' },
      help: { type: 'boolean' },
    },
  });
  if (v.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const bad = positionals.find((p) => !(BENCHMARKS as readonly string[]).includes(p));
  if (bad) throw new Error(`unknown benchmark ${bad}\n${USAGE}`);
  const chosen: Name[] = positionals.length > 0 ? (positionals as Name[]) : [...BENCHMARKS];
  const db = v.database ?? 'both';
  const databases =
    db === 'both' ? (['sqlite', 'postgres'] as const) : db === 'sqlite' || db === 'postgres' ? ([db] as const) : null;
  if (!databases) throw new Error(`--database must be sqlite, postgres or both, got ${v.database}`);

  const doc = {
    startedAt: new Date().toISOString(),
    node: process.version,
    machine: {
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model ?? '?',
      memoryMiB: Math.round(totalmem() / 2 ** 20),
      loadAverage: loadavg().map((x) => Math.round(x * 100) / 100),
    },
    results: [] as unknown[],
  };
  let failed = false;
  const record = (r: unknown) => {
    doc.results.push(r);
    process.stdout.write(`${JSON.stringify(r)}\n`);
  };
  const attempt = async (name: string, fn: () => Promise<unknown>) => {
    try {
      record(await fn());
    } catch (err) {
      failed = true;
      record({ benchmark: name, error: (err as Error).stack ?? String(err) });
    }
  };

  for (const name of chosen) {
    if (name === 'dispatch') {
      const counts = (v.coordinators ?? '2').split(',').map((x) => Math.max(1, int(x.trim(), 2, 'coordinators')));
      for (const database of databases) {
        for (const coordinators of database === 'postgres' ? counts : [1]) {
          await attempt('dispatch', async () => {
            const profDir = v.profile ? resolve(v.profile, `dispatch-${database}-${Date.now()}`) : undefined;
            if (profDir) await mkdir(profDir, { recursive: true });
            const r = await runDispatch({
              database,
              coordinators,
              jobs: int(v.jobs, 3_000, 'jobs'),
              agents: int(v.agents, 100, 'agents'),
              concurrency: int(v.concurrency, 64, 'concurrency'),
              warmup: int(v.warmup, 300, 'warmup'),
              rate: v.rate === undefined ? undefined : int(v.rate, 0, 'rate') || undefined,
              postgresUrl: v['postgres-url'],
              cpuProfDir: profDir,
            });
            return profDir && !('skipped' in r)
              ? { ...r, profile: { dir: profDir, ...(await summarizeProfiles(profDir, 15)) } }
              : r;
          });
        }
      }
    } else if (name === 'container') {
      await attempt('container', () =>
        runContainer({ runs: int(v.runs, 30, 'runs'), warmup: int(v['container-warmup'], 3, 'container-warmup') }),
      );
    } else if (name === 'history') {
      await attempt('history', async () => {
        const sizes = (v['history-sizes'] ?? '0,10000,100000').split(',').map((x) => int(x.trim(), 0, 'history-sizes'));
        return summarizeHistory(
          await runHistory({
            sizes: sizes.sort((a, b) => a - b),
            seedJobs: Math.max(1, int(v['seed-jobs'], 100, 'seed-jobs')),
            samples: Math.max(1, int(v.samples, 30, 'samples')),
          }),
        );
      });
    } else if (name === 'queue') {
      await attempt('queue', () => {
        const sizes = (v['queue-sizes'] ?? '100,10000,100000').split(',').map((x) => int(x.trim(), 0, 'queue-sizes'));
        return runQueue({ sizes: sizes.sort((a, b) => a - b) });
      });
    } else if (name === 'agents') {
      await attempt('agents', async () => {
        const counts = (v['agent-counts'] ?? '100,1000').split(',').map((x) => int(x.trim(), 0, 'agent-counts'));
        const profDir = v.profile ? resolve(v.profile, `agents-${Date.now()}`) : undefined;
        if (profDir) await mkdir(profDir, { recursive: true });
        const r = await runAgents({
          counts: counts.sort((a, b) => a - b),
          idleSeconds: Math.max(1, int(v['idle-seconds'], 10, 'idle-seconds')),
          cpuProfDir: profDir,
        });
        return profDir ? { ...r, profile: { dir: profDir, ...(await summarizeProfiles(profDir, 15)) } } : r;
      });
    } else {
      await attempt('datapath', () => runDatapath({ sizeMiB: int(v['size-mib'], 1024, 'size-mib') }));
    }
  }
  const text = `${JSON.stringify(doc, null, 2)}\n`;
  process.stdout.write(text);
  await writeFile(join(process.cwd(), 'bench-results.json'), text);
  if (v['json-out']) await writeFile(v['json-out'], text);
  return failed ? 1 : 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: Error) => {
    process.stderr.write(`bench: ${err.message}\n`);
    process.exitCode = 2;
  },
);
