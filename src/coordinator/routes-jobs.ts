/** Buyer routes: submit, list, view, results, cancel, logs. */
import type { FastifyPluginAsync } from 'fastify';
import { errors, fromMicro } from '../core/index.js';
import { explainJob, jobResults, quoteJob } from '../engine/index.js';
import {
  ExecutionLogQuerySchema,
  JobSpecSchema,
  JobViewQuerySchema,
  ListJobsQuerySchema,
  type Explain,
  type JobResults,
  type JobView,
  type Quote,
  type SubmitJobResponse,
} from '../protocol/index.js';
import { requireScope } from './auth.js';
import { idParam, parseOr400, type RouteDeps } from './http.js';

export function jobRoutes({ store, engine, liveLogs }: RouteDeps): FastifyPluginAsync {
  return async (app) => {
    app.post('/v1/jobs', async (req, reply): Promise<SubmitJobResponse> => {
      requireScope(req.principal, 'buyer');
      const spec = parseOr400(JobSpecSchema, req.body, 'job spec');
      const r = await engine.submitJob(req.principal.accountId, spec);
      reply.status(201);
      return { jobId: r.jobId, tasks: r.tasks, escrow: fromMicro(r.escrow) };
    });

    app.post('/v1/quote', async (req): Promise<Quote> => {
      requireScope(req.principal, 'buyer');
      return quoteJob(engine, req.principal.accountId, parseOr400(JobSpecSchema, req.body, 'job spec'));
    });

    app.get('/v1/jobs/:id/explain', async (req): Promise<Explain> => {
      requireScope(req.principal, 'buyer');
      const id = idParam(req);
      const h = await store.jobs.header(id);
      if (!h || h.buyerId !== req.principal.accountId) throw errors.notFound('job', id);
      const e = await explainJob(engine, id);
      if (!e) throw errors.notFound('job', id);
      return e;
    });

    app.get('/v1/jobs', async (req) => {
      requireScope(req.principal, 'buyer');
      const q = parseOr400(ListJobsQuerySchema, req.query, 'query');
      return { jobs: await store.views.listJobs(req.principal.accountId, q) };
    });

    app.get('/v1/jobs/:id', async (req): Promise<JobView> => {
      requireScope(req.principal, 'buyer');
      const id = idParam(req);
      const q = parseOr400(JobViewQuerySchema, req.query, 'query');
      const view = await store.views.jobView(id, req.principal.accountId, {
        offset: q.taskOffset,
        limit: q.taskLimit,
        state: q.taskState,
      });
      if (!view) throw errors.notFound('job', id);
      return view;
    });

    app.get('/v1/jobs/:id/results', async (req): Promise<JobResults> => {
      requireScope(req.principal, 'buyer');
      const id = idParam(req);
      const r = await jobResults(store, id, req.principal.accountId);
      if (!r) throw errors.notFound('job', id);
      return r;
    });

    // The live output kept while an execution runs (text; the verified logs are the result's blobs).
    app.get('/v1/jobs/:id/executions/:executionId/log', async (req, reply) => {
      requireScope(req.principal, 'buyer');
      const id = idParam(req);
      const executionId = idParam(req, 'executionId');
      const q = parseOr400(ExecutionLogQuerySchema, req.query, 'query');
      const h = await store.jobs.header(id);
      if (!h || h.buyerId !== req.principal.accountId) throw errors.notFound('job', id);
      const lease = await store.executions.leaseOf(executionId);
      if (!lease || lease.jobId !== id) throw errors.notFound('execution', executionId);
      return reply.type('text/plain; charset=utf-8').send(liveLogs.text(executionId, q.stream));
    });

    app.post('/v1/jobs/:id/cancel', async (req) => {
      requireScope(req.principal, 'buyer');
      const id = idParam(req);
      const h = await store.jobs.header(id);
      if (!h || h.buyerId !== req.principal.accountId) throw errors.notFound('job', id);
      const cancelled = await engine.cancelJob(id);
      return { jobId: id, cancelled };
    });
  };
}
