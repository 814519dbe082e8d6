/**
 * Credibility-based fault tolerance, after L. Sarmenta, "Sabotage-tolerance mechanisms for volunteer computing
 * systems", Future Generation Computer Systems 18(4), 2002 (§4–§5):
 *
 * - A provider's credibility is the probability that its next result is correct. With an assumed upper bound `f` on
 *   the share of saboteurs, a provider nothing has checked has credibility 1 − f; one whose results were confirmed `k`
 *   times (spot-checks passed, or results confirmed by others) has credibility 1 − f / ((1 − f)·k·e) — Sarmenta's bound
 *   for a saboteur that survived k checks with blacklisting (eq. 7: the saboteur's best sabotage rate s maximizes
 *   s(1 − s)^k ≤ 1/(k·e)). A provider caught lying has credibility 0 (blacklisted).
 * - The credibility of a group of agreeing results is the probability that the group is right given every group
 *   observed, assuming the worst case that wrong results agree with each other (collusion) (eq. 9):
 *     Cr(Ga) = P_T(Ga)·Π_{b≠a} P_F(Gb) / (Π_b P_F(Gb) + Σ_b P_T(Gb)·Π_{c≠b} P_F(Gc)),
 *   with P_T(G) = Π c_i and P_F(G) = Π (1 − c_i) over its members.
 * - A task is accepted when its best group's credibility reaches θ = 1 − ε, ε being the error bound the buyer asked
 *   for; otherwise more replicas are placed.
 *
 * Voting alone cannot meet collusion; the placement rules (scheduler.ts: distinct accounts, diverse cohorts and
 * network prefixes, probation, random placement), spot-checks and backtracking are what bound it.
 */

/** Settings of the credibility model. */
export interface CredibilityConfig {
  /** Sarmenta's f: the assumed upper bound on the share of saboteurs among providers (0 < f < 1). */
  saboteurFraction: number;
  /** Confirmed results (in a row, none invalid since) from which a provider leaves probation. */
  establishedAfter: number;
  /** Sarmenta's q: the share of placements that are spot-checks (canaries with a known answer). */
  spotCheckRate: number;
  /** Confirmations an operator's vouch counts as (a provider the operator runs or vetted). */
  vouchedConfirmations: number;
}

/** Defaults: f = 0.2 (the target of 20% cheaters), probation for 10 confirmed results, 5% spot-checks. */
export const DEFAULT_CREDIBILITY: Readonly<CredibilityConfig> = Object.freeze({
  saboteurFraction: 0.2,
  establishedAfter: 10,
  spotCheckRate: 0.05,
  vouchedConfirmations: 100,
});

/**
 * Checks a credibility configuration: 0 < saboteurFraction < 1, 0 ≤ spotCheckRate < 1, establishedAfter and
 * vouchedConfirmations whole numbers ≥ 1. Throws RangeError naming the field and what it expected.
 */
export function checkCredibilityConfig(c: CredibilityConfig): CredibilityConfig {
  const bad = (field: keyof CredibilityConfig, expected: string) =>
    new RangeError(`credibility.${field} must be ${expected}, got ${String(c[field])}`);
  if (!(c.saboteurFraction > 0 && c.saboteurFraction < 1))
    throw bad('saboteurFraction', 'a fraction above 0 and below 1');
  if (!(c.spotCheckRate >= 0 && c.spotCheckRate < 1))
    throw bad('spotCheckRate', 'a fraction from 0 up to (not incl.) 1');
  if (!Number.isInteger(c.establishedAfter) || c.establishedAfter < 1)
    throw bad('establishedAfter', 'a whole number ≥ 1');
  if (!Number.isInteger(c.vouchedConfirmations) || c.vouchedConfirmations < 1)
    throw bad('vouchedConfirmations', 'a whole number ≥ 1');
  return c;
}

/** What the credibility model reads of a provider. */
export interface Standing {
  /** Results confirmed in a row (spot-checks passed, results confirmed by others); reset by an invalid result. */
  confirmed: number;
  /** The operator vouched for this provider. */
  vouched: boolean;
  /** Caught lying (a failed spot-check, or outvoted after backtracking): blacklisted. */
  caught: boolean;
}

/** A newcomer's standing: nothing confirmed, not vouched, not caught. */
export const NEWCOMER: Readonly<Standing> = Object.freeze({ confirmed: 0, vouched: false, caught: false });

/** The confirmations a standing counts (a vouch counts as `vouchedConfirmations`). */
function confirmations(s: Standing, c: CredibilityConfig): number {
  return s.vouched ? Math.max(s.confirmed, c.vouchedConfirmations) : s.confirmed;
}

/** A provider's credibility in [0, 1): 0 when caught, 1 − f unconfirmed, 1 − f/((1 − f)·k·e) after k confirmations. */
export function credibility(s: Standing, c: CredibilityConfig = DEFAULT_CREDIBILITY): number {
  if (s.caught) return 0;
  const f = c.saboteurFraction;
  const k = confirmations(s, c);
  if (k <= 0) return 1 - f;
  return Math.max(1 - f, 1 - f / ((1 - f) * k * Math.E));
}

/** True when a provider is off probation: not caught, and vouched for or confirmed `establishedAfter` times in a row. */
export function isEstablished(s: Standing, c: CredibilityConfig = DEFAULT_CREDIBILITY): boolean {
  return !s.caught && confirmations(s, c) >= c.establishedAfter;
}

/**
 * Sarmenta's group credibility (eq. 9) of group `index` among `groups`, each given as its members' credibilities.
 * Returns 0 for an empty group. Assumes the worst case that wrong results agree with each other.
 */
export function groupCredibility(groups: ReadonlyArray<readonly number[]>, index: number): number {
  if ((groups[index]?.length ?? 0) === 0) return 0;
  const pt = groups.map((g) => g.reduce((p, c) => p * c, 1));
  const pf = groups.map((g) => g.reduce((p, c) => p * (1 - c), 1));
  const allFalse = pf.reduce((p, x) => p * x, 1);
  const othersFalse = (i: number) => pf.reduce((p, x, j) => (j === i ? p : p * x), 1);
  const denominator = allFalse + pt.reduce((s, t, i) => s + t * othersFalse(i), 0);
  return denominator === 0 ? 0 : (pt[index]! * othersFalse(index)) / denominator;
}

/**
 * The fewest agreeing results from providers of credibility `c` that reach credibility 1 − `maxError`
 * (c^m / (c^m + (1 − c)^m) ≥ 1 − ε), capped at `cap`. For quotes: the replicas an error bound costs when all agree.
 */
export function replicasFor(maxError: number, c: number, cap = 64): number {
  for (let m = 1; m <= cap; m++)
    if (groupCredibility([Array.from({ length: m }, () => c)], 0) >= 1 - maxError) return m;
  return cap;
}

/** Length of a registration cohort, ms: provider accounts created within the same hour are one cohort. */
export const COHORT_MS = 3_600_000;

/** The registration cohort of an account created at `createdAt` (epoch ms). */
export function cohortOf(createdAt: number): number {
  return Math.floor(createdAt / COHORT_MS);
}

/**
 * The network prefix of an address as the coordinator sees it, for placement diversity: an IPv4 address's /24
 * (`203.0.113`), an IPv6 address's /48 (`2001:db8:1`); IPv4-mapped IPv6 counts as IPv4. Loopback and unparsable
 * addresses give '' (no information: every agent on one machine would otherwise look like one party).
 */
export function networkPrefixOf(ip: string | undefined): string {
  if (!ip) return '';
  const v4 = /^(?:::ffff:)?(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/i.exec(ip);
  if (v4) return v4[1] === '127' ? '' : `${v4[1]}.${v4[2]}.${v4[3]}`;
  if (ip === '::1' || !ip.includes(':')) return '';
  return ipv6Groups(ip).slice(0, 3).join(':');
}

/** The eight groups of an IPv6 address (`::` expanded), lower case, leading zeros dropped. */
export function ipv6Groups(ip: string): string[] {
  const [head = '', tail = ''] = ip.toLowerCase().split('::');
  const left = head === '' ? [] : head.split(':');
  const right = tail === '' ? [] : tail.split(':');
  const groups = ip.includes('::')
    ? [...left, ...Array<string>(Math.max(0, 8 - left.length - right.length)).fill('0'), ...right]
    : left;
  return groups.map((g) => g.replace(/^0+(?=.)/, ''));
}
