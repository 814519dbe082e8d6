/**
 * Bodies of the routes the dashboard backend adds (events, network stats, provider earnings, script jobs).
 * Kept here until they join src/protocol; validated like every other response.
 */
import { z } from 'zod';
import { JobStateSchema, ExecutionStateSchema, VerificationSchema, MaxPriceSchema } from '../../src/protocol/index.js';

export const JobEventSchema = z.object({
  jobId: z.string(), state: JobStateSchema,
  tasks: z.object({ total: z.number(), verified: z.number(), failed: z.number() }),
});
export const ExecutionEventSchema = z.object({
  jobId: z.string(), taskId: z.string(), executionId: z.string(), state: ExecutionStateSchema, agentName: z.string(),
});
export const LogEventSchema = z.object({
  jobId: z.string(), executionId: z.string(), stream: z.enum(['stdout', 'stderr']), data: z.string(),
});
export const NetworkEventSchema = z.object({
  at: z.number(), queueDepth: z.number(), agentsOnline: z.number(), runningExecutions: z.number(),
});

/** One event of GET /v1/events. */
export type LiveEvent =
  | { type: 'job'; data: z.infer<typeof JobEventSchema> }
  | { type: 'execution'; data: z.infer<typeof ExecutionEventSchema> }
  | { type: 'log'; data: z.infer<typeof LogEventSchema> }
  | { type: 'network'; data: z.infer<typeof NetworkEventSchema> };

const EVENT_SCHEMAS = { job: JobEventSchema, execution: ExecutionEventSchema, log: LogEventSchema, network: NetworkEventSchema } as const;

/** Parses one SSE message into a LiveEvent; null for an unknown event or a body that does not match. */
export function parseLiveEvent(event: string, data: string): LiveEvent | null {
  const schema = EVENT_SCHEMAS[event as keyof typeof EVENT_SCHEMAS];
  if (!schema) return null;
  let json: unknown;
  try { json = JSON.parse(data); } catch { return null; }
  const r = schema.safeParse(json);
  return r.success ? ({ type: event, data: r.data } as LiveEvent) : null;
}

export const NetworkStatsSchema = z.object({
  points: z.array(z.object({
    t: z.number(), jobsSubmitted: z.number(), jobsFinished: z.number(), executionsValid: z.number(), executionsInvalid: z.number(),
  })),
  queueDepth: z.number(),
  agentsOnline: z.number(),
  recentVerifications: z.array(z.object({
    at: z.number(), jobId: z.string().nullable(), taskIndex: z.number(), outcome: z.string(),
    agreed: z.array(z.string()), outvoted: z.array(z.string()),
  })),
});
export type NetworkStats = z.infer<typeof NetworkStatsSchema>;

export const EarningsSchema = z.object({ points: z.array(z.object({ t: z.number(), credits: z.number() })), total: z.number() });
export type Earnings = z.infer<typeof EarningsSchema>;

/** A script job (the code runner): Python source and pip requirements, run in deqo/python-sklearn:bookworm. */
export interface ScriptJobInput {
  name?: string;
  script: { language: 'python'; source: string; requirements: string[] };
  constraints?: { providers?: string[] };
  verification?: z.input<typeof VerificationSchema>;
  maxPrice?: z.input<typeof MaxPriceSchema>;
}
