/**
 * The databases a store suite runs over: SQLite (in memory) and PostgreSQL (a fresh database per test file,
 * named deqo_pg_<random>, created on the server DEQO_TEST_PG_URL points at and dropped afterwards).
 * Without a reachable PostgreSQL the PostgreSQL suites fail (scripts/test.sh starts it); they never skip.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { openPostgresStore, openSqliteStore, type Store } from '../../src/store/index.js';

/** Server and database the tests create their databases from. */
export const PG_ADMIN_URL = process.env.DEQO_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

async function admin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: PG_ADMIN_URL });
  try {
    await c.connect();
  } catch (err) {
    throw new Error(
      `PostgreSQL is needed at ${PG_ADMIN_URL} (set DEQO_TEST_PG_URL; scripts/test.sh starts it): ${(err as Error).message}`,
    );
  }
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

/** A new empty PostgreSQL database: its URL, and `drop()` (which also ends its open connections). */
export async function createPgDatabase(): Promise<{ url: string; name: string; drop(): Promise<void> }> {
  const name = `deqo_pg_${randomBytes(6).toString('hex')}`;
  await admin((c) => c.query(`CREATE DATABASE ${name}`));
  const url = new URL(PG_ADMIN_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    name,
    drop: () =>
      admin(async (c) => {
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      }),
  };
}

/** Empties every Deqo table of a PostgreSQL database (keeps the schema and the migration records). */
async function truncateAll(url: string): Promise<void> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const { rows } = await c.query<{ tablename: string }>(
      "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename NOT LIKE 'kysely_%'",
    );
    if (rows.length > 0)
      await c.query(`TRUNCATE ${rows.map((r) => `"${r.tablename}"`).join(', ')} RESTART IDENTITY CASCADE`);
  } finally {
    await c.end();
  }
}

/** One database a suite runs over. Call setup() in beforeAll and teardown() in afterAll. */
export interface StoreKind {
  name: 'sqlite' | 'postgres';
  setup(): Promise<void>;
  /** A store over an empty database (the previous test's store must be closed). */
  open(): Promise<Store>;
  /** PostgreSQL: the database's URL (for opening more stores on it); SQLite: null. */
  url(): string | null;
  teardown(): Promise<void>;
}

const sqlite: StoreKind = {
  name: 'sqlite',
  async setup() {},
  open: () => openSqliteStore(':memory:'),
  url: () => null,
  async teardown() {},
};

function postgres(): StoreKind {
  let db: Awaited<ReturnType<typeof createPgDatabase>> | null = null;
  const need = () => {
    if (!db) throw new Error('StoreKind postgres: call setup() first');
    return db;
  };
  return {
    name: 'postgres',
    async setup() {
      db = await createPgDatabase();
    },
    async open() {
      const store = await openPostgresStore(need().url);
      await truncateAll(need().url);
      return store;
    },
    url: () => need().url,
    async teardown() {
      await db?.drop();
      db = null;
    },
  };
}

/** Both databases, for `describe.each(storeKinds())`. */
export function storeKinds(): StoreKind[] {
  return [sqlite, postgres()];
}
