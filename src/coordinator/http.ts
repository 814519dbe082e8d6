/**
 * What every route plugin shares: the app's dependencies, the request's principal, and parsing of bodies and
 * path parameters into DeqoError validation_failed (naming each bad field). Routes import this, never server.ts.
 */
import type { FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { z } from 'zod';
import { DeqoError } from '../core/index.js';
import type { Engine } from '../engine/index.js';
import { fieldIssues, IdSchema } from '../protocol/index.js';
import type { Principal, Store } from '../store/index.js';
import type { BlobStore } from './blobs.js';
import type { LiveHub, LiveHubOptions } from './live.js';
import type { LiveLogs } from './live-logs.js';
import type { CoordinatorMetrics } from './metrics.js';

/**
 * What the app serves from. With `metrics`, GET /metrics serves them (no API key: firewall it, see docs/observability.md).
 * `live` overrides the event stream's timings (tests). `webRoot`: the dashboard build served at `/` (default
 * dist/web; see web.ts).
 */
export interface ServerDeps {
  store: Store;
  engine: Engine;
  blobs: BlobStore;
  log: Logger;
  metrics?: CoordinatorMetrics;
  live?: Partial<LiveHubOptions>;
  webRoot?: string;
  /**
   * Reverse proxies whose X-Forwarded-For names the client (addresses or CIDR ranges, Fastify `trustProxy`): the
   * failed-authentication limit then counts per client, not per proxy. None by default (the socket's address counts).
   */
  trustProxy?: string[];
}

/** What route plugins get: the deps plus the app's live hub (event stream) and live output buffer. */
export interface RouteDeps extends ServerDeps {
  hub: LiveHub;
  liveLogs: LiveLogs;
}

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal;
  }
}

/**
 * Parses `data` with `schema`; throws DeqoError validation_failed naming each bad field. `root` names the
 * value itself (for a path parameter or header).
 */
export function parseOr400<S extends z.ZodType>(schema: S, data: unknown, where: string, root?: string): z.infer<S> {
  const r = schema.safeParse(data);
  if (!r.success) {
    const issues = fieldIssues(r.error, root);
    const first = issues[0]!;
    throw new DeqoError(
      'validation_failed',
      `invalid ${where}: ${first.path}: ${first.message}${issues.length > 1 ? ` (and ${issues.length - 1} more)` : ''}`,
      issues,
    );
  }
  return r.data;
}

/** Error codes of a connection the client closed or reset, as Node's HTTP server and streams raise them. */
const DISCONNECT_CODES: ReadonlySet<string> = new Set([
  'ECONNRESET', // the request body stream: "aborted"
  'ECONNABORTED',
  'EPIPE',
  'ERR_STREAM_PREMATURE_CLOSE',
  'ERR_STREAM_DESTROYED',
]);

/**
 * Whether `err` is the client going away (an aborted upload, a closed connection), not a fault of ours: a
 * connection error code while the request's socket is already closed. Any other error, even one raised after the
 * client left, is not.
 */
export function isClientDisconnect(err: unknown, req: FastifyRequest): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && DISCONNECT_CODES.has(code) && req.raw.socket?.destroyed === true;
}

/** Route param `:id` parsed as an id. */
export function idParam(req: FastifyRequest, name = 'id'): string {
  return parseOr400(IdSchema, (req.params as Record<string, unknown>)[name], `path parameter ${name}`, name);
}
