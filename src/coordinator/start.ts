/** Starting a coordinator: store + engine + HTTP server on a port. */
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import pino, { type Logger } from 'pino';
import { DEFAULT_ENGINE_CONFIG, DEFAULT_MARKET_POLICY, Engine, type EngineConfig } from '../engine/index.js';
import {
  checkAccountLimits,
  checkCredibilityConfig,
  DEFAULT_ACCOUNT_LIMITS,
  DEFAULT_CREDIBILITY,
  DEFAULT_QUOTA,
  type AccountLimits,
  type CredibilityConfig,
  type QuotaConfig,
} from '../core/index.js';
import { openSqliteStore, openStore, type Store } from '../store/index.js';
import { BlobStore } from './blobs.js';
import { createMetrics } from './metrics.js';
import { buildServer } from './server.js';

/** Coordinator settings. Sizes in bytes. */
export interface CoordinatorConfig {
  /** Folder for the SQLite database (`deqo.db`) and blobs (`blobs/`). */
  dataDir: string;
  /** `postgres://…` selects PostgreSQL (shared by several coordinators); absent: SQLite in dataDir. */
  databaseUrl?: string;
  /** Blob folder (default `<dataDir>/blobs`). Coordinators sharing a database must share this folder too. */
  blobDir?: string;
  /** Reverse proxies trusted to name the client in X-Forwarded-For (addresses or CIDR ranges); none by default. */
  trustProxy?: string[];
  /** Listen address; 127.0.0.1 by default (not reachable from other machines). */
  host: string;
  /** TCP port; 0 picks a free one. */
  port: number;
  /** Largest blob accepted, bytes. */
  maxBlobBytes: number;
  /** Platform fee taken from each payment, basis points (1/100 %), 0–10,000. Default 0. */
  feeBps: number;
  /** Reputation daily quota: a newcomer's, and the cap it doubles up to (executions per 24 h). */
  quota: QuotaConfig;
  /**
   * The credibility model (core/credibility.ts): the assumed share of cheaters f, the confirmations that end
   * probation, the spot-check rate q, what an operator's vouch counts as. Unset fields keep DEFAULT_CREDIBILITY.
   */
  credibility?: Partial<CredibilityConfig>;
  /**
   * Per-account limits (core/limits.ts): failed authentications per address, open event streams, queued tasks,
   * stored blob bytes, blob lifetimes. Unset fields keep DEFAULT_ACCOUNT_LIMITS.
   */
  limits?: Partial<AccountLimits>;
  engine: EngineConfig;
  /**
   * Serve Prometheus metrics at GET /metrics, without an API key (aggregate numbers only). Off by default:
   * turn it on where only the monitoring system can reach the port, or firewall the path.
   */
  metrics?: boolean;
}

export const DEFAULT_COORDINATOR_CONFIG: Omit<CoordinatorConfig, 'dataDir'> = {
  host: '127.0.0.1',
  port: 8470,
  maxBlobBytes: 2 * 1024 ** 3,
  feeBps: 0,
  quota: DEFAULT_QUOTA,
  engine: DEFAULT_ENGINE_CONFIG,
};

/** A running coordinator. */
export interface RunningCoordinator {
  url: string;
  store: Store;
  engine: Engine;
  app: FastifyInstance;
  close(): Promise<void>;
}

/**
 * Opens the store, starts the engine loop and listens. Throws if the port is taken, feeBps is out of range or the
 * credibility settings or limits are (RangeError naming the field).
 */
export async function startCoordinator(
  config: CoordinatorConfig,
  log: Logger = pino({ level: 'warn' }),
): Promise<RunningCoordinator> {
  if (!Number.isInteger(config.feeBps) || config.feeBps < 0 || config.feeBps > 10_000) {
    throw new RangeError(`feeBps must be a whole number of basis points from 0 to 10000, got ${config.feeBps}`);
  }
  const credibility = checkCredibilityConfig({ ...DEFAULT_CREDIBILITY, ...config.credibility });
  const limits = checkAccountLimits({ ...DEFAULT_ACCOUNT_LIMITS, ...config.limits });
  const store = config.databaseUrl
    ? await openStore(config.databaseUrl)
    : await openSqliteStore(join(config.dataDir, 'deqo.db'));
  const blobs = new BlobStore(config.blobDir ?? join(config.dataDir, 'blobs'), config.maxBlobBytes);
  // The engine reads the same blob folder the routes write: it checks each reported outputs tarball there.
  const engine = new Engine(store, {
    blobs,
    config: config.engine,
    policy: {
      ...DEFAULT_MARKET_POLICY,
      feeBps: config.feeBps,
      quota: config.quota,
      credibility,
    },
    limits,
    log,
  });
  await engine.recover();
  const metrics = config.metrics ? createMetrics(store, engine) : undefined;
  const app = buildServer({ store, engine, blobs, log, metrics, trustProxy: config.trustProxy });
  await app.listen({ host: config.host, port: config.port });
  engine.start();
  const addr = app.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : config.port;
  let closed = false;
  return {
    url: `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`,
    store,
    engine,
    app,
    async close() {
      if (closed) return;
      closed = true;
      metrics?.close();
      await engine.stop();
      await app.close();
      await store.close();
    },
  };
}
