/**
 * A small seeded pseudo-random generator so simulation runs are reproducible. mulberry32 by Tommy Ettinger
 * (public domain), as written in bryc's collection of JavaScript PRNGs:
 * https://github.com/bryc/code/blob/master/jshash/PRNGs.md#mulberry32 — 32-bit state, period 2³².
 * Good enough to draw simulation events; not for anything that needs unpredictability.
 */

/** A generator of floats in [0, 1). */
export type Random = () => number;

/** mulberry32 seeded with the low 32 bits of `seed`. */
export function mulberry32(seed: number): Random {
  let a = seed | 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** An integer in [min, max], both included. */
export function intBetween(random: Random, min: number, max: number): number {
  return min + Math.floor(random() * (max - min + 1));
}

/** A float in [min, max). */
export function between(random: Random, min: number, max: number): number {
  return min + random() * (max - min);
}

/** A shuffled copy of `xs` (Fisher–Yates). */
export function shuffled<T>(random: Random, xs: readonly T[]): T[] {
  const out = [...xs];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}
