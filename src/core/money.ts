/**
 * Credits. The API speaks credits as decimal numbers; the ledger counts integer micro-credits (1 credit =
 * 1,000,000 µcr) so sums are exact. Safe up to Number.MAX_SAFE_INTEGER µcr (about 9 × 10⁹ credits). Text for
 * people: format.ts.
 */

/** Micro-credits per credit. */
export const MICRO_PER_CREDIT = 1_000_000;

/** Credits → micro-credits, rounded to the nearest micro-credit. */
export function toMicro(credits: number): number {
  return Math.round(credits * MICRO_PER_CREDIT);
}

/** Micro-credits → credits (exact to 6 decimal places). */
export function fromMicro(micro: number): number {
  return micro / MICRO_PER_CREDIT;
}
