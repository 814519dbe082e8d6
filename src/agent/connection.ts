/**
 * Whether the agent reaches its coordinator, judged by heartbeats, and the grace period during which an agent
 * that lost the coordinator keeps its executions running (Nomad's `heartbeat_grace` / Bacalhau's disconnected-node
 * timeout play the same role on the server side). Time is passed in (epoch ms).
 *
 * The coordinators an agent knows (`Coordinators`): every coordinator of one network shares its database, so a
 * lease taken through one may be renewed and reported through another. The agent talks to one at a time and
 * moves on to the next when it cannot be reached.
 */
import type { Logger } from 'pino';
import { ApiError, type DeqoClient } from '../client/index.js';

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

/**
 * Whether a request failure says the coordinator it was sent to is out of reach, so another coordinator of the
 * network may answer: it could not be connected to or did not answer in time (ApiError `unreachable`), or it
 * answered with a server error (5xx). Refusals (4xx) are answers: another coordinator would give the same.
 */
export function outOfReach(err: unknown): boolean {
  return err instanceof ApiError && (err.code === 'unreachable' || err.status >= 500);
}

/**
 * The coordinators an agent may talk to, in the order given (`deqo agent --coordinator URL,URL`), one current at a
 * time. A request that fails out of reach moves the agent on to the next one (round robin), logged; it stays there
 * while it answers. Several requests failing at once move it on once.
 */
export class Coordinators {
  private index = 0;
  /** The current coordinator answered since the agent moved to it (a move away from one that never did is not news). */
  private answered = false;

  /** `clients`: one per coordinator URL, at least one (RangeError for none); `onSwitch` runs after each move. */
  constructor(
    readonly clients: readonly DeqoClient[],
    private readonly log: Logger,
    private readonly onSwitch: () => void = () => undefined,
  ) {
    if (clients.length === 0) throw new RangeError('an agent needs at least one coordinator');
  }

  /** The coordinator requests go to now. */
  get current(): DeqoClient {
    return this.clients[this.index]!;
  }

  /** Every coordinator's base URL, in order. */
  get urls(): string[] {
    return this.clients.map((c) => c.baseUrl);
  }

  /**
   * A request sent to `used` failed with `err`. When the failure is out of reach (outOfReach) and `used` is still
   * the current coordinator, moves on to the next and logs it. Returns whether the next request goes to another
   * coordinator than `used` (false with a single coordinator, or for a refusal).
   */
  failed(used: DeqoClient, err: unknown): boolean {
    if (this.clients.length < 2 || !outOfReach(err)) return false;
    if (this.current === used) {
      this.index = (this.index + 1) % this.clients.length;
      // Logged as a warning when it leaves a coordinator that answered; while none answers, quietly (debug).
      this.log[this.answered ? 'warn' : 'debug'](
        { from: used.baseUrl, to: this.current.baseUrl, err: (err as Error).message },
        `coordinator ${used.baseUrl} out of reach: switching to ${this.current.baseUrl}`,
      );
      this.answered = false;
      this.onSwitch();
    }
    return this.current !== used;
  }

  /**
   * Sends `request` to the current coordinator, and while it fails out of reach, to the next, each coordinator
   * at most once. Resolves with the first answer; throws the last error (or the first one that is not out of reach,
   * e.g. a refusal or an abort). `request` runs once per attempt, so it should create its own timeout signal.
   */
  async call<T>(request: (client: DeqoClient) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const client = this.current;
      try {
        const answer = await request(client);
        if (client === this.current) this.answered = true;
        return answer;
      } catch (err) {
        if (attempt >= this.clients.length || !this.failed(client, err)) throw err;
      }
    }
  }
}
