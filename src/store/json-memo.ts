/**
 * Agents' JSON columns (capacity, offer, availability) parsed once per distinct text: every heartbeat and claim reads
 * its agent, and every scheduling round reads every online agent, while the texts change only on registration or a
 * new availability.
 */
import { AvailabilitySchema, CapacitySchema, OfferSchema } from '../protocol/index.js';

/**
 * A parser of a stored JSON column that remembers up to MEMO_ENTRIES results by the column's text, so zod parses each
 * text once, not once per read (a round at 1,000 agents: ~3,000 parses). Results are shared: callers must not mutate
 * them.
 */
function memoParse<T>(schema: { parse(x: unknown): T }): (text: string) => T {
  const memo = new Map<string, T>();
  return (text) => {
    let v = memo.get(text);
    if (v === undefined) {
      v = schema.parse(JSON.parse(text));
      if (memo.size >= MEMO_ENTRIES) memo.clear();
      memo.set(text, v);
    }
    return v;
  };
}
/** Distinct column texts each memoParse keeps (then it starts over). */
const MEMO_ENTRIES = 10_000;
export const parsedCapacity = memoParse(CapacitySchema);
export const parsedOffer = memoParse(OfferSchema);
export const parsedAvailability = memoParse(AvailabilitySchema);
