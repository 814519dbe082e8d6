/**
 * Market routes: the provider catalog, balances and the ledger, API keys, a provider's own agents and
 * reputation, and admin calls (accounts, grants, ledger audit). Every read is scoped to the caller's account.
 */
import type { FastifyPluginAsync } from 'fastify';
import { accountLedger, escrowLedger, fromMicro } from '../core/index.js';
import {
  CatalogQuerySchema,
  CreateAccountRequestSchema,
  CreateKeyRequestSchema,
  GrantRequestSchema,
  LedgerQuerySchema,
  VouchRequestSchema,
  type Balance,
  type NewKey,
  type ProviderReputation,
  type WhoAmI,
} from '../protocol/index.js';
import type { Role } from '../store/index.js';
import { requireScope } from './auth.js';
import { idParam, parseOr400, type ServerDeps } from './http.js';

export function marketRoutes({ store, engine }: ServerDeps): FastifyPluginAsync {
  return async (app) => {
    app.get('/v1/providers', async (req) => ({
      providers: await engine.accounts.catalog(parseOr400(CatalogQuerySchema, req.query, 'query')),
    }));

    app.get('/v1/whoami', async (req): Promise<WhoAmI> => ({
      accountId: req.principal.accountId,
      accountName: req.principal.accountName,
      roles: req.principal.roles,
      scope: req.principal.scope,
    }));

    app.get('/v1/balance', async (req): Promise<Balance> => {
      const s = await store.ledger.summary(req.principal.accountId);
      return {
        accountId: req.principal.accountId,
        accountName: req.principal.accountName,
        available: fromMicro(s.available),
        inEscrow: fromMicro(s.inEscrow),
        earned: fromMicro(s.earned),
      };
    });

    app.get('/v1/ledger', async (req) => {
      const q = parseOr400(LedgerQuerySchema, req.query, 'query');
      const accounts = [accountLedger(req.principal.accountId)];
      if (q.jobId) {
        const h = await store.jobs.header(q.jobId);
        if (h && h.buyerId === req.principal.accountId) accounts.push(escrowLedger(q.jobId));
      }
      return { entries: await store.ledger.entries(accounts, { jobId: q.jobId, limit: q.limit }) };
    });

    app.get('/v1/keys', async (req) => ({ keys: await store.accounts.listKeys(req.principal.accountId) }));

    app.post('/v1/keys', async (req, reply): Promise<NewKey> => {
      const body = parseOr400(CreateKeyRequestSchema, req.body, 'key request');
      const k = await engine.accounts.createKey(req.principal, body.scope, body.label ?? null);
      reply.status(201);
      return { ...k, scope: body.scope, accountId: req.principal.accountId };
    });

    app.post('/v1/keys/:id/revoke', async (req) => {
      const id = idParam(req);
      await engine.accounts.revokeKey(req.principal.accountId, id);
      return { keyId: id, revoked: true };
    });

    app.get('/v1/provider/agents', async (req) => {
      requireScope(req.principal, 'provider');
      return { providers: await engine.accounts.catalog(CatalogQuerySchema.parse({}), req.principal.accountId) };
    });

    app.get('/v1/provider/reputation', async (req): Promise<ProviderReputation> => {
      requireScope(req.principal, 'provider');
      const limit = parseOr400(LedgerQuerySchema.pick({ limit: true }), req.query, 'query').limit;
      return engine.accounts.reputation(req.principal.accountId, limit);
    });

    app.post('/v1/admin/accounts', async (req, reply) => {
      requireScope(req.principal, 'admin');
      const body = parseOr400(CreateAccountRequestSchema, req.body, 'account');
      const created = await engine.accounts.createAccount(
        body.name,
        body.roles as Role[],
        undefined,
        'created by admin',
      );
      reply.status(201);
      return { ...created, name: body.name, roles: body.roles, scope: body.roles[0] };
    });

    app.post('/v1/admin/grants', async (req, reply) => {
      requireScope(req.principal, 'admin');
      const body = parseOr400(GrantRequestSchema, req.body, 'grant');
      const g = await engine.accounts.grant(body.account, body.amount, body.memo);
      reply.status(201);
      return { ...g, amount: body.amount };
    });

    app.post('/v1/admin/vouch', async (req) => {
      requireScope(req.principal, 'admin');
      const body = parseOr400(VouchRequestSchema, req.body, 'vouch');
      return { ...(await engine.accounts.vouch(body.account)), vouched: true };
    });

    app.get('/v1/admin/ledger/audit', async (req) => {
      requireScope(req.principal, 'admin');
      const problems = await store.ledger.audit();
      return { sound: problems.length === 0, problems };
    });
  };
}
