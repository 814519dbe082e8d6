/**
 * Marketplace API bodies: quotes, balances and the ledger, the provider catalog, reputation, `explain`,
 * accounts and keys. Amounts are credits (decimal numbers, exact to 6 places); times epoch ms.
 */
import { z } from 'zod';
import { IdSchema as Id, JobSpecSchema, VerificationModeSchema } from './job.js';
import { MAX_CREDITS, MIN_CREDITS } from './limits.js';

// ---------- money ----------

export const ModeQuoteSchema = z.object({
  mode: VerificationModeSchema,
  executionsPerTask: z.number().int(),
  /** Held in escrow at submission: every funded execution running to its timeout at the maximum prices. */
  maxCost: z.number(),
  /** If each execution runs `expectedSecondsPerExecution` at the maximum prices. */
  expectedCost: z.number(),
});
export const QuoteSchema = z.object({
  tasks: z.number().int(),
  mode: VerificationModeSchema,
  /** The most one execution can cost (timeout × resources × maximum prices + start fee). */
  executionMaxCost: z.number(),
  expectedSecondsPerExecution: z.number(),
  /** What submitting holds in escrow (this spec's mode). */
  escrow: z.number(),
  modes: z.array(ModeQuoteSchema),
  /** Providers online now that match the job; 0 means it would wait (see `deqo explain` after submitting). */
  matchingProviders: z.number().int(),
  cheapestMatchingCpuHour: z.number().nullable(),
  feeBps: z.number().int(),
  balance: z.number(),
  affordable: z.boolean(),
  /** How many credits are missing (0 when affordable). */
  shortfall: z.number(),
  /**
   * With an error bound (verification.maxError): the agreeing results a task needs to reach it from the matching
   * providers (their mean credibility), and the expected cost of the job at that many executions per task.
   */
  errorBound: z
    .object({
      maxError: z.number(),
      meanCredibility: z.number(),
      executionsPerTask: z.number().int(),
      expectedCost: z.number(),
    })
    .nullable(),
});
export type Quote = z.infer<typeof QuoteSchema>;
export const QuoteRequestSchema = JobSpecSchema;

export const BalanceSchema = z.object({
  accountId: Id,
  accountName: z.string(),
  /** Credits free to spend. */
  available: z.number(),
  /** Credits held in escrow for this account's unsettled jobs. */
  inEscrow: z.number(),
  /** Credits earned as a provider (all time, after fees). */
  earned: z.number(),
});
export type Balance = z.infer<typeof BalanceSchema>;

/**
 * Kinds of ledger transactions: credits granted by the platform, held in a job's escrow, paid to a provider, refunded
 * to the buyer, or taken back from a provider whose result a re-verification overturned (clawback).
 */
export const LedgerKindSchema = z.enum(['grant', 'escrow_hold', 'payment', 'refund', 'clawback']);
export type LedgerKind = z.infer<typeof LedgerKindSchema>;
export const LedgerEntrySchema = z.object({
  id: z.number().int(),
  txnId: z.string(),
  at: z.number(),
  kind: LedgerKindSchema,
  /** Ledger account: acct:<id>, escrow:<job>, platform:fees, platform:issuer. */
  account: z.string(),
  amount: z.number(),
  jobId: z.string().nullable(),
  executionId: z.string().nullable(),
  memo: z.string(),
});
export type LedgerEntry = z.infer<typeof LedgerEntrySchema>;
export const LedgerListSchema = z.object({ entries: z.array(LedgerEntrySchema) });
export const LedgerQuerySchema = z.object({
  jobId: Id.optional(),
  limit: z.coerce.number().int().min(1).max(10_000).default(100),
});

/** A job's money: what escrow held, what was paid to providers (and fees), what returned to the buyer. */
export const JobBillingSchema = z.object({
  escrowHeld: z.number(),
  paid: z.number(),
  fees: z.number(),
  refunded: z.number(),
  /** Still in escrow (0 once settled). */
  inEscrow: z.number(),
  settled: z.boolean(),
});
export type JobBilling = z.infer<typeof JobBillingSchema>;

/** An admin vouching for a provider account (by name or id): it is established at once (docs/verification.md). */
export const VouchRequestSchema = z.object({ account: z.string().min(1).max(100) }).strict();

export const GrantRequestSchema = z
  .object({
    /** Account id or name. */
    account: z.string().min(1).max(100),
    /**
     * Credits, rounded to the nearest µcr: at least MIN_CREDITS (1 µcr), at most MAX_CREDITS; the ledger also refuses
     * a grant that would put more than MAX_CREDITS in circulation.
     */
    amount: z
      .number()
      .min(MIN_CREDITS, `below ${MIN_CREDITS} credits (1 µcr, the ledger's unit)`)
      .max(MAX_CREDITS, `at most ${MAX_CREDITS} credits`),
    memo: z.string().max(200).default('admin grant'),
  })
  .strict();

// ---------- accounts and keys ----------

export const RoleSchema = z.enum(['buyer', 'provider', 'admin']);
export const CreateAccountRequestSchema = z
  .object({
    name: z
      .string()
      .min(1)
      .max(64)
      .regex(/^[A-Za-z0-9._-]+$/, 'account names are letters, digits, . _ -'),
    roles: z.array(RoleSchema).min(1).max(3),
  })
  .strict();
export const CreateKeyRequestSchema = z.object({ scope: RoleSchema, label: z.string().max(100).optional() }).strict();
export const NewKeySchema = z.object({ keyId: Id, apiKey: z.string(), scope: RoleSchema, accountId: Id });
export type NewKey = z.infer<typeof NewKeySchema>;
export const KeyViewSchema = z.object({
  keyId: Id,
  scope: RoleSchema,
  label: z.string().nullable(),
  createdAt: z.number(),
  revokedAt: z.number().nullable(),
});
export const KeyListSchema = z.object({ keys: z.array(KeyViewSchema) });
export const WhoAmISchema = z.object({
  accountId: Id,
  accountName: z.string(),
  roles: z.array(RoleSchema),
  scope: RoleSchema,
});
export type WhoAmI = z.infer<typeof WhoAmISchema>;

// ---------- reputation and catalog ----------

export const ReputationViewSchema = z.object({
  score: z.number(),
  consecutiveValid: z.number().int(),
  valid: z.number().int(),
  invalid: z.number().int(),
  errors: z.number().int(),
  errorRate: z.number(),
  meanTurnaroundMs: z.number().nullable(),
  dailyQuota: z.number().int(),
  startedToday: z.number().int(),
  /** Results confirmed in a row by independent providers or passed spot-checks (reset by an invalid one). */
  confirmed: z.number().int(),
  /** Off probation: confirmed often enough, or vouched for by the operator (docs/verification.md). */
  established: z.boolean(),
  vouched: z.boolean(),
  /** Caught lying (a failed spot-check): blacklisted, given no more work. */
  caught: z.boolean(),
  /** Sarmenta's credibility in [0, 1): the estimated chance this provider's result is right. */
  credibility: z.number(),
});
export type ReputationView = z.infer<typeof ReputationViewSchema>;

export const ReputationEventSchema = z.object({
  id: z.number().int(),
  at: z.number(),
  kind: z.enum(['valid', 'invalid', 'error', 'spot_check_passed', 'caught', 'vouched']),
  crossChecked: z.boolean(),
  executionId: z.string().nullable(),
  jobId: z.string().nullable(),
  consecutiveValid: z.number().int(),
  dailyQuota: z.number().int(),
  score: z.number(),
});
export const ProviderReputationSchema = z.object({
  providerId: Id,
  reputation: ReputationViewSchema,
  events: z.array(ReputationEventSchema),
});
export type ProviderReputation = z.infer<typeof ProviderReputationSchema>;

export const CatalogQuerySchema = z.object({
  minCpus: z.coerce.number().positive().optional(),
  minMemoryMb: z.coerce.number().int().positive().optional(),
  gpus: z.coerce.number().int().min(0).optional(),
  gpuModel: z.string().max(200).optional(),
  arch: z.string().max(32).optional(),
  os: z.string().max(32).optional(),
  maxCpuHour: z.coerce.number().min(0).optional(),
  minReputation: z.coerce.number().min(0).max(1).optional(),
  online: z
    .enum(['true', 'false'])
    .transform((v) => v === 'true')
    .optional(),
  label: z
    .string()
    .regex(/^[^=]+=.*$/, 'expected name=value')
    .optional(),
  sort: z.enum(['price', 'reputation', 'cpus', 'memory', 'name', 'jobs']).default('name'),
  order: z.enum(['asc', 'desc']).optional(),
});
export type CatalogQuery = z.infer<typeof CatalogQuerySchema>;

// ---------- explain ----------

export const ExplainProviderSchema = z.object({
  agentId: Id,
  name: z.string(),
  providerId: Id,
  online: z.boolean(),
  /** Executions of this job placed on this agent. */
  executions: z.number().int(),
  /** The agent could take an execution of this job now. */
  eligible: z.boolean(),
  reasons: z.array(z.object({ code: z.string(), message: z.string() })),
  /** Rank score among eligible agents (lower is better), when eligible. */
  rank: z.number().nullable(),
});
export const ExplainSchema = z.object({
  jobId: Id,
  state: z.string(),
  /** Open tasks that still want executions. */
  waitingTasks: z.number().int(),
  /** One line for people: why the job waits, or that it does not. */
  summary: z.string(),
  queueTimeoutAt: z.number().nullable(),
  providers: z.array(ExplainProviderSchema),
});
export type Explain = z.infer<typeof ExplainSchema>;
