/**
 * The dashboard's view of the live routes: the schemas are the protocol's (src/protocol/live.ts); events are
 * tagged `{type, data}` for the views.
 */
import type { z } from 'zod';
import type {
  ExecutionEventSchema,
  JobEventSchema,
  LogEventSchema,
  NetworkEventSchema,
  MaxPriceSchema,
  VerificationSchema,
} from '../../src/protocol/index.js';

export { EarningsSchema, NetworkStatsSchema, type Earnings, type NetworkStats } from '../../src/protocol/index.js';

/** One event of GET /v1/events. */
export type LiveEvent =
  | { type: 'job'; data: z.infer<typeof JobEventSchema> }
  | { type: 'execution'; data: z.infer<typeof ExecutionEventSchema> }
  | { type: 'log'; data: z.infer<typeof LogEventSchema> }
  | { type: 'network'; data: z.infer<typeof NetworkEventSchema> };

/** A script job (the code runner): Python source and pip requirements, run in deqo/python-sklearn:bookworm. */
export interface ScriptJobInput {
  name?: string;
  script: { language: 'python'; source: string; requirements: string[] };
  constraints?: { providers?: string[] };
  verification?: z.input<typeof VerificationSchema>;
  maxPrice?: z.input<typeof MaxPriceSchema>;
}
