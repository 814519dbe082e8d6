/**
 * The simulated world: providers (machines, behaviour, reputation record) and the strategies the simulation compares.
 * Nothing here decides anything the network decides; placement, verification, reputation and spot-check rules are
 * core's (simulate.ts, spotchecks.ts).
 */
import { newReputation, type Reputation } from '../core/index.js';
import { between, intBetween, shuffled, type Random } from './prng.js';

/**
 * How the providers behave. `liars` of the `providers` lie: after `honestFor` results of their own (0: from the
 * first), each result is wrong with probability `corruptRate`; with `collude` every liar returns the same wrong hash
 * for a task, otherwise each liar its own. Liars with `honestFor` 0 register after the honest warm-up (new accounts,
 * as in the adversarial suite); sleepers (`honestFor` > 0) are there from the start, earn their standing honestly in
 * the warm-up, and stay honest for `honestFor` more results before they lie.
 */
export interface Strategy {
  name: string;
  providers: number;
  liars: number;
  collude: boolean;
  honestFor: number;
}

/** The strategies of the "Proof" item (cheater shares of 20%; 2 of 5 for a party with two accounts). */
export const STRATEGIES: Readonly<Record<string, Strategy>> = Object.freeze({
  honest: { name: 'honest', providers: 50, liars: 0, collude: false, honestFor: 0 },
  independent: { name: 'independent', providers: 50, liars: 10, collude: false, honestFor: 0 },
  colluding: { name: 'colluding', providers: 50, liars: 10, collude: true, honestFor: 0 },
  'collude-2-of-5': { name: 'collude-2-of-5', providers: 5, liars: 2, collude: true, honestFor: 0 },
  sleepers: { name: 'sleepers', providers: 50, liars: 10, collude: false, honestFor: 20 },
  'sleepers-colluding': { name: 'sleepers-colluding', providers: 50, liars: 10, collude: true, honestFor: 20 },
});

/** One simulated provider: one agent on one machine (`cores`, `speed` × the base runtime). */
export interface Provider {
  index: number;
  id: string;
  agentId: string;
  cores: number;
  speed: number;
  liar: boolean;
  /** Online from the start (honest providers and sleepers) or only after the warm-up (new liar accounts). */
  fromStart: boolean;
  /** Core's reputation record, moved only by core's rules (reputation.ts applyOutcome). */
  rep: Reputation;
  running: number;
  /** Results computed since the warm-up (a sleeper lies after `honestFor` of them). */
  results: number;
  /** Start times of its executions, ms (the daily quota counts those of the last 24 h). */
  starts: number[];
  startsHead: number;
}

/** Providers for a strategy: 1–4 cores, speed in [0.6, 1.6); the liars are a random subset. */
export function makeProviders(world: Random, s: Strategy): Provider[] {
  const liars = new Set(shuffled(world, [...Array(s.providers).keys()]).slice(0, s.liars));
  return Array.from({ length: s.providers }, (_, i) => {
    const id = `p${String(i).padStart(4, '0')}`;
    const liar = liars.has(i);
    return {
      index: i,
      id,
      agentId: `a${id.slice(1)}`,
      cores: intBetween(world, 1, 4),
      speed: between(world, 0.6, 1.6),
      liar,
      fromStart: !liar || s.honestFor > 0,
      rep: newReputation(),
      running: 0,
      results: 0,
      starts: [],
      startsHead: 0,
    };
  });
}

/** The honest result hash of a computation (a replay computes the same thing as its original). */
export const honestHash = (computation: number): string => `ok:${computation}`;

/**
 * The result hash `p` reports for `computation`: the honest one, or (a liar past its honest phase, with probability
 * `corruptRate`) a wrong one shared by colluders or its own. Liars lie only in the measured phase (`measuring`);
 * `p.results` counts the results of that phase.
 */
export function resultOf(
  p: Provider,
  s: Strategy,
  computation: number,
  corruptRate: number,
  chance: Random,
  measuring: boolean,
): string {
  if (!measuring) return honestHash(computation);
  p.results += 1;
  const lies = p.liar && p.results > s.honestFor && chance() < corruptRate;
  if (!lies) return honestHash(computation);
  return s.collude ? `bad:${computation}` : `bad:${computation}:${p.id}`;
}

/** Executions `p` may still start today (daily quota − starts in the last 24 h, core's quota). */
export function quotaLeft(p: Provider, now: number): number {
  const DAY = 86_400_000;
  while (p.startsHead < p.starts.length && p.starts[p.startsHead]! <= now - DAY) p.startsHead += 1;
  return p.rep.dailyQuota - (p.starts.length - p.startsHead);
}
