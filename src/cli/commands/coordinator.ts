/**
 * `deqo coordinator`: run a coordinator on its own (no agents), for a real deployment or several coordinators
 * sharing one PostgreSQL. Logs are pino JSON lines on stdout.
 */
import { Command } from 'commander';
import { access, mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { DeqoError } from '../../core/index.js';
import type { EngineConfig, RunningCoordinator } from '../../coordinator/index.js';
import { action, type CliContext } from '../command.js';
import { collect, parseBytes, parseDurationMs, parseFraction, parseIntFlag } from './units.js';

interface Opts {
  dataDir?: string;
  host: string;
  port: number;
  trustProxy?: string[];
  databaseUrl?: string;
  blobDir?: string;
  platformFee?: number;
  adminKeyFile?: string;
  logLevel: string;
  metrics?: boolean;
  heartbeatInterval?: number;
  leaseTtl?: number;
  agentTtl?: number;
  claimTimeout?: number;
  tick?: number;
  restartGrace?: number;
  retryBackoff?: number;
  retryBackoffMax?: number;
  deadlineGrace?: number;
  spotCheckRate?: number;
  saboteurFraction?: number;
  establishedAfter?: number;
  authFailures?: number;
  authWindow?: number;
  maxStreams?: number;
  maxQueuedTasks?: number;
  blobQuota?: number;
  blobTtl?: number;
  blobRetention?: number;
  blobSweep?: number;
}

export function coordinatorCommand(ctx: CliContext): Command {
  return new Command('coordinator')
    .description('run a coordinator (API, scheduler, verifier, ledger) without agents')
    .option('--data-dir <dir>', 'folder for the SQLite database and blobs [default $DEQO_HOME/coordinator]')
    .option('--host <addr>', 'listen address [default 127.0.0.1]', '127.0.0.1')
    .option('--port <port>', 'TCP port; 0 picks a free one [default 8470]', (v) => Number.parseInt(v, 10), 8470)
    .option(
      '--trust-proxy <addr>',
      'a reverse proxy (address or CIDR range) whose X-Forwarded-For names the client, so limits count per client; repeatable',
      collect,
    )
    .option(
      '--database-url <url>',
      'postgres://… selects PostgreSQL (several coordinators may share it) [env DEQO_DATABASE_URL; default SQLite in --data-dir]',
    )
    .option(
      '--blob-dir <dir>',
      'blob folder; coordinators sharing a database must share it too [default <data-dir>/blobs]',
    )
    .option('--platform-fee <bps>', 'platform fee on payments, basis points (250 = 2.5 %) [default 0]', (v) =>
      Number.parseInt(v, 10),
    )
    .option('--admin-key-file <file>', 'on first start, create the "admin" account and write its API key here (0600)')
    .option('--log-level <level>', 'pino log level: trace, debug, info, warn, error [default info]', 'info')
    .option(
      '--metrics',
      'serve Prometheus metrics at GET /metrics, without an API key: firewall the path (docs/observability.md)',
    )
    .option('--heartbeat-interval <duration>', 'how often agents heartbeat, e.g. 5s [default 5s]', parseDurationMs)
    .option(
      '--lease-ttl <duration>',
      'a lease lasts this long after each renewal (3 missed heartbeats) [default 15s]',
      parseDurationMs,
    )
    .option(
      '--agent-ttl <duration>',
      'an agent silent this long is suspect: no new work [default 15s]',
      parseDurationMs,
    )
    .option(
      '--claim-timeout <duration>',
      'an assignment not claimed within this is taken back [default 30s]',
      parseDurationMs,
    )
    .option('--tick <duration>', 'period of the scheduler and reaper loop [default 1s]', parseDurationMs)
    .option(
      '--restart-grace <duration>',
      'after start, running leases get this long for their agents to reconnect [default 1m]',
      parseDurationMs,
    )
    .option(
      '--retry-backoff <duration>',
      'first wait before a task that lost an execution is rescheduled; doubles per retry [default 2s]',
      parseDurationMs,
    )
    .option('--retry-backoff-max <duration>', 'longest wait before a retry [default 1m]', parseDurationMs)
    .option(
      '--deadline-grace <duration>',
      "past an execution's time limit, how long its agent may still upload and report before the lease stops " +
        'renewing (a provider that holds work without reporting loses it then) [default 10m]',
      parseDurationMs,
    )
    .option(
      '--spot-check-rate <fraction>',
      'share of placements that are spot-checks (replays of known answers) beside real work [default 0.05]',
      parseFraction,
    )
    .option(
      '--saboteur-fraction <fraction>',
      'assumed upper bound on the share of cheating providers, for credibility (docs/verification.md) [default 0.2]',
      parseFraction,
    )
    .option(
      '--established-after <n>',
      "confirmed results in a row that end a new provider's probation [default 10]",
      parseIntFlag,
    )
    .option(
      '--auth-failures <n>',
      'failed authentications one address (IPv6: one /64) may make per --auth-window before 429 [default 20]',
      parseIntFlag,
    )
    .option('--auth-window <duration>', 'sliding window of --auth-failures [default 1m]', parseDurationMs)
    .option('--max-streams <n>', 'event streams (GET /v1/events) one account may hold open [default 20]', parseIntFlag)
    .option(
      '--max-queued-tasks <n>',
      'tasks one buyer may have queued or running across its jobs; a submission past it gets 429 [default 100000]',
      parseIntFlag,
    )
    .option('--blob-quota <size>', 'bytes of blobs one account may keep stored, e.g. 20g [default 20g]', parseBytes)
    .option(
      '--blob-ttl <duration>',
      'a blob no job uses is deleted this long after its last upload or use [default 24h]',
      parseDurationMs,
    )
    .option(
      '--blob-retention <duration>',
      "a job's inputs, logs and outputs are kept this long after the job ended [default 168h]",
      parseDurationMs,
    )
    .option('--blob-sweep <duration>', 'how often expired blobs are deleted [default 10m]', parseDurationMs)
    .addHelpText(
      'after',
      `
Examples:
  deqo coordinator --admin-key-file ~/.deqo/admin.key
  DEQO_DATABASE_URL=postgres://127.0.0.1/deqo deqo coordinator --port 8470 --blob-dir /shared/blobs
  DEQO_DATABASE_URL=postgres://127.0.0.1/deqo deqo coordinator --port 8471 --blob-dir /shared/blobs --metrics
Durations take ms, s, m or h (a bare number is milliseconds). SIGINT/SIGTERM stop it cleanly; a crash loses
nothing (every change is committed before it is acknowledged).`,
    )
    .action(
      action(async (o: Opts) => {
        // Loaded when the coordinator runs, not for `deqo --help` or other commands (server and database drivers).
        const [{ DEFAULT_COORDINATOR_CONFIG, DEFAULT_ENGINE_CONFIG, startCoordinator }, { pino }] = await Promise.all([
          import('../../coordinator/index.js'),
          import('pino'),
        ]);
        const dataDir = o.dataDir ?? join(ctx.env.home, 'coordinator');
        const pick = (v: number | undefined, d: number) => v ?? d;
        const d = DEFAULT_ENGINE_CONFIG;
        const engine: EngineConfig = {
          ...d,
          heartbeatIntervalMs: pick(o.heartbeatInterval, d.heartbeatIntervalMs),
          leaseTtlMs: pick(o.leaseTtl, d.leaseTtlMs),
          agentTtlMs: pick(o.agentTtl, d.agentTtlMs),
          claimTimeoutMs: pick(o.claimTimeout, d.claimTimeoutMs),
          tickMs: pick(o.tick, d.tickMs),
          restartGraceMs: pick(o.restartGrace, d.restartGraceMs),
          retryBackoffMs: pick(o.retryBackoff, d.retryBackoffMs),
          retryBackoffMaxMs: pick(o.retryBackoffMax, d.retryBackoffMaxMs),
          deadlineGraceMs: pick(o.deadlineGrace, d.deadlineGraceMs),
        };
        const log = pino({ level: o.logLevel, base: { svc: 'coordinator' } });
        const coord = await startCoordinator(
          {
            ...DEFAULT_COORDINATOR_CONFIG,
            dataDir,
            host: o.host,
            port: o.port,
            trustProxy: o.trustProxy,
            databaseUrl: o.databaseUrl ?? ctx.env.databaseUrl,
            blobDir: o.blobDir,
            feeBps: o.platformFee ?? DEFAULT_COORDINATOR_CONFIG.feeBps,
            engine,
            credibility: {
              ...(o.spotCheckRate !== undefined && { spotCheckRate: o.spotCheckRate }),
              ...(o.saboteurFraction !== undefined && { saboteurFraction: o.saboteurFraction }),
              ...(o.establishedAfter !== undefined && { establishedAfter: o.establishedAfter }),
            },
            limits: {
              ...(o.authFailures !== undefined && { authFailures: o.authFailures }),
              ...(o.authWindow !== undefined && { authWindowMs: o.authWindow }),
              ...(o.maxStreams !== undefined && { streams: o.maxStreams }),
              ...(o.maxQueuedTasks !== undefined && { queuedTasks: o.maxQueuedTasks }),
              ...(o.blobQuota !== undefined && { blobBytes: o.blobQuota }),
              ...(o.blobTtl !== undefined && { unreferencedBlobTtlMs: o.blobTtl }),
              ...(o.blobRetention !== undefined && { blobRetentionMs: o.blobRetention }),
              ...(o.blobSweep !== undefined && { blobSweepMs: o.blobSweep }),
            },
            metrics: o.metrics ?? false,
          },
          log,
        );
        if (o.adminKeyFile) await ensureAdmin(coord.engine, o.adminKeyFile);
        log.info(
          {
            url: coord.url,
            database: coord.store.capabilities.dialect,
            metrics: o.metrics ? `${coord.url}/metrics` : null,
          },
          'coordinator listening',
        );
        process.stderr.write(`coordinator listening on ${coord.url} (${coord.store.capabilities.dialect})\n`);
        await new Promise<void>((resolve) => {
          const stop = () => {
            void coord.close().then(resolve);
          };
          process.once('SIGINT', stop);
          process.once('SIGTERM', stop);
        });
      }),
    );
}

/** Creates the `admin` account with a key written to `file` (0600), unless the file or the account exists. */
async function ensureAdmin(engine: RunningCoordinator['engine'], file: string): Promise<void> {
  if (
    await access(file).then(
      () => true,
      () => false,
    )
  )
    return;
  let apiKey: string;
  try {
    ({ apiKey } = await engine.accounts.createAccount('admin', ['admin']));
  } catch (err) {
    if (err instanceof DeqoError && err.code === 'conflict') return; // the account exists; its key is elsewhere
    throw err;
  }
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, `${apiKey}\n`, { mode: 0o600 });
}
