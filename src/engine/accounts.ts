/**
 * Accounts, keys, credits and agents: every write the routes and the CLI make outside a job's life goes
 * through here (the store only writes what this decides). Also the provider catalog, filtered and sorted by core.
 */
import { createHash, randomBytes } from 'node:crypto';
import {
  accountLedger,
  agentStatus,
  applyOutcome,
  DeqoError,
  errors,
  fromMicro,
  grantTxn,
  queryCatalog,
  reputationView,
  toMicro,
} from '../core/index.js';
import type {
  Availability,
  Capacity,
  CatalogQuery,
  Offer,
  ProviderReputation,
  ProviderView,
} from '../protocol/index.js';
import type { Role } from '../store/index.js';
import type { EngineResources } from './resources.js';

/** A new API key: `deqo_` + 256 random bits, base64url. Shown once; only its hash is stored. */
export function generateApiKey(): string {
  return `deqo_${randomBytes(32).toString('base64url')}`;
}

/** SHA-256 (hex) of an API key, the form stored and looked up. */
export function hashApiKey(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}

/** An agent registering (or refreshing) its identity, capacity, offer and availability. */
export interface AgentRegistration {
  id: string;
  providerId: string;
  name: string;
  publicKey: string;
  capacity: Capacity;
  offer: Offer;
  availability: Availability;
  /** Where it registers from (core/credibility.ts networkPrefixOf); '' when unknown. */
  networkPrefix?: string;
}

export class AccountSystem {
  constructor(
    private readonly r: EngineResources,
    private readonly scheduled: () => void,
  ) {}

  /**
   * Creates an account with `roles` and one API key of `scope` (the first role when not given). Returns the
   * account id and the key (shown once). Throws DeqoError conflict when the name is taken.
   */
  async createAccount(
    name: string,
    roles: Role[],
    scope: Role = roles[0]!,
    label = 'created with the account',
  ): Promise<{ accountId: string; keyId: string; apiKey: string }> {
    const apiKey = generateApiKey();
    return this.r.store.transaction(async (tx) => {
      const now = this.r.now();
      const accountId = await tx.accounts.createAccount(name, roles, now);
      const keyId = await tx.accounts.addApiKey(accountId, hashApiKey(apiKey), scope, now, label);
      return { accountId, keyId, apiKey };
    });
  }

  /** Adds a key of `scope` to an account that has that role. Throws DeqoError forbidden otherwise. */
  async createKey(
    principal: { accountId: string; accountName: string; roles: Role[] },
    scope: Role,
    label: string | null,
  ): Promise<{ keyId: string; apiKey: string }> {
    if (!principal.roles.includes(scope)) {
      throw new DeqoError(
        'forbidden',
        `account ${principal.accountName} does not have the ${scope} role; an admin can add it`,
      );
    }
    const apiKey = generateApiKey();
    const keyId = await this.r.store.transaction((tx) =>
      tx.accounts.addApiKey(principal.accountId, hashApiKey(apiKey), scope, this.r.now(), label),
    );
    return { keyId, apiKey };
  }

  /** Revokes one of the account's keys; throws DeqoError not_found when it is not the account's. */
  async revokeKey(accountId: string, keyId: string): Promise<void> {
    const ok = await this.r.store.transaction((tx) => tx.accounts.revokeKey(accountId, keyId, this.r.now()));
    if (!ok) throw errors.notFound('key', keyId);
  }

  /**
   * Grants `credits` to an account (by id or name), issued by the platform. Returns the transaction and the
   * account's credits after it. Throws DeqoError not_found for an unknown account.
   */
  async grant(
    account: string,
    credits: number,
    memo: string,
  ): Promise<{ txnId: string; accountId: string; available: number }> {
    const found = await this.r.store.accounts.findAccount(account);
    if (!found) throw errors.notFound('account', account);
    return this.r.store.transaction(async (tx) => {
      const txnId = await tx.ledger.post(grantTxn(found.id, toMicro(credits), memo), this.r.now());
      return { txnId, accountId: found.id, available: fromMicro(await tx.ledger.balance(accountLedger(found.id))) };
    });
  }

  /** Registers (or refreshes) an agent and schedules work for it. Throws DeqoError forbidden for another provider's agent. */
  async registerAgent(a: AgentRegistration): Promise<void> {
    await this.r.store.transaction((tx) => tx.accounts.registerAgent(a, this.r.now()));
    this.r.log.info(
      {
        agentId: a.id,
        name: a.name,
        cpus: a.capacity.cpus,
        memoryMb: a.capacity.memoryMb,
        prices: a.offer.prices,
        availability: a.availability.state,
      },
      'agent registered',
    );
    this.scheduled();
  }

  /**
   * Vouches for a provider account (by id or name): the operator runs or vetted it, so it is established at once
   * (core/credibility.ts vouchedConfirmations) — how a new network gets its first trusted providers. Throws DeqoError
   * not_found for an unknown account, validation_failed for an account without the provider role.
   */
  async vouch(account: string): Promise<{ providerId: string }> {
    const found = await this.r.store.accounts.findAccount(account);
    if (!found) throw errors.notFound('account', account);
    if (!found.roles.includes('provider')) {
      throw new DeqoError('validation_failed', `account ${found.name} is not a provider`, [
        { path: 'account', message: 'expected a provider account' },
      ]);
    }
    const { quota } = this.r.policy;
    await this.r.store.transaction(async (tx) => {
      const now = this.r.now();
      const current = await tx.reputation.lock(found.id, quota, now);
      if (current.vouched) return;
      const next = applyOutcome(current, { kind: 'vouched' }, quota);
      await tx.reputation.save(found.id, next, { outcome: { kind: 'vouched' }, executionId: null, jobId: null }, now);
    });
    this.r.log.info({ providerId: found.id, name: found.name }, 'provider vouched for by the operator');
    return { providerId: found.id };
  }

  /** A provider's reputation record, standing and its `limit` most recent events (newest first). */
  async reputation(providerId: string, limit: number): Promise<ProviderReputation> {
    const { store, policy } = this.r;
    const rec = (await store.reputation.records([providerId], this.r.now(), policy.quota)).get(providerId)!;
    return {
      providerId,
      reputation: reputationView(rec.reputation, rec.startedToday, policy.credibility),
      events: await store.reputation.history(providerId, limit),
    };
  }

  /** Catalog rows for all agents (or one provider's), filtered and sorted as `q` asks (core/catalog.ts). */
  async catalog(q: CatalogQuery, providerId?: string): Promise<ProviderView[]> {
    const { store, config, policy } = this.r;
    const now = this.r.now();
    const agents = await store.accounts.listAgents(providerId);
    const records = await store.reputation.records([...new Set(agents.map((a) => a.providerId))], now, policy.quota);
    const rows = agents.map((a): ProviderView => {
      const rec = records.get(a.providerId)!;
      const status = agentStatus(a.lastSeenAt, now, config.agentTtlMs);
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
        reputation: reputationView(rec.reputation, rec.startedToday, policy.credibility),
        running: a.running,
        jobsDone: a.jobsDone,
      };
    });
    return queryCatalog(rows, q);
  }
}
