/**
 * Live views for dashboards: the Server-Sent Events of `GET /v1/events`, live output chunks agents send while an
 * execution runs, and the time series of `GET /v1/network/stats` and `GET /v1/provider/earnings`.
 * Times are epoch ms; credits decimal.
 */
import { z } from 'zod';
import { IdSchema } from './job.js';
import { ExecutionStateSchema, JobStateSchema } from './states.js';

/** Largest live output chunk an agent sends, bytes of UTF-8. */
export const LOG_CHUNK_MAX_BYTES = 64 * 1024;

/** Output stream of a container. */
export const LogStreamSchema = z.enum(['stdout', 'stderr']);
export type LogStream = z.infer<typeof LogStreamSchema>;

/**
 * A chunk of live output: `offset` is the byte offset of `data` in the stream (the agent's stdout/stderr file),
 * so a repeated or overlapping chunk is recognised. `data` is UTF-8, at most 64 KiB.
 */
export const LogChunkRequestSchema = z
  .object({
    fencingToken: z.number().int(),
    stream: LogStreamSchema,
    data: z
      .string()
      .refine((s) => new TextEncoder().encode(s).length <= LOG_CHUNK_MAX_BYTES, 'data is larger than 64 KiB'),
    offset: z.number().int().min(0),
  })
  .strict();
export type LogChunkRequest = z.infer<typeof LogChunkRequestSchema>;

/** `GET /v1/jobs/:id/executions/:executionId/log` query: which stream (default stdout). */
export const ExecutionLogQuerySchema = z.object({ stream: LogStreamSchema.default('stdout') });

/** `GET /v1/events` query: only events about this job (network events and pings still come). */
export const EventsQuerySchema = z.object({ jobId: IdSchema.optional() });

/** `job`: a job of the caller (buyer) changed state or had a task decided. */
export const JobEventSchema = z.object({
  jobId: IdSchema,
  state: JobStateSchema,
  tasks: z.object({ total: z.number().int(), verified: z.number().int(), failed: z.number().int() }),
});
export type JobEvent = z.infer<typeof JobEventSchema>;

/** `execution`: an execution of the caller's jobs (buyer) or on the caller's agents (provider) changed state. */
export const ExecutionEventSchema = z.object({
  jobId: IdSchema,
  taskId: IdSchema,
  executionId: IdSchema,
  state: ExecutionStateSchema,
  agentName: z.string(),
});
export type ExecutionEvent = z.infer<typeof ExecutionEventSchema>;

/** `log`: live output of a running execution of the caller's jobs (buyer). */
export const LogEventSchema = z.object({
  jobId: IdSchema,
  executionId: IdSchema,
  stream: LogStreamSchema,
  data: z.string(),
});
export type LogEvent = z.infer<typeof LogEventSchema>;

/** `network`: the network now, every 5 s to everyone. */
export const NetworkEventSchema = z.object({
  at: z.number(),
  queueDepth: z.number().int(),
  agentsOnline: z.number().int(),
  runningExecutions: z.number().int(),
});
export type NetworkEvent = z.infer<typeof NetworkEventSchema>;

/** One Server-Sent Event of `GET /v1/events`: `event: <name>` and `data: <json>`. */
export type LiveEvent =
  | { event: 'job'; data: JobEvent }
  | { event: 'execution'; data: ExecutionEvent }
  | { event: 'log'; data: LogEvent }
  | { event: 'network'; data: NetworkEvent };

/** Schema of each event's data, by event name. */
export const LIVE_EVENT_SCHEMAS = {
  job: JobEventSchema,
  execution: ExecutionEventSchema,
  log: LogEventSchema,
  network: NetworkEventSchema,
} as const;

/** `GET /v1/network/stats` query: the last `minutes` minutes (1–1440, default 60). */
export const NetworkStatsQuerySchema = z.object({ minutes: z.coerce.number().int().min(1).max(1440).default(60) });

/** One minute of the network: jobs submitted and finished, executions graded valid and invalid in it. */
export const StatsPointSchema = z.object({
  t: z.number(),
  jobsSubmitted: z.number().int(),
  jobsFinished: z.number().int(),
  executionsValid: z.number().int(),
  executionsInvalid: z.number().int(),
});

/**
 * A decided task: `jobId` only when the caller is the job's buyer (else null); `agreed` executions valid,
 * `outvoted` invalid.
 */
export const RecentVerificationSchema = z.object({
  at: z.number(),
  jobId: IdSchema.nullable(),
  taskIndex: z.number().int(),
  outcome: z.enum(['verified', 'failed']),
  agreed: z.number().int(),
  outvoted: z.number().int(),
});

/** `GET /v1/network/stats` answer: one point per minute (oldest first, minute starts), and the network now. */
export const NetworkStatsSchema = z.object({
  points: z.array(StatsPointSchema),
  queueDepth: z.number().int(),
  agentsOnline: z.number().int(),
  recentVerifications: z.array(RecentVerificationSchema),
});
export type NetworkStats = z.infer<typeof NetworkStatsSchema>;

/** `GET /v1/provider/earnings` query: the last `hours` hours (1–2160, default 48). */
export const EarningsQuerySchema = z.object({ hours: z.coerce.number().int().min(1).max(2160).default(48) });

/** `GET /v1/provider/earnings` answer: credits earned per hour (hour starts, oldest first) and their total. */
export const EarningsSchema = z.object({
  points: z.array(z.object({ t: z.number(), credits: z.number() })),
  total: z.number(),
});
export type Earnings = z.infer<typeof EarningsSchema>;
