/** Agent routes: register (with the offer), heartbeat (with availability), claim, report. */
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import { errors, networkPrefixOf } from '../core/index.js';
import {
  ClaimRequestSchema,
  HeartbeatRequestSchema,
  LogChunkRequestSchema,
  RegisterAgentRequestSchema,
  ReportRequestSchema,
  type HeartbeatResponse,
  type RegisterAgentResponse,
} from '../protocol/index.js';
import { requireScope, verifyAgentIdentity } from './auth.js';
import { idParam, parseOr400, type RouteDeps } from './http.js';

export function agentRoutes({ store, engine, hub, liveLogs }: RouteDeps): FastifyPluginAsync {
  /** The agent named in the path, checked to belong to the caller's provider account (else 404). */
  async function ownAgent(req: FastifyRequest): Promise<string> {
    requireScope(req.principal, 'provider');
    const agentId = idParam(req, 'agentId');
    const agent = await store.accounts.getAgent(agentId);
    if (!agent || agent.providerId !== req.principal.accountId) throw errors.notFound('agent', agentId);
    return agentId;
  }

  return async (app) => {
    app.post('/v1/agents/register', async (req): Promise<RegisterAgentResponse> => {
      requireScope(req.principal, 'provider');
      const body = parseOr400(RegisterAgentRequestSchema, req.body, 'registration');
      const agentId = verifyAgentIdentity(body.publicKey, body.timestamp, body.signature, Date.now());
      await engine.registerAgent({
        id: agentId,
        providerId: req.principal.accountId,
        name: body.name,
        publicKey: body.publicKey,
        capacity: body.capacity,
        offer: body.offer,
        availability: body.availability,
        networkPrefix: networkPrefixOf(req.ip),
      });
      return { agentId, heartbeatIntervalMs: engine.config.heartbeatIntervalMs, leaseTtlMs: engine.config.leaseTtlMs };
    });

    app.post('/v1/agents/:agentId/heartbeat', async (req): Promise<HeartbeatResponse> => {
      const agentId = await ownAgent(req);
      const body = parseOr400(HeartbeatRequestSchema, req.body, 'heartbeat');
      return engine.heartbeat(agentId, body.executions, body.availability);
    });

    app.post('/v1/agents/:agentId/claim', async (req) => {
      const agentId = await ownAgent(req);
      const body = parseOr400(ClaimRequestSchema, req.body, 'claim');
      return { executions: await engine.claim(agentId, body.max, body.waitMs) };
    });

    app.post('/v1/agents/:agentId/executions/:id/report', async (req) => {
      const agentId = await ownAgent(req);
      const executionId = idParam(req);
      const body = parseOr400(ReportRequestSchema, req.body, 'report');
      await engine.report(agentId, executionId, body);
      return { ok: true };
    });

    // Live output while the execution runs (kept in memory, published as `log` events; see live-logs.ts).
    app.post('/v1/agents/:agentId/executions/:id/log', async (req) => {
      const agentId = await ownAgent(req);
      const executionId = idParam(req);
      const body = parseOr400(LogChunkRequestSchema, req.body, 'log chunk');
      const lease = await store.executions.leaseOf(executionId);
      if (!lease || lease.agentId !== agentId) throw errors.notFound('execution', executionId);
      if (lease.state !== 'running' || lease.fencingToken !== body.fencingToken) throw errors.staleLease(executionId);
      const fresh = liveLogs.append(executionId, body.stream, body.offset, body.data);
      if (fresh !== null)
        hub.publishLog(lease.buyerId, { jobId: lease.jobId, executionId, stream: body.stream, data: fresh });
      return { ok: true };
    });
  };
}
