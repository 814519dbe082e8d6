/**
 * Live routes for dashboards: the event stream (`GET /v1/events`, Server-Sent Events, live.ts) and the chart
 * series (`GET /v1/network/stats`, `GET /v1/provider/earnings`).
 */
import type { FastifyPluginAsync } from 'fastify';
import { fromMicro, quotaExceeded } from '../core/index.js';
import {
  EarningsQuerySchema,
  EventsQuerySchema,
  NetworkStatsQuerySchema,
  type Earnings,
  type NetworkStats,
} from '../protocol/index.js';
import { requireScope } from './auth.js';
import { parseOr400, type RouteDeps } from './http.js';

/** Decided tasks listed by `GET /v1/network/stats`. */
const RECENT_VERIFICATIONS = 20;

/** A slow reader whose unsent events pass this many bytes is disconnected (it reconnects and reloads). */
const MAX_BUFFERED_BYTES = 4 * 1024 * 1024;

/** Seconds an account at its stream limit is told to wait: a closed tab's stream ends within a keep-alive or two. */
const STREAMS_RETRY_AFTER_SEC = 30;

export function liveRoutes({ hub, store, engine }: RouteDeps): FastifyPluginAsync {
  return async (app) => {
    // Any signed-in account: aggregate numbers; a decided task names its job only to the job's buyer.
    app.get('/v1/network/stats', async (req): Promise<NetworkStats> => {
      const q = parseOr400(NetworkStatsQuerySchema, req.query, 'query');
      const now = engine.now();
      const n = await store.live.network(now - engine.config.agentTtlMs);
      const recent = await store.live.recentlyDecided(RECENT_VERIFICATIONS);
      return {
        points: await store.live.minutes(now, q.minutes),
        queueDepth: n.queueDepth,
        agentsOnline: n.agentsOnline,
        recentVerifications: recent.map(({ buyerId, jobId, ...r }) => ({
          ...r,
          jobId: buyerId === req.principal.accountId ? jobId : null,
        })),
      };
    });

    app.get('/v1/provider/earnings', async (req): Promise<Earnings> => {
      requireScope(req.principal, 'provider');
      const q = parseOr400(EarningsQuerySchema, req.query, 'query');
      const points = await store.live.earnings(req.principal.accountId, engine.now(), q.hours);
      return {
        points: points.map((p) => ({ t: p.t, credits: fromMicro(p.micro) })),
        total: fromMicro(points.reduce((sum, p) => sum + p.micro, 0)),
      };
    });

    // Open event streams per account, on this coordinator (limits.streams).
    const open = new Map<string, number>();
    app.get('/v1/events', async (req, reply) => {
      const q = parseOr400(EventsQuerySchema, req.query, 'query');
      const accountId = req.principal.accountId;
      const held = open.get(accountId) ?? 0;
      const max = engine.limits.streams;
      if (held >= max) {
        throw quotaExceeded(
          'streams',
          max,
          held,
          1,
          `your account has ${held} event streams open on this coordinator, the most allowed; close a dashboard tab or \`deqo\` follower first`,
          STREAMS_RETRY_AFTER_SEC,
        );
      }
      open.set(accountId, held + 1);
      let released = false;
      const release = (): void => {
        if (released) return;
        released = true;
        const n = (open.get(accountId) ?? 1) - 1;
        if (n > 0) open.set(accountId, n);
        else open.delete(accountId);
      };
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache, no-transform',
        connection: 'keep-alive',
        'x-accel-buffering': 'no',
      });
      res.write(': connected\n\n');
      let unsubscribe = (): void => {};
      const write = (text: string): void => {
        if (res.writableEnded) return;
        if (res.writableLength > MAX_BUFFERED_BYTES) {
          unsubscribe();
          res.end();
          return;
        }
        res.write(text);
      };
      unsubscribe = hub.subscribe({
        accountId,
        scope: req.principal.scope,
        ...(q.jobId ? { jobId: q.jobId } : {}),
        send: (e) => write(`event: ${e.event}\ndata: ${JSON.stringify(e.data)}\n\n`),
        comment: (text) => write(`: ${text}\n\n`),
        end: () => {
          if (!res.writableEnded) res.end();
        },
      });
      res.on('close', () => {
        unsubscribe();
        release();
      });
      return reply;
    });
  };
}
