/**
 * Availability: whether this agent takes new work now, from its offer's windows (cron expressions, evaluated
 * with croner in the offer's time zone), its idle policy (core/idle-policy.ts, fed by an owner-load sampler)
 * and whether it is shutting down. Precedence: draining > outside_window > owner_busy > available.
 *
 * A window expression means "available during every minute the expression matches" (a 6-field expression
 * with seconds: every minute in which it fires at least once). No windows means always. Windows only govern
 * starting work: an execution started inside a window may finish after it closes. The idle policy, in
 * contrast, winds running executions down when the owner comes back (see agent.ts).
 */
import { Cron } from 'croner';
import { INITIAL_IDLE_STATE, stepIdlePolicy, type IdleState } from '../core/index.js';
import type { Availability, Offer } from '../protocol/index.js';
import type { LoadSampler } from './owner-load.js';

const MINUTE_MS = 60_000;
/** How far ahead `until` is searched, ms (8 days: beyond a week, so weekly windows always have one). */
export const WINDOW_HORIZON_MS = 8 * 24 * 3_600_000;

/** A window expression croner refuses, or an unknown time zone. `expression` is what was given. */
export class InvalidWindowError extends Error {
  override readonly name = 'InvalidWindowError';
  constructor(
    readonly expression: string,
    message: string,
  ) {
    super(message);
  }
}

/** Throws InvalidWindowError unless `timezone` is an IANA time zone name this runtime knows. */
export function checkTimezone(timezone: string): void {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: timezone });
  } catch {
    throw new InvalidWindowError(
      timezone,
      `unknown time zone '${timezone}' (expected an IANA name such as Europe/Paris)`,
    );
  }
}

/** Where now stands against the windows: `until` (epoch ms) is when that changes, if within the horizon. */
export interface WindowStatus {
  inside: boolean;
  until?: number;
}

interface Compiled {
  expr: string;
  cron: Cron;
  withSeconds: boolean;
}

/**
 * Compiled availability windows (croner, 5- or 6-field expressions, day-of-month OR day-of-week as in
 * Vixie cron). Throws InvalidWindowError naming the first bad expression or time zone.
 */
export class WindowSchedule {
  private readonly compiled: Compiled[];
  private cache: { from: number; to: number; status: WindowStatus } | null = null;

  constructor(
    readonly windows: readonly string[],
    readonly timezone?: string,
  ) {
    if (timezone !== undefined) checkTimezone(timezone);
    this.compiled = windows.map((expr) => {
      try {
        const cron = new Cron(expr, { paused: true, timezone, mode: '5-or-6-parts' });
        return { expr, cron, withSeconds: expr.trim().split(/\s+/).length === 6 };
      } catch (err) {
        throw new InvalidWindowError(
          expr,
          `invalid availability window '${expr}': ${(err as Error).message.replace(/^CronPattern: /, '')}`,
        );
      }
    });
  }

  /** Whether any window matches the minute that starts at `minuteStart` (epoch ms, a multiple of 60 000). */
  private matches(minuteStart: number): boolean {
    return this.compiled.some((c) => {
      if (!c.withSeconds) return c.cron.match(new Date(minuteStart));
      const next = c.cron.nextRun(new Date(minuteStart - 1));
      return next !== null && next.getTime() < minuteStart + MINUTE_MS;
    });
  }

  /** Whether `now` (epoch ms) is inside a window, and until when (searched up to WINDOW_HORIZON_MS ahead). */
  status(now: number): WindowStatus {
    if (this.compiled.length === 0) return { inside: true };
    if (this.cache && now >= this.cache.from && now < this.cache.to) return this.cache.status;
    const start = Math.floor(now / MINUTE_MS) * MINUTE_MS;
    const inside = this.matches(start);
    let until: number | undefined;
    if (inside) {
      for (let m = start + MINUTE_MS; m <= start + WINDOW_HORIZON_MS; m += MINUTE_MS) {
        if (!this.matches(m)) {
          until = m;
          break;
        }
      }
    } else {
      // The next window opens at the earliest next run of any expression (a 6-field one: that run's minute).
      for (const c of this.compiled) {
        const next = c.cron.nextRun(new Date(now))?.getTime();
        if (next === undefined || next > start + WINDOW_HORIZON_MS) continue;
        const m = Math.floor(next / MINUTE_MS) * MINUTE_MS;
        if (until === undefined || m < until) until = m;
      }
    }
    const status: WindowStatus = until === undefined ? { inside } : { inside, until };
    // Valid until it changes; without a known change, recompute within the hour.
    this.cache = { from: start, to: until ?? start + 3_600_000, status };
    return status;
  }
}

/** Everything availability is decided from, at one instant. */
export interface AvailabilityInputs {
  draining: boolean;
  window: WindowStatus;
  /** The idle policy's verdict (always canStart when the policy is off). */
  idle: { canStart: boolean; reason: string | null };
}

/** Combines the inputs by precedence: draining > outside_window > owner_busy > available. Pure. */
export function combineAvailability(i: AvailabilityInputs, timezone?: string): Availability {
  const at = (ms: number) => formatInstant(ms, timezone);
  if (i.draining) return { state: 'draining', message: 'the agent is shutting down' };
  if (!i.window.inside) {
    return i.window.until === undefined
      ? { state: 'outside_window', message: 'outside its availability windows (none opens within 8 days)' }
      : {
          state: 'outside_window',
          message: `outside its availability windows; next opens ${at(i.window.until)}`,
          until: i.window.until,
        };
  }
  if (!i.idle.canStart) return { state: 'owner_busy', message: i.idle.reason ?? 'the owner is using the machine' };
  return i.window.until === undefined
    ? { state: 'available' }
    : {
        state: 'available',
        message: `inside an availability window until ${at(i.window.until)}`,
        until: i.window.until,
      };
}

/** `2025-01-07 23:00 Europe/Paris`-style local time of an instant (the agent's zone when `timezone` is unset). */
export function formatInstant(ms: number, timezone?: string): string {
  const parts = new Intl.DateTimeFormat('en-CA', {
    timeZone: timezone,
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
    hourCycle: 'h23',
    timeZoneName: 'short',
  }).formatToParts(new Date(ms));
  const get = (t: string) => parts.find((p) => p.type === t)?.value ?? '';
  return `${get('year')}-${get('month')}-${get('day')} ${get('hour')}:${get('minute')} ${timezone ?? get('timeZoneName')}`;
}

/** One evaluation: what to publish, and whether running executions must be wound down (owner came back). */
export interface AvailabilityEvaluation {
  availability: Availability;
  windDown: boolean;
  ownerLoad: number | null;
}

/**
 * Evaluates an offer's availability over time: samples the owner load (only when the idle policy is on),
 * steps the idle policy, checks the windows. Call it on every heartbeat tick.
 */
export class AvailabilityMonitor {
  private readonly schedule: WindowSchedule;
  private idle: IdleState = INITIAL_IDLE_STATE;

  /** Throws InvalidWindowError for a bad window or time zone. */
  constructor(
    private readonly offer: Offer,
    private readonly sampler: LoadSampler,
  ) {
    this.schedule = new WindowSchedule(offer.windows, offer.timezone);
  }

  /** Availability at `now` (epoch ms); `draining` when the agent is stopping. */
  async evaluate(now: number, draining: boolean): Promise<AvailabilityEvaluation> {
    let ownerLoad: number | null = null;
    let idle = { canStart: true, windDown: false, reason: null as string | null };
    if (this.offer.idlePolicy.enabled) {
      ownerLoad = await this.sampler.sample();
      const d = stepIdlePolicy(this.offer.idlePolicy, this.idle, ownerLoad, now);
      this.idle = d.state;
      idle = d;
    }
    const availability = combineAvailability(
      { draining, window: this.schedule.status(now), idle },
      this.offer.timezone,
    );
    return { availability, windDown: idle.windDown && !draining, ownerLoad };
  }
}
