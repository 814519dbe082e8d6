/**
 * Whether the agent reaches its coordinator, judged by heartbeats, and the grace period during which an agent
 * that lost the coordinator keeps its executions running (Nomad's `heartbeat_grace` / Bacalhau's disconnected-node
 * timeout play the same role on the server side). Pure: time is passed in (epoch ms).
 */

/** What a failed heartbeat means. */
export interface HeartbeatFailure {
  /** Time since the last heartbeat that succeeded (or since the agent registered), ms. */
  sinceOkMs: number;
  /** This is the first failure of an outage. */
  first: boolean;
  /** No heartbeat succeeded for longer than the grace period: the coordinator has certainly given the leases away. */
  graceExceeded: boolean;
}

/** Tracks heartbeat outcomes. */
export class ConnectionMonitor {
  private lastOkAt: number;
  private outageStartedAt: number | null = null;
  private lastOutageEndedAt = Number.NEGATIVE_INFINITY;

  /** `gracePeriodMs` ≥ 0; `now` is when the agent registered (counts as a success). */
  constructor(
    readonly gracePeriodMs: number,
    now: number,
  ) {
    this.lastOkAt = now;
  }

  /** True while heartbeats fail. */
  get disconnected(): boolean {
    return this.outageStartedAt !== null;
  }

  /** A heartbeat (or registration) succeeded. Returns how long the outage it ends lasted, ms, or undefined if there was none. */
  succeeded(now: number): number | undefined {
    this.lastOkAt = now;
    if (this.outageStartedAt === null) return undefined;
    const lasted = now - this.outageStartedAt;
    this.outageStartedAt = null;
    this.lastOutageEndedAt = now;
    return lasted;
  }

  /** A heartbeat failed (coordinator unreachable, timed out, or refused it). */
  failed(now: number): HeartbeatFailure {
    const first = this.outageStartedAt === null;
    if (first) this.outageStartedAt = now;
    const sinceOkMs = now - this.lastOkAt;
    return { sinceOkMs, first, graceExceeded: sinceOkMs > this.gracePeriodMs };
  }

  /** Whether the coordinator was unreachable at some time in [since, now] (so a lease taken at `since` may be lost). */
  disconnectedSince(since: number): boolean {
    return this.outageStartedAt !== null || this.lastOutageEndedAt >= since;
  }
}
