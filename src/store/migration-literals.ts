/** Names and SQL literals that migrations and the queries using their partial indexes share. */

/** Which database the migrations run on. */
export type Dialect = 'sqlite' | 'postgres';

/** Executions that hold a provider's place in a task: one per (task, provider) among these (migrations 005, 010). */
export const REPLICA_STATES = "('assigned', 'running', 'reported', 'valid', 'invalid')";

/** Open jobs and tasks (queued, running): the literal partial indexes and the queries using them share (011). */
export const OPEN_STATES = "('queued', 'running')";
