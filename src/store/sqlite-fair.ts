/**
 * Kysely's SQLite dialect with a fair connection queue. SQLite has one connection; Kysely's own mutex wakes
 * every waiter on each release and hands the connection on inside the same microtask run. better-sqlite3 is
 * synchronous, so under load the coordinator then runs queued database work for whole seconds without going
 * back to the event loop: it accepted about one TCP connection per second and read no new request, and agents'
 * reports arrived after their leases had expired (`npm run bench -- dispatch`, docs/benchmarks.md).
 * Here waiters queue first-in first-out, and a contended hand-over goes through `setImmediate`, so the event
 * loop polls I/O between two statements (or two transactions). An uncontended acquire costs nothing extra.
 */
import {
  SqliteDialect,
  type DatabaseConnection,
  type Driver,
  type QueryCompiler,
  type TransactionSettings,
} from 'kysely';

/** A Driver that serializes acquisitions of an inner single-connection driver fairly (see the file comment). */
class FairDriver implements Driver {
  private held = false;
  private readonly waiters: Array<() => void> = [];

  constructor(private readonly inner: Driver) {}

  init(): Promise<void> {
    return this.inner.init();
  }

  async acquireConnection(): Promise<DatabaseConnection> {
    if (this.held) await new Promise<void>((resolve) => this.waiters.push(resolve));
    else this.held = true;
    return this.inner.acquireConnection();
  }

  async releaseConnection(connection: DatabaseConnection): Promise<void> {
    await this.inner.releaseConnection(connection);
    const next = this.waiters.shift();
    if (next)
      setImmediate(next); // stays held: ownership passes to `next`
    else this.held = false;
  }

  beginTransaction(c: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    return this.inner.beginTransaction(c, settings);
  }
  commitTransaction(c: DatabaseConnection): Promise<void> {
    return this.inner.commitTransaction(c);
  }
  rollbackTransaction(c: DatabaseConnection): Promise<void> {
    return this.inner.rollbackTransaction(c);
  }
  async savepoint(c: DatabaseConnection, name: string, compile: QueryCompiler['compileQuery']): Promise<void> {
    await this.inner.savepoint?.(c, name, compile);
  }
  async rollbackToSavepoint(
    c: DatabaseConnection,
    name: string,
    compile: QueryCompiler['compileQuery'],
  ): Promise<void> {
    await this.inner.rollbackToSavepoint?.(c, name, compile);
  }
  async releaseSavepoint(c: DatabaseConnection, name: string, compile: QueryCompiler['compileQuery']): Promise<void> {
    await this.inner.releaseSavepoint?.(c, name, compile);
  }
  destroy(): Promise<void> {
    return this.inner.destroy();
  }
}

/** SqliteDialect whose driver queues for the connection fairly (first in, first out, yielding to I/O). */
export class FairSqliteDialect extends SqliteDialect {
  override createDriver(): Driver {
    return new FairDriver(super.createDriver());
  }
}
