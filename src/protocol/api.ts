/**
 * HTTP API bodies (requests and responses) of the coordinator, version 1 (`/v1`).
 * Times are epoch milliseconds; sizes bytes; usage cpuMs/wallMs milliseconds.
 */
import { z } from 'zod';
import {
  IdSchema,
  JobSpecSchema,
  ParamValueSchema,
  Sha256Schema,
  ResourcesSchema,
  LimitsSchema,
  InputSchema,
  ScriptSchema,
} from './job.js';
import {
  JobStateSchema,
  TaskStateSchema,
  ExecutionStateSchema,
  DesiredStateSchema,
  FailureReasonSchema,
} from './states.js';
import { AvailabilitySchema, OfferSchema } from './offer.js';
import { JobBillingSchema, ReputationViewSchema } from './market.js';

export const UsageSchema = z
  .object({
    wallMs: z.number().int().min(0),
    cpuMs: z.number().int().min(0),
    maxMemoryBytes: z.number().int().min(0),
  })
  .strict();
export type Usage = z.infer<typeof UsageSchema>;

/** Most output files a result may list (ManifestSchema); an agent ends a job with more as `outputs_unpackageable`. */
export const MAX_OUTPUT_FILES = 100_000;
/**
 * Longest relative path of an output file or directory an agent packages, UTF-8 bytes (far under Linux's 4,096-byte
 * PATH_MAX with the agent's work folder in front, so packaging never meets ENAMETOOLONG); an agent ends a job with a
 * longer (or deeper) one as `outputs_unpackageable`. The manifest schema accepts up to 4,096 characters.
 */
export const MAX_OUTPUT_PATH_BYTES = 1024;
/** Largest request body the coordinator accepts, bytes (a larger one is refused 413). */
export const MAX_REQUEST_BODY_BYTES = 8 * 1024 * 1024;
/**
 * Largest manifest (JSON, UTF-8 bytes) an agent reports: the request body limit less 64 KiB for the rest of the
 * report (failure message, hashes, usage). An agent ends a job whose manifest is larger as `outputs_unpackageable`.
 */
export const MAX_MANIFEST_BYTES = MAX_REQUEST_BODY_BYTES - 64 * 1024;

/** One output file in a result manifest: path relative to the output directory. */
export const ManifestFileSchema = z
  .object({
    path: z
      .string()
      .min(1)
      .max(4096)
      .refine(
        (p) => !p.startsWith('/') && p.split('/').every((seg) => seg !== '' && seg !== '.' && seg !== '..'),
        'expected a relative path without empty, "." or ".." segments',
      ),
    sha256: Sha256Schema,
    size: z.number().int().min(0),
  })
  .strict();

/** What the result hash covers: exit code, each output file (path + SHA-256), stdout's SHA-256. */
export const ManifestSchema = z
  .object({
    exitCode: z.number().int(),
    files: z.array(ManifestFileSchema).max(MAX_OUTPUT_FILES),
    stdoutSha256: Sha256Schema,
  })
  .strict();
export type Manifest = z.infer<typeof ManifestSchema>;

export const FailureSchema = z
  .object({
    reason: FailureReasonSchema,
    blame: z.enum(['job', 'provider', 'none']),
    message: z.string().max(4096),
  })
  .strict();
export type Failure = z.infer<typeof FailureSchema>;

// ---------- buyer side ----------

/** `escrow`: credits held for the job's maximum cost (returned, less what providers are paid, when it ends). */
export const SubmitJobResponseSchema = z.object({ jobId: IdSchema, tasks: z.number().int(), escrow: z.number() });
export type SubmitJobResponse = z.infer<typeof SubmitJobResponseSchema>;

export const ExecutionViewSchema = z.object({
  id: IdSchema,
  taskId: IdSchema,
  agentId: IdSchema,
  agentName: z.string(),
  providerId: IdSchema,
  state: ExecutionStateSchema,
  desired: DesiredStateSchema,
  createdAt: z.number(),
  startedAt: z.number().nullable(),
  finishedAt: z.number().nullable(),
  exitCode: z.number().int().nullable(),
  resultHash: z.string().nullable(),
  failure: FailureSchema.nullable(),
  usage: UsageSchema.nullable(),
  stdoutBlob: Sha256Schema.nullable(),
  stderrBlob: Sha256Schema.nullable(),
  outputsBlob: Sha256Schema.nullable(),
  /** Credits paid to the provider for this execution (null: not paid, e.g. invalid or a provider-side failure). */
  paid: z.number().nullable(),
  /** Its determinism probe pair (1, 2, …: verification.checkDeterminism); absent for an ordinary execution. */
  probe: z.number().int().min(1).optional(),
});
export type ExecutionView = z.infer<typeof ExecutionViewSchema>;

export const TaskViewSchema = z.object({
  id: IdSchema,
  index: z.number().int(),
  params: z.record(z.string(), ParamValueSchema),
  state: TaskStateSchema,
  targetReplicas: z.number().int(),
  resultHash: z.string().nullable(),
  failure: FailureSchema.nullable(),
  executions: z.array(ExecutionViewSchema),
  /**
   * A re-verification of this verified task (its result rested on a provider later caught lying): pending, confirmed
   * (the result stands), changed (it was wrong and was replaced) or inconclusive; null when none.
   */
  audit: z.enum(['pending', 'confirmed', 'changed', 'inconclusive']).nullable().default(null),
});
export type TaskView = z.infer<typeof TaskViewSchema>;

/** Something that happened to a job its buyer should know of, e.g. a result re-verified after a provider was caught. */
export const JobHistoryEntrySchema = z.object({
  at: z.number(),
  kind: z.string(),
  taskIndex: z.number().int().nullable(),
  message: z.string(),
});
export type JobHistoryEntry = z.infer<typeof JobHistoryEntrySchema>;

/** A job's tasks per state (kept on the job row: reading them costs nothing, whatever the array's size). */
export const TaskCountsSchema = z.object({
  queued: z.number().int(),
  running: z.number().int(),
  verified: z.number().int(),
  failed: z.number().int(),
  cancelled: z.number().int(),
});

/** Most tasks one `GET /v1/jobs/:id` returns (`taskLimit`), and how many it returns by default. */
export const TASK_PAGE_MAX = 1_000;
export const TASK_PAGE_DEFAULT = 100;

/**
 * `GET /v1/jobs/:id` query: which page of the job's tasks to include, in index order — from `taskOffset` (the
 * position among the tasks that match, 0-based), at most `taskLimit`, only those in `taskState` if given.
 */
export const JobViewQuerySchema = z.object({
  taskOffset: z.coerce.number().int().min(0).default(0),
  taskLimit: z.coerce.number().int().min(1).max(TASK_PAGE_MAX).default(TASK_PAGE_DEFAULT),
  taskState: TaskStateSchema.optional(),
});
export type JobViewQuery = z.input<typeof JobViewQuerySchema>;

export const JobViewSchema = z.object({
  id: IdSchema,
  name: z.string().nullable(),
  state: JobStateSchema,
  createdAt: z.number(),
  finishedAt: z.number().nullable(),
  spec: JobSpecSchema,
  /** All the job's tasks, per state. */
  taskCounts: TaskCountsSchema,
  /** The page of tasks below: where it starts, its limit, how many tasks match its state filter in all. */
  taskPage: z.object({
    offset: z.number().int(),
    limit: z.number().int(),
    total: z.number().int(),
    state: TaskStateSchema.nullable(),
  }),
  /** One page of tasks, in index order (taskPage). */
  tasks: z.array(TaskViewSchema),
  billing: JobBillingSchema,
  /** The job's history (re-verifications …), oldest first. */
  history: z.array(JobHistoryEntrySchema).default([]),
  /**
   * Its determinism probe (verification.checkDeterminism): pending (its tasks wait), passed, failed (the job
   * failed by it, `nondeterministic` or `too_many_errors`), or cancelled (the job was cancelled while it ran);
   * absent when the job has none.
   */
  probe: z.enum(['pending', 'passed', 'failed', 'cancelled']).optional(),
});
export type JobView = z.infer<typeof JobViewSchema>;

export const JobSummarySchema = z.object({
  id: IdSchema,
  name: z.string().nullable(),
  state: JobStateSchema,
  createdAt: z.number(),
  finishedAt: z.number().nullable(),
  image: z.string(),
  tasks: z.object({ total: z.number().int(), verified: z.number().int(), failed: z.number().int() }),
});
export type JobSummary = z.infer<typeof JobSummarySchema>;
export const JobListSchema = z.object({ jobs: z.array(JobSummarySchema) });

export const ListJobsQuerySchema = z.object({
  state: JobStateSchema.optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(50),
});

/**
 * One execution that agreed on a task's verified result: its outputs tarball holds the same files (the manifest is
 * the task's), though its bytes may differ (file times). A download that does not match the manifest can use another.
 */
export const ResultReplicaSchema = z.object({
  executionId: IdSchema,
  agentName: z.string(),
  outputsBlob: Sha256Schema,
});
export type ResultReplica = z.infer<typeof ResultReplicaSchema>;

/**
 * Verified result of one task: the canonical execution's manifest and blobs, who agreed, and the outputs of every
 * agreeing execution (`replicas`, canonical first; empty from a coordinator older than the field).
 */
export const TaskResultSchema = z.object({
  taskIndex: z.number().int(),
  params: z.record(z.string(), ParamValueSchema),
  state: TaskStateSchema,
  resultHash: z.string().nullable(),
  failure: FailureSchema.nullable(),
  manifest: ManifestSchema.nullable(),
  outputsBlob: Sha256Schema.nullable(),
  stdoutBlob: Sha256Schema.nullable(),
  stderrBlob: Sha256Schema.nullable(),
  agreedBy: z.array(z.object({ agentId: IdSchema, agentName: z.string(), providerId: IdSchema })),
  replicas: z.array(ResultReplicaSchema).default([]),
});
export type TaskResult = z.infer<typeof TaskResultSchema>;
export const JobResultsSchema = z.object({ jobId: IdSchema, state: JobStateSchema, tasks: z.array(TaskResultSchema) });
export type JobResults = z.infer<typeof JobResultsSchema>;

export const BlobInfoSchema = z.object({ sha256: Sha256Schema, size: z.number().int().min(0) });
export type BlobInfo = z.infer<typeof BlobInfoSchema>;

// ---------- provider (agent) side ----------

export const GpuSchema = z.object({ model: z.string().max(200), memoryMb: z.number().int().min(0) }).strict();

/** What an agent's capacity probe found (and what it lends, for issue-2 offers: the whole machine). */
export const CapacitySchema = z
  .object({
    cpus: z.number().positive().max(4096),
    memoryMb: z.number().int().positive(),
    arch: z.string().max(32),
    os: z.string().max(32),
    dockerVersion: z.string().max(64),
    gpus: z.array(GpuSchema).max(64),
    allowNetwork: z.boolean(),
  })
  .strict();
export type Capacity = z.infer<typeof CapacitySchema>;

/**
 * Agent registration. `publicKey` is the agent's Ed25519 public key (base64 of the 32 raw bytes); it is the
 * agent's identity. `signature` is Ed25519 over `deqo-register\n{publicKey}\n{timestamp}` (base64), proving
 * possession of the private key; the timestamp must be within 5 minutes of the coordinator's clock.
 */
export const RegisterAgentRequestSchema = z
  .object({
    publicKey: z.string().regex(/^[A-Za-z0-9+/]{43}=$/, 'expected base64 of a 32-byte Ed25519 public key'),
    name: z
      .string()
      .min(1)
      .max(64)
      .regex(/^[A-Za-z0-9._-]+$/, 'agent names are letters, digits, . _ -'),
    timestamp: z.number().int(),
    signature: z.string().max(200),
    capacity: CapacitySchema,
    offer: OfferSchema.default(OfferSchema.parse({})),
    availability: AvailabilitySchema.default({ state: 'available' }),
  })
  .strict();
export type RegisterAgentRequest = z.infer<typeof RegisterAgentRequestSchema>;
/** A registration as the agent sends it (offer and availability may be left to their defaults). */
export type RegisterAgentRequestInput = z.input<typeof RegisterAgentRequestSchema>;

export const RegisterAgentResponseSchema = z.object({
  agentId: IdSchema,
  heartbeatIntervalMs: z.number().int(),
  leaseTtlMs: z.number().int(),
});
export type RegisterAgentResponse = z.infer<typeof RegisterAgentResponseSchema>;

export const LeaseRefSchema = z.object({ executionId: IdSchema, fencingToken: z.number().int() }).strict();

export const HeartbeatRequestSchema = z
  .object({
    executions: z.array(LeaseRefSchema).max(10_000),
    /** Whether the agent takes new work now (windows, idle policy); unchanged when absent. */
    availability: AvailabilitySchema.optional(),
  })
  .strict();
export const HeartbeatResponseSchema = z.object({
  /** Executions the agent must stop now (task decided, job cancelled, lease lost). */
  stop: z.array(IdSchema),
  leaseExpiresAt: z.number(),
});
export type HeartbeatResponse = z.infer<typeof HeartbeatResponseSchema>;

export const ClaimRequestSchema = z
  .object({
    /** Most executions to take now (free slots). */
    max: z.number().int().min(1).max(256),
    /** Long-poll: wait up to this long for an assignment, ms. */
    waitMs: z.number().int().min(0).max(30_000).default(0),
  })
  .strict();

/** An execution handed to an agent under a lease. `env` already includes DEQO_* variables. */
export const AssignmentSchema = z.object({
  executionId: IdSchema,
  fencingToken: z.number().int(),
  leaseExpiresAt: z.number(),
  jobId: IdSchema,
  taskIndex: z.number().int(),
  image: z.string(),
  command: z.array(z.string()),
  env: z.record(z.string(), z.string()),
  resources: ResourcesSchema,
  limits: LimitsSchema,
  inputs: z.array(InputSchema),
  outputDir: z.string(),
  network: z.boolean(),
  /** A script job's source and requirements: the agent writes the source to /inputs/main.py and checks the requirements. */
  script: ScriptSchema.optional(),
});
export type Assignment = z.infer<typeof AssignmentSchema>;
export const ClaimResponseSchema = z.object({ executions: z.array(AssignmentSchema) });

/**
 * Agent's report of an execution's end. `completed`: the container ran to an exit (any code) and the
 * result is described by manifest + resultHash. `failed`: it could not produce a result (reason given).
 */
export const ReportRequestSchema = z.discriminatedUnion('outcome', [
  z
    .object({
      outcome: z.literal('completed'),
      fencingToken: z.number().int(),
      manifest: ManifestSchema,
      resultHash: Sha256Schema,
      outputsBlob: Sha256Schema,
      stdoutBlob: Sha256Schema,
      stderrBlob: Sha256Schema,
      usage: UsageSchema,
    })
    .strict(),
  z
    .object({
      outcome: z.literal('failed'),
      fencingToken: z.number().int(),
      reason: FailureReasonSchema,
      message: z.string().max(4096),
      stdoutBlob: Sha256Schema.optional(),
      stderrBlob: Sha256Schema.optional(),
      usage: UsageSchema.optional(),
    })
    .strict(),
]);
export type ReportRequest = z.infer<typeof ReportRequestSchema>;

export const ProviderViewSchema = z.object({
  agentId: IdSchema,
  name: z.string(),
  providerId: IdSchema,
  providerName: z.string(),
  online: z.boolean(),
  /**
   * online: heartbeats arriving; suspect: missed three (no new work; its running executions keep their leases
   * until they run out); offline: silent past the agent grace period (10 min).
   */
  status: z.enum(['online', 'suspect', 'offline']),
  lastSeenAt: z.number(),
  capacity: CapacitySchema,
  offer: OfferSchema,
  availability: AvailabilitySchema,
  reputation: ReputationViewSchema,
  running: z.number().int(),
  /** Executions of this agent that ended valid (all time). */
  jobsDone: z.number().int(),
});
export type ProviderView = z.infer<typeof ProviderViewSchema>;
export const ProviderListSchema = z.object({ providers: z.array(ProviderViewSchema) });
