/** Timing settings of the engine, all in milliseconds. Defaults follow DESIGN.md (Nomad/Bacalhau practice). */
export interface EngineConfig {
  /** How often agents heartbeat. */
  heartbeatIntervalMs: number;
  /** A lease lasts this long after each renewal: three missed heartbeats end it. */
  leaseTtlMs: number;
  /** An agent not heard from for this long is offline for the scheduler. */
  agentTtlMs: number;
  /** An assigned execution not claimed within this long is taken back. */
  claimTimeoutMs: number;
  /** Period of the scheduler and reaper loops (they also run on events). */
  tickMs: number;
  /** How often the runtime predictor is rebuilt from finished executions. */
  predictorRefreshMs: number;
  /**
   * When a coordinator starts, every running lease is extended to at least now + this, so agents that lost
   * the coordinator while it was down can reconnect and report instead of having their work thrown away
   * (Nomad's failover heartbeat TTL after a leader election plays the same role).
   */
  restartGraceMs: number;
  /** First wait before a task that lost or errored an execution is placed again; doubles per retry. */
  retryBackoffMs: number;
  /** Longest wait before a retry. */
  retryBackoffMaxMs: number;
  /**
   * How long after its job's timeout a running execution's lease may still be renewed (to package and upload its
   * result). Past claim + timeout + this grace the lease stops renewing: a provider that holds work without reporting
   * (squatting) loses it as `deadline_exceeded`, an error against it.
   */
  deadlineGraceMs: number;
}

export const DEFAULT_ENGINE_CONFIG: Readonly<EngineConfig> = Object.freeze({
  heartbeatIntervalMs: 5_000,
  leaseTtlMs: 15_000,
  agentTtlMs: 15_000,
  claimTimeoutMs: 30_000,
  tickMs: 1_000,
  predictorRefreshMs: 10_000,
  restartGraceMs: 60_000,
  retryBackoffMs: 2_000,
  retryBackoffMaxMs: 60_000,
  deadlineGraceMs: 10 * 60_000,
});
