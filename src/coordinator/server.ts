/**
 * The coordinator's HTTP API (Fastify): wiring and HTTP only. `buildServer(deps)` returns an app that tests
 * drive with `inject()` or over a real port. Every body is parsed with the protocol's zod schemas; every
 * error is `{error: {code, message, details}}` from the catalogue.
 */
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { DeqoError, errors } from '../core/index.js';
import { MAX_REQUEST_BODY_BYTES } from '../protocol/index.js';
import type { Principal } from '../store/index.js';
import { authenticate } from './auth.js';
import { isClientDisconnect, type RouteDeps, type ServerDeps } from './http.js';
import { DEFAULT_LIVE_OPTIONS, LiveHub } from './live.js';
import { LiveLogs } from './live-logs.js';
import { agentRoutes } from './routes-agents.js';
import { blobRoutes } from './routes-blobs.js';
import { jobRoutes } from './routes-jobs.js';
import { liveRoutes } from './routes-live.js';
import { marketRoutes } from './routes-market.js';
import { FailureLimiter, sourceOf } from './ratelimit.js';
import { setSecurityHeaders } from './security-headers.js';
import { DEFAULT_WEB_ROOT, isWebPath, serveWeb } from './web.js';

/** Routes answered without an API key: health, and the metrics when enabled (aggregate numbers, no ids or names). */
const PUBLIC_ROUTES: ReadonlySet<string> = new Set(['/v1/health', '/metrics']);

/** Builds the app. Does not listen. */
export function buildServer(deps: ServerDeps): FastifyInstance {
  const app: FastifyInstance = Fastify({
    loggerInstance: deps.log as FastifyBaseLogger,
    bodyLimit: MAX_REQUEST_BODY_BYTES,
    ...(deps.trustProxy?.length ? { trustProxy: deps.trustProxy } : {}),
    // Per-request access logs would drown the log in heartbeats; errors are still logged.
    logController: new LogController({ disableRequestLogging: true }),
  });
  app.decorateRequest('principal', null as unknown as Principal);

  const authFailures = new FailureLimiter(deps.engine.limits.authFailures, deps.engine.limits.authWindowMs);
  app.addHook('onRequest', async (req, reply) => {
    setSecurityHeaders(reply.raw);
    const path = req.url.split('?')[0]!;
    // The dashboard's static files are public (they hold no data; the app sends a key on each /v1 call).
    if (PUBLIC_ROUTES.has(path) || isWebPath(req.method, path)) return;
    const source = sourceOf(req.ip);
    const now = deps.engine.now();
    authFailures.check(source, now);
    try {
      req.principal = await authenticate(deps.store, req.headers.authorization);
    } catch (err) {
      if (err instanceof DeqoError && err.code === 'unauthorized') authFailures.fail(source, now);
      throw err;
    }
  });

  app.setErrorHandler((err, req, reply) => {
    if (err instanceof DeqoError) {
      if (err.status >= 500) req.log.error({ err }, 'request failed');
      if (err.retryAfterSec !== undefined) void reply.header('retry-after', String(err.retryAfterSec));
      return reply.status(err.status).send(err.toBody());
    }
    const e = err as { statusCode?: number; code?: string; message: string };
    if (e.statusCode === 413 || e.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      return reply.status(413).send(new DeqoError('payload_too_large', 'request body too large').toBody());
    }
    if (e.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
      return reply
        .status(415)
        .send(
          new DeqoError(
            'unsupported_media_type',
            `unsupported Content-Type; send application/json (or application/octet-stream to /v1/blobs)`,
          ).toBody(),
        );
    }
    if (e.statusCode && e.statusCode >= 400 && e.statusCode < 500) {
      return reply.status(400).send(new DeqoError('validation_failed', `bad request: ${e.message}`).toBody());
    }
    if (isClientDisconnect(err, req)) {
      // The client left (an upload cut off, a closed tab): nothing is wrong here, and nobody reads the answer.
      req.log.info({ code: e.code, method: req.method, url: req.url }, 'client closed the connection mid-request');
      return reply.status(400).send(new DeqoError('validation_failed', 'the connection closed mid-request').toBody());
    }
    req.log.error({ err }, 'unhandled error');
    return reply
      .status(500)
      .send(new DeqoError('internal', 'internal error; the coordinator logged the details').toBody());
  });
  const webRoot = deps.webRoot ?? DEFAULT_WEB_ROOT;
  app.setNotFoundHandler((req, reply) => {
    if (isWebPath(req.method, req.url.split('?')[0]!)) return serveWeb(webRoot, req, reply);
    return reply.status(404).send(errors.notFound('route', `${req.method} ${req.url.split('?')[0]}`).toBody());
  });

  const hub = new LiveHub(deps.store, deps.engine, deps.log, { ...DEFAULT_LIVE_OPTIONS, ...deps.live });
  // Open event streams would keep the server from closing: end them first.
  app.addHook('preClose', async () => {
    hub.close();
  });
  const routeDeps: RouteDeps = { ...deps, hub, liveLogs: new LiveLogs() };

  app.get('/v1/health', async () => ({ ok: true }));
  const metrics = deps.metrics;
  if (metrics) app.get('/metrics', async (_req, reply) => reply.type(metrics.contentType).send(await metrics.scrape()));
  app.register(jobRoutes(routeDeps));
  app.register(agentRoutes(routeDeps));
  app.register(blobRoutes(deps));
  app.register(marketRoutes(deps));
  app.register(liveRoutes(routeDeps));
  return app;
}
