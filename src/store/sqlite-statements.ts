/**
 * A cache of prepared statements for Kysely over better-sqlite3. Kysely calls `prepare(sql)` for every query
 * and better-sqlite3 compiles the SQL anew each time; in the dispatch benchmark that compilation was about
 * 14 % of the coordinator's CPU (`npm run bench -- dispatch --profile`). Statements are kept by SQL text, the
 * most recently used `max` of them (queries with `in (?, ?, …)` lists differ by list length).
 */
import type { Database as BetterSqlite, Statement } from 'better-sqlite3';
import type { SqliteDatabase } from 'kysely';

/** Statements kept by default (the store issues a few hundred distinct SQL texts). */
export const STATEMENT_CACHE_SIZE = 1_000;

/** Wraps `db` so that `prepare` reuses a statement prepared before for the same SQL (unless it is busy iterating). */
export function withStatementCache(db: BetterSqlite, max = STATEMENT_CACHE_SIZE): SqliteDatabase {
  const cache = new Map<string, Statement>();
  return {
    close: () => {
      cache.clear();
      db.close();
    },
    prepare(sql: string) {
      const hit = cache.get(sql);
      cache.delete(sql);
      const stmt = hit && !hit.busy ? hit : db.prepare(sql);
      cache.set(sql, stmt); // most recently used last
      if (cache.size > max) cache.delete(cache.keys().next().value!);
      return stmt;
    },
  };
}
