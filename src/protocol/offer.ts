/**
 * Offers (what an agent lends and at what price) and the buyer's matching constraints.
 * Prices are in credits (decimal, at most 6 places are kept: the ledger counts micro-credits).
 */
import { z } from 'zod';
import { MIN_CREDITS } from './limits.js';

/** A price in credits: 0 (free) or from 1 µcr (the ledger's unit) to 1,000,000 credits. */
const credits = (what: string) =>
  z
    .number()
    .min(0, `${what} cannot be negative`)
    .max(1_000_000)
    .refine(
      (v) => v === 0 || v >= MIN_CREDITS,
      `${what} is below ${MIN_CREDITS} credits (1 µcr, the ledger's unit): give 0 or at least ${MIN_CREDITS}`,
    );

/**
 * A linear price (Golem's model: a start fee plus rates over time): per CPU core-hour, per GiB-hour of
 * memory, per GPU-hour, and a fee per execution started. All credits.
 */
export const PriceSchema = z
  .object({
    cpuHour: credits('cpuHour').default(0.05),
    memoryGiBHour: credits('memoryGiBHour').default(0.005),
    gpuHour: credits('gpuHour').default(0.5),
    startFee: credits('startFee').default(0.001),
  })
  .strict();
export type Price = z.infer<typeof PriceSchema>;

/** The most a job accepts to pay per unit; offers above it in any unit are not chosen. Defaults: twice the default offer. */
export const MaxPriceSchema = z
  .object({
    cpuHour: credits('cpuHour').default(0.1),
    memoryGiBHour: credits('memoryGiBHour').default(0.01),
    gpuHour: credits('gpuHour').default(1),
    startFee: credits('startFee').default(0.002),
  })
  .strict();
export type MaxPrice = z.infer<typeof MaxPriceSchema>;

const LABEL_KEY = /^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$/;
export const LabelsSchema = z
  .record(z.string().regex(LABEL_KEY, 'label names are letters, digits and . _ / -'), z.string().max(128))
  .refine((l) => Object.keys(l).length <= 64, 'at most 64 labels');

/**
 * Which providers a job may run on, beyond resources. `providers` are agent ids or provider account ids picked
 * from the catalog; `minReputation` is a reputation score in [0, 1] (see docs/marketplace.md).
 */
export const ConstraintsSchema = z
  .object({
    arch: z.string().max(32).optional(),
    os: z.string().max(32).optional(),
    /** Case-insensitive substring of the GPU model, e.g. "A100". Needs resources.gpus ≥ 1. */
    gpuModel: z.string().min(1).max(200).optional(),
    /** Every label here must be on the offer with the same value. */
    labels: LabelsSchema.default({}),
    minReputation: z.number().min(0).max(1).optional(),
    providers: z
      .array(z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'expected an agent or provider id'))
      .max(256)
      .optional(),
  })
  .strict();
export type Constraints = z.infer<typeof ConstraintsSchema>;

/** HTCondor-style desktop policy: lend the machine only while its owner is not using it. Loads are fractions of the whole machine. */
export const IdlePolicySchema = z
  .object({
    enabled: z.boolean().default(false),
    /** Start new executions only while the owner's (non-job) CPU load is at most this. HTCondor: 0.3. */
    startBelow: z.number().min(0).max(1).default(0.3),
    /** The owner is back when their load is at least this … HTCondor: 0.5 … */
    suspendAbove: z.number().min(0).max(1).default(0.5),
    /** … for longer than this: then take no work and stop running executions. HTCondor: 2 min. */
    suspendAfterSeconds: z.number().int().min(0).max(86_400).default(120),
    /** Take work again after the load stayed below startBelow this long. HTCondor: 5 min. */
    resumeAfterSeconds: z.number().int().min(0).max(86_400).default(300),
  })
  .strict()
  .refine((p) => p.startBelow <= p.suspendAbove, {
    message: 'startBelow must be at most suspendAbove',
    path: ['startBelow'],
  });
export type IdlePolicy = z.infer<typeof IdlePolicySchema>;

/**
 * Availability windows: cron expressions (5 fields, or 6 with seconds); the machine is available during every
 * minute an expression matches, e.g. `* 22-23,0-6 * * 1-5` (weeknights) and `* * * * 6,0` (weekends).
 * Empty means always. Evaluated by the agent in `timezone` (IANA name; default the agent's local zone).
 */
export const WindowsSchema = z.array(z.string().min(9).max(120)).max(32);

/** What an agent publishes: prices, the share of the machine it lends, labels, windows and idle policy. */
export const OfferSchema = z
  .object({
    prices: PriceSchema.default(PriceSchema.parse({})),
    /** Disk lent for inputs and outputs, MiB: the scheduler places only jobs whose output limit + inputs fit what is free of it. */
    diskMb: z.number().int().min(0).default(10_240),
    labels: LabelsSchema.default({}),
    windows: WindowsSchema.default([]),
    timezone: z.string().max(64).optional(),
    idlePolicy: IdlePolicySchema.default(IdlePolicySchema.parse({})),
  })
  .strict();
export type Offer = z.infer<typeof OfferSchema>;
export type OfferInput = z.input<typeof OfferSchema>;

/**
 * Whether an agent takes work now, as the agent sees it: `available`; `outside_window` (no availability
 * window matches now); `owner_busy` (the idle policy holds work back); `draining` (shutting down).
 * `until` is when the agent expects this to change (epoch ms), when it knows.
 */
export const AvailabilitySchema = z
  .object({
    state: z.enum(['available', 'outside_window', 'owner_busy', 'draining']),
    message: z.string().max(500).optional(),
    until: z.number().int().optional(),
  })
  .strict();
export type Availability = z.infer<typeof AvailabilitySchema>;
