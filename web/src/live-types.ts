/**
 * The dashboard's view of the live routes: the schemas are the protocol's (src/protocol/live.ts); events are
 * tagged `{type, data}` for the views.
 */
import type { z } from 'zod';
import {
  ExecutionEventSchema, JobEventSchema, LIVE_EVENT_SCHEMAS, LogEventSchema, NetworkEventSchema, type MaxPriceSchema, type VerificationSchema,
} from '../../src/protocol/index.js';

export { EarningsSchema, NetworkStatsSchema, type Earnings, type NetworkStats } from '../../src/protocol/index.js';

/** One event of GET /v1/events. */
export type LiveEvent =
  | { type: 'job'; data: z.infer<typeof JobEventSchema> }
  | { type: 'execution'; data: z.infer<typeof ExecutionEventSchema> }
  | { type: 'log'; data: z.infer<typeof LogEventSchema> }
  | { type: 'network'; data: z.infer<typeof NetworkEventSchema> };

const EVENT_SCHEMAS = LIVE_EVENT_SCHEMAS;

/** Parses one SSE message into a LiveEvent; null for an unknown event or a body that does not match. */
export function parseLiveEvent(event: string, data: string): LiveEvent | null {
  const schema = EVENT_SCHEMAS[event as keyof typeof EVENT_SCHEMAS];
  if (!schema) return null;
  let json: unknown;
  try { json = JSON.parse(data); } catch { return null; }
  const r = schema.safeParse(json);
  return r.success ? ({ type: event, data: r.data } as LiveEvent) : null;
}

/** A script job (the code runner): Python source and pip requirements, run in deqo/python-sklearn:bookworm. */
export interface ScriptJobInput {
  name?: string;
  script: { language: 'python'; source: string; requirements: string[] };
  constraints?: { providers?: string[] };
  verification?: z.input<typeof VerificationSchema>;
  maxPrice?: z.input<typeof MaxPriceSchema>;
}
