/**
 * Market routes: the provider catalog, balances and the ledger, API keys, a provider's own agents and
 * reputation, and admin calls (accounts, grants, ledger audit). Every read is scoped to the caller's account.
 */
import type { FastifyPluginAsync } from 'fastify';
import {
  accountLedger,
  agentStatus,
  DeqoError,
  errors,
  escrowLedger,
  fromMicro,
  grantTxn,
  toMicro,
} from '../core/index.js';
import {
  CatalogQuerySchema,
  CreateAccountRequestSchema,
  CreateKeyRequestSchema,
  GrantRequestSchema,
  LedgerQuerySchema,
  type Balance,
  type CatalogQuery,
  type NewKey,
  type ProviderReputation,
  type ProviderView,
  type WhoAmI,
} from '../protocol/index.js';
import { reputationView, type Role } from '../store/index.js';
import { createKeyFor, requireScope } from './auth.js';
import { idParam, parseOr400, type ServerDeps } from './http.js';

/** Catalog rows for all agents (or one provider's), filtered and sorted as asked. */
async function catalog({ store, engine }: ServerDeps, q: CatalogQuery, providerId?: string): Promise<ProviderView[]> {
  const now = engine.now();
  const agents = await store.accounts.listAgents(providerId);
  const records = await store.reputation.records([...new Set(agents.map((a) => a.providerId))], now);
  let rows: ProviderView[] = agents.map((a) => {
    const rec = records.get(a.providerId)!;
    const status = agentStatus(a.lastSeenAt, now, engine.config.agentTtlMs);
    return {
      agentId: a.id,
      name: a.name,
      providerId: a.providerId,
      providerName: a.providerName,
      online: status === 'online',
      status,
      lastSeenAt: a.lastSeenAt,
      capacity: a.capacity,
      offer: a.offer,
      availability: a.availability,
      reputation: reputationView(rec.reputation, rec.startedToday),
      running: a.running,
      jobsDone: a.jobsDone,
    };
  });
  const [labelKey, labelValue] = q.label
    ? [q.label.slice(0, q.label.indexOf('=')), q.label.slice(q.label.indexOf('=') + 1)]
    : [null, null];
  rows = rows.filter(
    (p) =>
      (q.minCpus === undefined || p.capacity.cpus >= q.minCpus) &&
      (q.minMemoryMb === undefined || p.capacity.memoryMb >= q.minMemoryMb) &&
      (q.gpus === undefined || p.capacity.gpus.length >= q.gpus) &&
      (q.gpuModel === undefined ||
        p.capacity.gpus.some((g) => g.model.toLowerCase().includes(q.gpuModel!.toLowerCase()))) &&
      (q.arch === undefined || p.capacity.arch === q.arch) &&
      (q.os === undefined || p.capacity.os === q.os) &&
      (q.maxCpuHour === undefined || p.offer.prices.cpuHour <= q.maxCpuHour) &&
      (q.minReputation === undefined || p.reputation.score >= q.minReputation) &&
      (q.online === undefined || p.online === q.online) &&
      (labelKey === null || p.offer.labels[labelKey] === labelValue),
  );
  const key: Record<CatalogQuery['sort'], (p: ProviderView) => number | string> = {
    price: (p) => p.offer.prices.cpuHour,
    reputation: (p) => p.reputation.score,
    cpus: (p) => p.capacity.cpus,
    memory: (p) => p.capacity.memoryMb,
    name: (p) => p.name,
    jobs: (p) => p.jobsDone,
  };
  const descByDefault = q.sort === 'reputation' || q.sort === 'cpus' || q.sort === 'memory' || q.sort === 'jobs';
  const dir = (q.order ?? (descByDefault ? 'desc' : 'asc')) === 'asc' ? 1 : -1;
  return rows.sort((a, b) => {
    const x = key[q.sort](a);
    const y = key[q.sort](b);
    return (x < y ? -1 : x > y ? 1 : 0) * dir || a.name.localeCompare(b.name);
  });
}

export function marketRoutes(deps: ServerDeps): FastifyPluginAsync {
  const { store, engine } = deps;
  return async (app) => {
    app.get('/v1/providers', async (req) => ({
      providers: await catalog(deps, parseOr400(CatalogQuerySchema, req.query, 'query')),
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
        const h = await store.jobs.jobHeader(q.jobId);
        if (h && h.buyerId === req.principal.accountId) accounts.push(escrowLedger(q.jobId));
      }
      return { entries: await store.ledger.entries(accounts, { jobId: q.jobId, limit: q.limit }) };
    });

    app.get('/v1/keys', async (req) => ({ keys: await store.accounts.listKeys(req.principal.accountId) }));

    app.post('/v1/keys', async (req, reply): Promise<NewKey> => {
      const body = parseOr400(CreateKeyRequestSchema, req.body, 'key request');
      if (!req.principal.roles.includes(body.scope)) {
        throw new DeqoError(
          'forbidden',
          `account ${req.principal.accountName} does not have the ${body.scope} role; an admin can add it`,
        );
      }
      const k = await createKeyFor(store, req.principal.accountId, body.scope, engine.now(), body.label ?? null);
      reply.status(201);
      return { ...k, scope: body.scope, accountId: req.principal.accountId };
    });

    app.post('/v1/keys/:id/revoke', async (req) => {
      const id = idParam(req);
      if (!(await store.accounts.revokeKey(req.principal.accountId, id, engine.now())))
        throw errors.notFound('key', id);
      return { keyId: id, revoked: true };
    });

    app.get('/v1/provider/agents', async (req) => {
      requireScope(req.principal, 'provider');
      return { providers: await catalog(deps, CatalogQuerySchema.parse({}), req.principal.accountId) };
    });

    app.get('/v1/provider/reputation', async (req): Promise<ProviderReputation> => {
      requireScope(req.principal, 'provider');
      const limit = parseOr400(LedgerQuerySchema.pick({ limit: true }), req.query, 'query').limit;
      return store.reputation.history(req.principal.accountId, limit, engine.now());
    });

    app.post('/v1/admin/accounts', async (req, reply) => {
      requireScope(req.principal, 'admin');
      const body = parseOr400(CreateAccountRequestSchema, req.body, 'account');
      const now = engine.now();
      const accountId = await store.accounts.createAccount(body.name, body.roles as Role[], now);
      const key = await createKeyFor(store, accountId, body.roles[0]!, now, 'created by admin');
      reply.status(201);
      return { accountId, name: body.name, roles: body.roles, ...key, scope: body.roles[0] };
    });

    app.post('/v1/admin/grants', async (req, reply) => {
      requireScope(req.principal, 'admin');
      const body = parseOr400(GrantRequestSchema, req.body, 'grant');
      const account = await store.accounts.findAccount(body.account);
      if (!account) throw errors.notFound('account', body.account);
      const txnId = await store.ledger.post(grantTxn(account.id, toMicro(body.amount), body.memo), engine.now());
      reply.status(201);
      return {
        txnId,
        accountId: account.id,
        amount: body.amount,
        available: fromMicro(await store.ledger.balance(accountLedger(account.id))),
      };
    });

    app.get('/v1/admin/ledger/audit', async (req) => {
      requireScope(req.principal, 'admin');
      const problems = await store.ledger.audit();
      return { sound: problems.length === 0, problems };
    });
  };
}
