/**
 * What coordinators sharing one database need from each other: a lock that makes a step run on one of them
 * at a time, and a signal that tells the others which agents just got work. On SQLite (one coordinator per
 * database) both are trivial; PostgreSQL implements them with advisory locks and LISTEN/NOTIFY (postgres.ts).
 */

/** Steps serialized across coordinators: `schedule` = one scheduling round (snapshot → plan → apply). */
export type ExclusiveStep = 'schedule';

/** Tells coordinators sharing the database which agents received new executions. */
export interface Notifier {
  /** Announces that `agentIds` have new assigned executions (no-op for an empty list). */
  publish(agentIds: readonly string[]): Promise<void>;
  /**
   * Calls `onAgents` with the agent ids other coordinators announce (never this store's own), and `onError`
   * when listening failed (it retries by itself). Returns a function that unsubscribes.
   */
  subscribe(onAgents: (agentIds: string[]) => void, onError?: (err: Error) => void): () => void;
  /** Stops listening. */
  close(): Promise<void>;
}

/** Cross-coordinator coordination over the store's database. */
export interface Coordination {
  notifier: Notifier;
  /**
   * Runs `fn` while no other coordinator on this database runs the same step, waiting for it to finish
   * first. Returns what `fn` returns; throws what it throws.
   */
  exclusive<T>(step: ExclusiveStep, fn: () => Promise<T>): Promise<T>;
}

/** A notifier for a database with one coordinator: there is nobody else to tell. */
const NO_ONE_ELSE: Notifier = {
  async publish() {},
  subscribe() {
    return () => {};
  },
  async close() {},
};

/** Coordination for a database only one coordinator uses (SQLite): every step runs at once, no signals. */
export const SINGLE_COORDINATOR: Coordination = {
  notifier: NO_ONE_ELSE,
  exclusive: (_step, fn) => fn(),
};
