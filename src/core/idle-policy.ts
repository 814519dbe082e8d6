/**
 * The desktop idle policy (HTCondor's default START / SUSPEND / CONTINUE policy, condor_config
 * "UWCS desktop" settings): start work only while the owner's own (non-job) CPU load is low; when the owner
 * comes back (load at or above `suspendAbove` for longer than `suspendAfterSeconds`) take no work and wind
 * down what runs; take work again once the load stayed below `startBelow` for `resumeAfterSeconds`.
 * Pure: the caller samples the load and passes the time (ms).
 */
import type { IdlePolicy } from '../protocol/index.js';

/** Where the policy stands. `busySince` / `calmSince` are ms timestamps of the current streak. */
export interface IdleState {
  suspended: boolean;
  busySince: number | null;
  calmSince: number | null;
}

export const INITIAL_IDLE_STATE: Readonly<IdleState> = Object.freeze({
  suspended: false,
  busySince: null,
  calmSince: null,
});

/** What the agent should do now: start new executions? stop (wind down) running ones? */
export interface IdleDecision {
  state: IdleState;
  canStart: boolean;
  windDown: boolean;
  reason: string | null;
}

/** Advances the policy with one load sample (`ownerLoad` in [0, 1] of the whole machine) at `now` ms. */
export function stepIdlePolicy(p: IdlePolicy, s: IdleState, ownerLoad: number, now: number): IdleDecision {
  if (!p.enabled) return { state: INITIAL_IDLE_STATE, canStart: true, windDown: false, reason: null };
  const pct = (x: number) => `${Math.round(x * 100)}%`;
  if (s.suspended) {
    const calmSince = ownerLoad < p.startBelow ? (s.calmSince ?? now) : null;
    if (calmSince !== null && now - calmSince >= p.resumeAfterSeconds * 1000) {
      return {
        state: { suspended: false, busySince: null, calmSince: null },
        canStart: true,
        windDown: false,
        reason: null,
      };
    }
    return {
      state: { suspended: true, busySince: null, calmSince },
      canStart: false,
      windDown: true,
      reason: `owner active (load ${pct(ownerLoad)}); resumes after ${p.resumeAfterSeconds} s below ${pct(p.startBelow)}`,
    };
  }
  const busySince = ownerLoad >= p.suspendAbove ? (s.busySince ?? now) : null;
  if (busySince !== null && now - busySince >= p.suspendAfterSeconds * 1000) {
    return {
      state: { suspended: true, busySince: null, calmSince: null },
      canStart: false,
      windDown: true,
      reason: `owner active (load ${pct(ownerLoad)} ≥ ${pct(p.suspendAbove)} for ${p.suspendAfterSeconds} s)`,
    };
  }
  const canStart = ownerLoad <= p.startBelow;
  return {
    state: { suspended: false, busySince, calmSince: null },
    canStart,
    windDown: false,
    reason: canStart ? null : `owner load ${pct(ownerLoad)} is above ${pct(p.startBelow)}`,
  };
}
