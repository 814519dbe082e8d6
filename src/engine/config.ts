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
}

export const DEFAULT_ENGINE_CONFIG: Readonly<EngineConfig> = Object.freeze({
  heartbeatIntervalMs: 5_000,
  leaseTtlMs: 15_000,
  agentTtlMs: 15_000,
  claimTimeoutMs: 30_000,
  tickMs: 1_000,
  predictorRefreshMs: 10_000,
});
