/** Accounts, API keys, agents and blob records. */
import type { Kysely } from 'kysely';
import { ACTIVE_EXECUTION_STATES, DeqoError } from '../core/index.js';
import { CapacitySchema, type Capacity } from '../protocol/index.js';
import { newId } from './db.js';
import type { Database } from './schema.js';

/** Roles an account may hold. */
export type Role = 'buyer' | 'provider' | 'admin';
/** Who made a request, resolved from its API key. */
export interface Principal { accountId: string; accountName: string; roles: Role[]; scope: Role }

/** A registered agent with its provider. */
export interface AgentRecord {
  id: string; providerId: string; name: string; capacity: Capacity; registeredAt: number; lastSeenAt: number;
}

export class AccountStore {
  constructor(private readonly db: Kysely<Database>) {}

  /** Creates an account; throws DeqoError conflict if the name is taken. */
  async createAccount(name: string, roles: Role[], now: number): Promise<string> {
    const existing = await this.db.selectFrom('accounts').select('id').where('name', '=', name).executeTakeFirst();
    if (existing) throw new DeqoError('conflict', `an account named ${name} already exists`);
    const id = newId('acct');
    await this.db.insertInto('accounts').values({ id, name, roles: JSON.stringify(roles), created_at: now }).execute();
    return id;
  }

  /** Account id by name, or null. */
  async findAccountByName(name: string): Promise<string | null> {
    const row = await this.db.selectFrom('accounts').select('id').where('name', '=', name).executeTakeFirst();
    return row?.id ?? null;
  }

  /** Stores the hash of a new API key (the key itself is never stored). */
  async addApiKey(accountId: string, keyHash: string, scope: Role, now: number): Promise<string> {
    const id = newId('key');
    await this.db.insertInto('api_keys')
      .values({ id, account_id: accountId, key_hash: keyHash, scope, created_at: now, revoked_at: null }).execute();
    return id;
  }

  /** The principal of an unrevoked key hash, or null. */
  async authenticate(keyHash: string): Promise<Principal | null> {
    const row = await this.db.selectFrom('api_keys').innerJoin('accounts', 'accounts.id', 'api_keys.account_id')
      .select(['accounts.id as accountId', 'accounts.name as accountName', 'accounts.roles', 'api_keys.scope'])
      .where('api_keys.key_hash', '=', keyHash).where('api_keys.revoked_at', 'is', null).executeTakeFirst();
    if (!row) return null;
    return { accountId: row.accountId, accountName: row.accountName, roles: JSON.parse(row.roles) as Role[], scope: row.scope as Role };
  }

  /**
   * Registers an agent or refreshes its capacity. An agent id (its public key) belongs to one provider:
   * registering it under another provider's key throws DeqoError forbidden.
   */
  async registerAgent(a: { id: string; providerId: string; name: string; publicKey: string; capacity: Capacity }, now: number): Promise<void> {
    const existing = await this.db.selectFrom('agents').select('provider_id').where('id', '=', a.id).executeTakeFirst();
    if (existing && existing.provider_id !== a.providerId) {
      throw new DeqoError('forbidden', 'this agent identity is registered to another provider account');
    }
    const values = { name: a.name, capacity: JSON.stringify(a.capacity), last_seen_at: now };
    if (existing) {
      await this.db.updateTable('agents').set(values).where('id', '=', a.id).execute();
    } else {
      await this.db.insertInto('agents').values({ ...values, id: a.id, provider_id: a.providerId, public_key: a.publicKey, registered_at: now }).execute();
    }
  }

  /** Records that an agent was heard from. Returns false if the agent is unknown. */
  async touchAgent(agentId: string, now: number): Promise<boolean> {
    const r = await this.db.updateTable('agents').set({ last_seen_at: now }).where('id', '=', agentId).executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }

  async getAgent(agentId: string): Promise<AgentRecord | null> {
    const row = await this.db.selectFrom('agents').selectAll().where('id', '=', agentId).executeTakeFirst();
    return row ? toAgent(row) : null;
  }

  /** All agents with the number of executions each holds (assigned or running). */
  async listAgents(): Promise<Array<AgentRecord & { running: number }>> {
    const rows = await this.db.selectFrom('agents').selectAll('agents')
      .select((eb) => eb.selectFrom('executions').select(eb.fn.countAll<number>().as('n'))
        .whereRef('executions.agent_id', '=', 'agents.id').where('executions.state', 'in', ACTIVE_EXECUTION_STATES).as('running'))
      .orderBy('agents.name').execute();
    return rows.map((r) => ({ ...toAgent(r), running: Number(r.running ?? 0) }));
  }

  /** Records a stored blob (idempotent). */
  async recordBlob(sha256: string, size: number, now: number): Promise<void> {
    await this.db.insertInto('blobs').values({ sha256, size, created_at: now })
      .onConflict((oc) => oc.column('sha256').doNothing()).execute();
  }

  /** Size of a recorded blob in bytes, or null. */
  async blobSize(sha256: string): Promise<number | null> {
    const row = await this.db.selectFrom('blobs').select('size').where('sha256', '=', sha256).executeTakeFirst();
    return row ? Number(row.size) : null;
  }
}

function toAgent(r: Database['agents']): AgentRecord {
  return { id: r.id, providerId: r.provider_id, name: r.name, capacity: CapacitySchema.parse(JSON.parse(r.capacity)),
    registeredAt: Number(r.registered_at), lastSeenAt: Number(r.last_seen_at) };
}
