/**
 * Fault rules: when a task that lost an execution may be placed again, and how an agent's silence is read.
 * Pure functions of times in epoch ms.
 */

/** Retry backoff settings, ms. */
export interface RetryBackoff {
  baseMs: number;
  maxMs: number;
}

/**
 * How long after its latest provider-side failure (lost lease, agent error) a task waits before the scheduler
 * places it again, given `failures` such failures so far: base · 2^(failures−1), capped at max; 0 with none.
 * Exponential and capped like Nomad's reschedule policy (`delay_function = "exponential"`, `max_delay`), with
 * shorter defaults because Deqo tasks are short. No jitter: retries are per task, not a thundering herd.
 */
export function retryDelayMs(failures: number, b: RetryBackoff): number {
  if (failures <= 0) return 0;
  return Math.min(b.maxMs, b.baseMs * 2 ** Math.min(failures - 1, 30));
}

/** Whether a task with `failures` provider-side failures, the latest finished at `lastFailureAt`, may be placed at `now`. */
export function retryDue(failures: number, lastFailureAt: number | null, now: number, b: RetryBackoff): boolean {
  return failures === 0 || lastFailureAt === null || now >= lastFailureAt + retryDelayMs(failures, b);
}

/**
 * The agent's default grace period, ms (10 min): how long it keeps running executions while no heartbeat reaches
 * the coordinator (`deqo agent --grace-period`). The one value both sides use: the agent stops its work past it,
 * and the coordinator reads an agent silent that long as `offline` (agentStatus).
 */
export const DEFAULT_AGENT_GRACE_MS = 10 * 60_000;

/**
 * How the coordinator reads an agent's silence. `online`: heard within `suspectAfterMs` (three heartbeats by
 * default); `suspect`: silent longer — it gets no new work, and its leases run out on their own TTL, but it may
 * only have lost the coordinator and still be running them; `offline`: silent past `offlineAfterMs` (the agent's
 * grace period), after which the agent itself has stopped everything.
 */
export type AgentStatus = 'online' | 'suspect' | 'offline';

/** The status of an agent last seen at `lastSeenAt` (ms). */
export function agentStatus(
  lastSeenAt: number,
  now: number,
  suspectAfterMs: number,
  offlineAfterMs = DEFAULT_AGENT_GRACE_MS,
): AgentStatus {
  const silent = now - lastSeenAt;
  if (silent <= suspectAfterMs) return 'online';
  return silent <= Math.max(offlineAfterMs, suspectAfterMs) ? 'suspect' : 'offline';
}

/**
 * Whether an agent's claim that found nothing should ask for a scheduling round: only when the scheduler did not count
 * the agent online before it (last seen past `agentTtlMs`), so its room is new to every round. An online agent's room
 * is already seen by the rounds each submit, report, registration and tick runs; a round per empty long poll cost
 * 1,000 idle agents ~50 rounds per second, each reading every online agent.
 */
export function emptyClaimWantsRound(lastSeenAt: number, now: number, agentTtlMs: number): boolean {
  return agentStatus(lastSeenAt, now, agentTtlMs) !== 'online';
}

/** The engine timings the stall rule reads, ms (the engine's EngineConfig has them). */
export interface StallTimings {
  /** How often agents heartbeat (each heartbeat renews every lease the agent holds). */
  heartbeatIntervalMs: number;
  /** How far each renewal extends a lease. */
  leaseTtlMs: number;
  /** Period of the reaper loop. */
  tickMs: number;
}

/**
 * The longest gap between two reaper rounds that cannot have let a healthy agent's lease run out unseen, ms:
 * the lease TTL minus one heartbeat interval. An agent renews every `heartbeatIntervalMs`, so while the
 * coordinator handles requests each lease is at least `leaseTtlMs − heartbeatIntervalMs` from its end; only a
 * coordinator that handled nothing for longer (event loop blocked, VM paused, database unreachable) can find
 * leases of live agents expired. Never below two reaper periods, so an ordinary late tick is not a stall.
 */
export function stallThresholdMs(t: StallTimings): number {
  return Math.max(t.leaseTtlMs - t.heartbeatIntervalMs, 2 * t.tickMs);
}

/**
 * Whether the coordinator stalled between its previous reaper round that completed, at `previousAt` (epoch ms;
 * null: none yet), and a round starting `now`: returns the stall's length in ms (the whole gap), or 0 when the
 * gap is within `stallThresholdMs`. After a stall the leases it let run out belong to agents that could not reach
 * it, not to dead ones, so the engine gives them the restart grace before reaping (engine/leases.ts).
 */
export function coordinatorStallMs(previousAt: number | null, now: number, t: StallTimings): number {
  if (previousAt === null) return 0;
  const gap = now - previousAt;
  return gap > stallThresholdMs(t) ? gap : 0;
}
