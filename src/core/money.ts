/**
 * Credits. The API speaks credits as decimal numbers; the ledger counts integer micro-credits (1 credit =
 * 1,000,000 µcr) so sums are exact. Every amount is bounded by MAX_MICRO (10¹⁵ µcr, 10⁹ credits; protocol/limits.ts
 * says why that keeps every sum below 2⁵³): grants beyond it are refused by the ledger (ledger.ts, the store's
 * circulation guard), jobs whose worst case exceeds it at admission (pricing.ts jobEscrow). Text for people: format.ts.
 */
import { MAX_MICRO, MICRO_PER_CREDIT } from '../protocol/index.js';

export { MAX_MICRO, MICRO_PER_CREDIT };

/** Credits → micro-credits, rounded to the nearest micro-credit. */
export function toMicro(credits: number): number {
  return Math.round(credits * MICRO_PER_CREDIT);
}

/** Micro-credits → credits (exact to 6 decimal places). */
export function fromMicro(micro: number): number {
  return micro / MICRO_PER_CREDIT;
}
