/** Accounts, API keys, agents and blob records. */
import type { Kysely } from 'kysely';
import { ACTIVE_EXECUTION_STATES, DeqoError } from '../core/index.js';
import type { Availability, Capacity, Offer } from '../protocol/index.js';
import { newId, requireTransaction } from './db.js';
import { parsedAvailability, parsedCapacity, parsedOffer } from './json-memo.js';
import type { Database } from './schema.js';

/** Roles an account may hold. */
export type Role = 'buyer' | 'provider' | 'admin';
/** Who made a request, resolved from its API key. */
export interface Principal {
  accountId: string;
  accountName: string;
  roles: Role[];
  scope: Role;
}

/** A registered agent with its provider, offer and last reported availability. */
export interface AgentRecord {
  id: string;
  providerId: string;
  name: string;
  capacity: Capacity;
  offer: Offer;
  availability: Availability;
  registeredAt: number;
  lastSeenAt: number;
}

/** An API key as its owner may see it (never the key or its hash). */
export interface KeyRecord {
  keyId: string;
  scope: Role;
  label: string | null;
  createdAt: number;
  revokedAt: number | null;
}

export class AccountStore {
  constructor(private readonly db: Kysely<Database>) {}

  /** Creates an account; throws DeqoError conflict if the name is taken (also by a concurrent creation). */
  async createAccount(name: string, roles: Role[], now: number): Promise<string> {
    requireTransaction(this.db);
    const id = newId('acct');
    const row = await this.db
      .insertInto('accounts')
      .values({ id, name, roles: JSON.stringify(roles), created_at: now })
      .onConflict((oc) => oc.column('name').doNothing())
      .returning('id')
      .executeTakeFirst();
    if (!row) throw new DeqoError('conflict', `an account named ${name} already exists`);
    return id;
  }

  /** Account id by name, or null. */
  async findAccountByName(name: string): Promise<string | null> {
    const row = await this.db.selectFrom('accounts').select('id').where('name', '=', name).executeTakeFirst();
    return row?.id ?? null;
  }

  /** Account id and name by id or name, or null. */
  async findAccount(idOrName: string): Promise<{ id: string; name: string; roles: Role[] } | null> {
    const row = await this.db
      .selectFrom('accounts')
      .selectAll()
      .where((eb) => eb.or([eb('id', '=', idOrName), eb('name', '=', idOrName)]))
      .executeTakeFirst();
    return row ? { id: row.id, name: row.name, roles: JSON.parse(row.roles) as Role[] } : null;
  }

  /** Stores the hash of a new API key (the key itself is never stored). */
  async addApiKey(
    accountId: string,
    keyHash: string,
    scope: Role,
    now: number,
    label: string | null = null,
  ): Promise<string> {
    requireTransaction(this.db);
    const id = newId('key');
    await this.db
      .insertInto('api_keys')
      .values({ id, account_id: accountId, key_hash: keyHash, scope, created_at: now, revoked_at: null, label })
      .execute();
    return id;
  }

  /** The account's keys, newest first. */
  async listKeys(accountId: string): Promise<KeyRecord[]> {
    const rows = await this.db
      .selectFrom('api_keys')
      .select(['id', 'scope', 'label', 'created_at', 'revoked_at'])
      .where('account_id', '=', accountId)
      .orderBy('created_at', 'desc')
      .execute();
    return rows.map((r) => ({
      keyId: r.id,
      scope: r.scope as Role,
      label: r.label,
      createdAt: Number(r.created_at),
      revokedAt: r.revoked_at === null ? null : Number(r.revoked_at),
    }));
  }

  /** Revokes one of the account's keys. Returns false when it is not the account's (or does not exist). */
  async revokeKey(accountId: string, keyId: string, now: number): Promise<boolean> {
    requireTransaction(this.db);
    const row = await this.db
      .selectFrom('api_keys')
      .select('revoked_at')
      .where('id', '=', keyId)
      .where('account_id', '=', accountId)
      .executeTakeFirst();
    if (!row) return false;
    if (row.revoked_at === null)
      await this.db
        .updateTable('api_keys')
        .set({ revoked_at: now })
        .where('id', '=', keyId)
        .where('revoked_at', 'is', null)
        .execute();
    return true;
  }

  /** The principal of an unrevoked key hash, or null. */
  async authenticate(keyHash: string): Promise<Principal | null> {
    const row = await this.db
      .selectFrom('api_keys')
      .innerJoin('accounts', 'accounts.id', 'api_keys.account_id')
      .select(['accounts.id as accountId', 'accounts.name as accountName', 'accounts.roles', 'api_keys.scope'])
      .where('api_keys.key_hash', '=', keyHash)
      .where('api_keys.revoked_at', 'is', null)
      .executeTakeFirst();
    if (!row) return null;
    return {
      accountId: row.accountId,
      accountName: row.accountName,
      roles: JSON.parse(row.roles) as Role[],
      scope: row.scope as Role,
    };
  }

  /**
   * Registers an agent or refreshes its capacity. An agent id (its public key) belongs to one provider:
   * registering it under another provider's key throws DeqoError forbidden. One upsert, so two coordinators
   * registering the same agent at once both succeed.
   */
  async registerAgent(
    a: {
      id: string;
      providerId: string;
      name: string;
      publicKey: string;
      capacity: Capacity;
      offer: Offer;
      availability: Availability;
      /** The network address prefix it registers from, as the coordinator sees it ('' when unknown). */
      networkPrefix?: string;
    },
    now: number,
  ): Promise<void> {
    requireTransaction(this.db);
    const values = {
      name: a.name,
      capacity: JSON.stringify(a.capacity),
      offer: JSON.stringify(a.offer),
      availability: JSON.stringify(a.availability),
      last_seen_at: now,
      network_prefix: a.networkPrefix ?? '',
    };
    const row = await this.db
      .insertInto('agents')
      .values({ ...values, id: a.id, provider_id: a.providerId, public_key: a.publicKey, registered_at: now })
      .onConflict((oc) => oc.column('id').doUpdateSet(values).where('agents.provider_id', '=', a.providerId))
      .returning('id')
      .executeTakeFirst();
    if (!row) throw new DeqoError('forbidden', 'this agent identity is registered to another provider account');
  }

  /** Records that an agent was heard from (and its availability, when given). Returns false if the agent is unknown. */
  async touchAgent(agentId: string, now: number, availability?: Availability): Promise<boolean> {
    requireTransaction(this.db);
    const set = availability
      ? { last_seen_at: now, availability: JSON.stringify(availability) }
      : { last_seen_at: now };
    const r = await this.db.updateTable('agents').set(set).where('id', '=', agentId).executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }

  async getAgent(agentId: string): Promise<AgentRecord | null> {
    const row = await this.db.selectFrom('agents').selectAll().where('id', '=', agentId).executeTakeFirst();
    return row ? toAgent(row) : null;
  }

  /**
   * Agents (all, or one provider's) with their provider's name, the executions each holds (assigned or
   * running) and how many ended valid.
   */
  async listAgents(
    providerId?: string,
  ): Promise<Array<AgentRecord & { providerName: string; running: number; jobsDone: number }>> {
    let q = this.db
      .selectFrom('agents')
      .innerJoin('accounts', 'accounts.id', 'agents.provider_id')
      .selectAll('agents')
      .select('accounts.name as provider_name')
      .select((eb) => [
        eb
          .selectFrom('executions')
          .select(eb.fn.countAll<number>().as('n'))
          .whereRef('executions.agent_id', '=', 'agents.id')
          .where('executions.state', 'in', ACTIVE_EXECUTION_STATES)
          .as('running'),
        eb
          .selectFrom('executions')
          .select(eb.fn.countAll<number>().as('n'))
          .whereRef('executions.agent_id', '=', 'agents.id')
          .where('executions.state', '=', 'valid')
          .as('done'),
      ])
      .orderBy('agents.name');
    if (providerId) q = q.where('agents.provider_id', '=', providerId);
    const rows = await q.execute();
    return rows.map((r) => ({
      ...toAgent(r),
      providerName: r.provider_name,
      running: Number(r.running ?? 0),
      jobsDone: Number(r.done ?? 0),
    }));
  }

  /** Lets an account read a blob (idempotent). */
  async grantBlobAccess(sha256s: readonly string[], accountId: string): Promise<void> {
    requireTransaction(this.db);
    const unique = [...new Set(sha256s)];
    if (unique.length === 0) return;
    await this.db
      .insertInto('blob_access')
      .values(unique.map((sha256) => ({ sha256, account_id: accountId })))
      .onConflict((oc) => oc.columns(['sha256', 'account_id']).doNothing())
      .execute();
  }

  /** True when the account may read the blob. */
  async canReadBlob(sha256: string, accountId: string): Promise<boolean> {
    const row = await this.db
      .selectFrom('blob_access')
      .select('sha256')
      .where('sha256', '=', sha256)
      .where('account_id', '=', accountId)
      .executeTakeFirst();
    return row !== undefined;
  }

  /** Records a stored blob (idempotent); its unreferenced lifetime starts again at `now`. */
  async recordBlob(sha256: string, size: number, now: number): Promise<void> {
    requireTransaction(this.db);
    await this.db
      .insertInto('blobs')
      .values({ sha256, size, created_at: now, used_at: now })
      .onConflict((oc) => oc.column('sha256').doUpdateSet({ used_at: now }))
      .execute();
  }

  /** Size of a recorded blob in bytes, or null. */
  async blobSize(sha256: string): Promise<number | null> {
    const row = await this.db.selectFrom('blobs').select('size').where('sha256', '=', sha256).executeTakeFirst();
    return row ? Number(row.size) : null;
  }
}

function toAgent(r: Database['agents']): AgentRecord {
  return {
    id: r.id,
    providerId: r.provider_id,
    name: r.name,
    capacity: parsedCapacity(r.capacity),
    offer: parsedOffer(r.offer),
    availability: parsedAvailability(r.availability),
    registeredAt: Number(r.registered_at),
    lastSeenAt: Number(r.last_seen_at),
  };
}
