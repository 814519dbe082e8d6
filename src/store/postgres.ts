/**
 * PostgreSQL behind the store: Kysely over a `pg` Pool; migrations under a session advisory lock so that
 * coordinators starting together migrate one after the other; coordination between coordinators with an
 * advisory lock per exclusive step and LISTEN/NOTIFY for "these agents have work".
 */
import { randomBytes } from 'node:crypto';
import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import type { Coordination, ExclusiveStep, Notifier } from './coordination.js';
import { migrate, type StoreCapabilities } from './db.js';
import type { Database } from './schema.js';

/** First key of every two-key advisory lock Deqo takes: 'deqo' in ASCII (keeps clear of other users' locks). */
const LOCK_NAMESPACE = 0x6465716f;
/** Second keys: one per serialized step. */
const LOCK_KEYS: Readonly<Record<ExclusiveStep | 'migrate', number>> = { migrate: 1, schedule: 2 };
/** The NOTIFY channel for new work; payload `{"from": <store id>, "agents": [<agent id>…]}`. */
const CHANNEL = 'deqo_work';
/** Largest payload sent in one NOTIFY (PostgreSQL's limit is 8000 bytes). */
const MAX_PAYLOAD = 7_000;
/** Connections per coordinator process (the pool), plus one for LISTEN. */
const POOL_SIZE = 10;

/**
 * `bigint` (int8) and `numeric` (what SUM over bigint returns) come back from `pg` as strings; Deqo's
 * integers (epoch ms, micro-credits, counts) all fit in a double exactly, so they are parsed to numbers,
 * and a value beyond ±2^53 throws RangeError rather than silently losing digits.
 */
function parseNumber(text: string): number {
  const n = Number(text);
  if (!Number.isFinite(n) || (Number.isInteger(n) && !Number.isSafeInteger(n))) {
    throw new RangeError(`database number ${text} does not fit a JavaScript number exactly`);
  }
  return n;
}

const TYPES: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === pg.types.builtins.INT8 || oid === pg.types.builtins.NUMERIC
      ? parseNumber
      : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
};

/** The URL with any password replaced, for messages. */
export function redactUrl(url: string): string {
  return url.replace(/\/\/([^:/@]*):[^@]*@/, '//$1:…@');
}

/**
 * Connects to PostgreSQL at `url` (`postgres://user:pass@host:port/db?…`) and migrates it, holding the
 * migration advisory lock on one connection meanwhile. Throws Error naming the (redacted) URL when the
 * server cannot be reached, and the failing migration's error otherwise.
 */
export async function openPostgres(
  url: string,
): Promise<{ db: Kysely<Database>; capabilities: StoreCapabilities; coordination: Coordination }> {
  const config: pg.PoolConfig = { connectionString: url, types: TYPES };
  const pool = new pg.Pool({ ...config, max: POOL_SIZE });
  // An idle connection dropped by the server (restart, admin) must not crash the process; the next query reconnects.
  pool.on('error', () => {});
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  try {
    await withAdvisoryLock(db, 'migrate', (conn) => migrate(conn, 'postgres'));
  } catch (err) {
    await db.destroy();
    const code = (err as { code?: unknown }).code;
    if (typeof code === 'string' && /^(ECONNREFUSED|ENOTFOUND|ETIMEDOUT|EHOSTUNREACH|3D000|28P01|28000)$/.test(code)) {
      throw new Error(`cannot open PostgreSQL at ${redactUrl(url)}: ${(err as Error).message}`);
    }
    throw err;
  }
  const notifier = new PgNotifier(db, config);
  return {
    db,
    capabilities: { dialect: 'postgres', skipLocked: true, listenNotify: true },
    coordination: { notifier, exclusive: (step, fn) => withAdvisoryLock(db, step, () => fn()) },
  };
}

/**
 * Runs `fn` holding Deqo's session advisory lock `key` on one pooled connection (passed to `fn`), waiting
 * while another session holds it. The lock is released afterwards, or by the server if the process dies.
 */
async function withAdvisoryLock<T>(
  db: Kysely<Database>,
  key: keyof typeof LOCK_KEYS,
  fn: (conn: Kysely<Database>) => Promise<T>,
): Promise<T> {
  return db.connection().execute(async (conn) => {
    await sql`select pg_advisory_lock(${sql.lit(LOCK_NAMESPACE)}, ${sql.lit(LOCK_KEYS[key])})`.execute(conn);
    try {
      return await fn(conn);
    } finally {
      await sql`select pg_advisory_unlock(${sql.lit(LOCK_NAMESPACE)}, ${sql.lit(LOCK_KEYS[key])})`.execute(conn);
    }
  });
}

interface Subscriber {
  onAgents: (agentIds: string[]) => void;
  onError?: ((err: Error) => void) | undefined;
}

/**
 * LISTEN/NOTIFY notifier. Publishing goes through the pool (`pg_notify`); listening holds one extra
 * connection while anyone is subscribed, reconnecting 1 s after it fails. A notification sent while the
 * listener is (re)connecting is missed: agents then find their work at their next claim (long-poll timeout).
 */
class PgNotifier implements Notifier {
  /** This store's id: its own notifications are not delivered back to it. */
  private readonly self = randomBytes(8).toString('hex');
  private readonly subs = new Set<Subscriber>();
  private client: pg.Client | null = null;
  private retry: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(
    private readonly db: Kysely<Database>,
    private readonly config: pg.ClientConfig,
  ) {}

  async publish(agentIds: readonly string[]): Promise<void> {
    let chunk: string[] = [];
    const send = async () => {
      if (chunk.length > 0)
        await sql`select pg_notify(${CHANNEL}, ${JSON.stringify({ from: this.self, agents: chunk })})`.execute(this.db);
      chunk = [];
    };
    for (const id of agentIds) {
      if (JSON.stringify({ from: this.self, agents: [...chunk, id] }).length > MAX_PAYLOAD) await send();
      chunk.push(id);
    }
    await send();
  }

  subscribe(onAgents: (agentIds: string[]) => void, onError?: (err: Error) => void): () => void {
    const sub: Subscriber = { onAgents, onError };
    this.subs.add(sub);
    if (!this.client && !this.retry && !this.closed) this.listen();
    return () => {
      this.subs.delete(sub);
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.retry) clearTimeout(this.retry);
    const client = this.client;
    this.client = null;
    await client?.end().catch(() => {});
  }

  private listen(): void {
    const client = new pg.Client(this.config);
    this.client = client;
    const fail = (err: Error) => {
      if (this.client !== client) return; // already replaced or closed
      this.client = null;
      void client.end().catch(() => {});
      for (const s of this.subs) s.onError?.(err);
      if (this.closed) return;
      this.retry = setTimeout(() => {
        this.retry = null;
        if (!this.closed && this.subs.size > 0) this.listen();
      }, 1_000);
      this.retry.unref();
    };
    client.on('notification', (m) => this.deliver(m.payload));
    client.on('error', fail);
    client.on('end', () => fail(new Error('the LISTEN connection to PostgreSQL closed')));
    client
      .connect()
      .then(() => client.query(`LISTEN ${CHANNEL}`))
      .catch(fail);
  }

  private deliver(payload: string | undefined): void {
    let msg: unknown;
    try {
      msg = JSON.parse(payload ?? '');
    } catch {
      return;
    }
    if (typeof msg !== 'object' || msg === null) return;
    const { from, agents } = msg as { from?: unknown; agents?: unknown };
    if (from === this.self || !Array.isArray(agents) || !agents.every((a) => typeof a === 'string')) return;
    for (const s of this.subs) s.onAgents(agents);
  }
}
