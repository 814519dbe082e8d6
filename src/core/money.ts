/**
 * Credits. The API speaks credits as decimal numbers; the ledger counts integer micro-credits (1 credit =
 * 1,000,000 µcr) so sums are exact. Safe up to Number.MAX_SAFE_INTEGER µcr (about 9 × 10⁹ credits).
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

/** Human text for an amount: `12.5 cr`, up to 6 decimals, no trailing zeros. */
export function formatCredits(micro: number): string {
  const sign = micro < 0 ? '-' : '';
  const abs = Math.abs(micro);
  const whole = Math.floor(abs / MICRO_PER_CREDIT);
  const frac = String(abs % MICRO_PER_CREDIT)
    .padStart(6, '0')
    .replace(/0+$/, '');
  return `${sign}${whole}${frac ? `.${frac}` : ''} cr`;
}
