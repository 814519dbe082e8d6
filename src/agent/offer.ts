/**
 * The agent's settings and the offer it publishes, from an optional config file (YAML or JSON) overlaid by
 * command-line flags. Flags win; `labels` merge key by key (a flag's value wins), `windows` from flags replace
 * the file's. The offer is validated with the protocol's OfferSchema and every window with croner, so a bad
 * value fails at start with the field (and flag) it came from.
 *
 * Config file (every field optional):
 * ```yaml
 * name: lab-pc
 * cpus: 4            # cores to lend
 * memory: 8g         # memory to lend (MiB as a number, or 512m / 8g)
 * disk: 20g          # disk for inputs and outputs (or diskMb: 20480)
 * allowNetwork: false
 * allowPrivateNetwork: false  # network jobs may also reach this machine and private networks (job-network.ts)
 * prices: { cpuHour: 0.04, memoryGiBHour: 0.004, gpuHour: 0.4, startFee: 0.001 }
 * labels: { zone: eu-west, gpu: none }
 * windows: ['* 22-23,0-6 * * 1-5', '* * * * 6,0']
 * timezone: Europe/Paris
 * idlePolicy: { enabled: true, startBelow: 0.3, suspendAbove: 0.5, suspendAfterSeconds: 120, resumeAfterSeconds: 300 }
 * ```
 */
import { readFile } from 'node:fs/promises';
import YAML from 'yaml';
import { z } from 'zod';
import { formatDecimalCredits } from '../core/index.js';
import { OfferSchema, type Capacity, type Offer } from '../protocol/index.js';
import { InvalidWindowError, WindowSchedule } from './availability.js';

/** A bad config file, flag or offer value; the message names the field and, when there is one, the flag. */
export class OfferConfigError extends Error {
  override readonly name = 'OfferConfigError';
}

/** Offer-related flag values, already converted to numbers (credits, MiB, seconds, fractions). */
export interface OfferFlags {
  name?: string;
  cpus?: number;
  memoryMb?: number;
  allowNetwork?: boolean;
  allowPrivateNetwork?: boolean;
  priceCpuHour?: number;
  priceMemoryGibHour?: number;
  priceGpuHour?: number;
  startFee?: number;
  diskMb?: number;
  labels?: Record<string, string>;
  windows?: string[];
  timezone?: string;
  /** true: --idle-policy; false: --no-idle-policy. */
  idlePolicy?: boolean;
  idleStartBelow?: number;
  idleSuspendAbove?: number;
  idleSuspendAfterSeconds?: number;
  idleResumeAfterSeconds?: number;
}

/** What the agent runs with: the share of the machine it lends (before the probe caps it) and its offer. */
export interface AgentSettings {
  name?: string;
  cpus?: number;
  memoryMb?: number;
  allowNetwork: boolean;
  /** Network jobs may reach this machine and private networks (no fence, job-network.ts). */
  allowPrivateNetwork: boolean;
  offer: Offer;
}

/** Offer fields and the flag that sets each (used to name flags in errors). */
const FLAG_OF: Record<string, string> = {
  'prices.cpuHour': '--price-cpu-hour',
  'prices.memoryGiBHour': '--price-memory-gib-hour',
  'prices.gpuHour': '--price-gpu-hour',
  'prices.startFee': '--start-fee',
  diskMb: '--disk',
  labels: '--label',
  windows: '--window',
  timezone: '--timezone',
  'idlePolicy.enabled': '--idle-policy',
  'idlePolicy.startBelow': '--idle-start-below',
  'idlePolicy.suspendAbove': '--idle-suspend-above',
  'idlePolicy.suspendAfterSeconds': '--idle-suspend-after',
  'idlePolicy.resumeAfterSeconds': '--idle-resume-after',
  cpus: '--cpus',
  memory: '--memory',
  name: '--name',
  allowNetwork: '--allow-network',
  allowPrivateNetwork: '--allow-private-network',
};

/** `512m`, `2g`, `1t`, or a number of MiB → MiB. Returns null when unparsable. */
export function parseSizeMb(v: unknown): number | null {
  if (typeof v === 'number') return Number.isFinite(v) && v >= 0 ? Math.round(v) : null;
  if (typeof v !== 'string') return null;
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?$/i.exec(v.trim());
  if (!m) return null;
  const factor = { '': 1, k: 1 / 1024, m: 1, g: 1024, t: 1024 * 1024 }[
    m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g' | 't'
  ];
  return Math.round(Number(m[1]) * factor);
}

const size = z.union([z.number(), z.string()]);
/** The config file: agent fields, plus the offer's fields (checked by OfferSchema after the flags are applied). */
const FileSchema = z
  .object({
    name: z.string().min(1).max(64).optional(),
    cpus: z.number().positive('cpus must be more than 0').optional(),
    memory: size.optional(),
    allowNetwork: z.boolean().optional(),
    allowPrivateNetwork: z.boolean().optional(),
    disk: size.optional(),
    diskMb: z.unknown().optional(),
    prices: z.unknown().optional(),
    labels: z.unknown().optional(),
    windows: z.unknown().optional(),
    timezone: z.unknown().optional(),
    idlePolicy: z.unknown().optional(),
  })
  .strict();

/** Reads a YAML or JSON config file into a plain object. Throws OfferConfigError (unreadable, unparsable, not a mapping). */
export async function readAgentConfigFile(path: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new OfferConfigError(`cannot read ${path}: ${(err as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = YAML.parse(text);
  } catch (err) {
    throw new OfferConfigError(`${path} is not valid YAML/JSON: ${(err as Error).message}`);
  }
  if (raw === null || raw === undefined) return {};
  if (typeof raw !== 'object' || Array.isArray(raw))
    throw new OfferConfigError(`${path}: expected a mapping of agent settings`);
  return raw as Record<string, unknown>;
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
/** Overlays the defined values of `top` on `base` (when base is a mapping or absent; otherwise leaves it for the schema to refuse). */
function overlay(base: unknown, top: Record<string, unknown>): unknown {
  const defined = Object.fromEntries(Object.entries(top).filter(([, v]) => v !== undefined));
  if (Object.keys(defined).length === 0) return base;
  return base === undefined ? defined : isRecord(base) ? { ...base, ...defined } : base;
}

/**
 * Builds the agent settings from a config file (`file.raw` as read by readAgentConfigFile; `file.path` for
 * messages) overlaid by flags. Pure apart from croner. Throws OfferConfigError listing every bad field as
 * `field (--flag): problem`, and a bad window or time zone by its text.
 */
export function buildAgentSettings(
  file: { path: string; raw: Record<string, unknown> } | undefined,
  flags: OfferFlags,
): AgentSettings {
  const src = file?.path ?? 'flags';
  const parsedFile = FileSchema.safeParse(file?.raw ?? {});
  if (!parsedFile.success) {
    const unknown = parsedFile.error.issues.some((i) => i.code === 'unrecognized_keys');
    throw new OfferConfigError(
      `${src}: ${describeIssues(parsedFile.error.issues)}${unknown ? ` (known fields: ${Object.keys(FileSchema.shape).join(', ')})` : ''}`,
    );
  }
  const f = parsedFile.data;
  const fileMemory = f.memory === undefined ? undefined : parseSizeMb(f.memory);
  if (fileMemory === null || fileMemory === 0)
    throw new OfferConfigError(`${src}: memory: expected a size such as 512m, 8g or a number of MiB`);
  if (f.disk !== undefined && f.diskMb !== undefined)
    throw new OfferConfigError(`${src}: give either disk or diskMb, not both`);
  const fileDisk = f.disk === undefined ? f.diskMb : parseSizeMb(f.disk);
  if (fileDisk === null) throw new OfferConfigError(`${src}: disk: expected a size such as 20g or a number of MiB`);

  const labels = flags.labels && Object.keys(flags.labels).length > 0 ? overlay(f.labels, flags.labels) : f.labels;
  const candidate = {
    prices: overlay(f.prices, {
      cpuHour: flags.priceCpuHour,
      memoryGiBHour: flags.priceMemoryGibHour,
      gpuHour: flags.priceGpuHour,
      startFee: flags.startFee,
    }),
    diskMb: flags.diskMb ?? fileDisk,
    labels,
    windows: flags.windows && flags.windows.length > 0 ? flags.windows : f.windows,
    timezone: flags.timezone ?? f.timezone,
    idlePolicy: overlay(f.idlePolicy, {
      enabled: flags.idlePolicy,
      startBelow: flags.idleStartBelow,
      suspendAbove: flags.idleSuspendAbove,
      suspendAfterSeconds: flags.idleSuspendAfterSeconds,
      resumeAfterSeconds: flags.idleResumeAfterSeconds,
    }),
  };
  const r = OfferSchema.safeParse(candidate);
  if (!r.success)
    throw new OfferConfigError(
      `invalid offer (from ${file ? `${file.path} and flags` : 'flags'}):\n${describeIssues(r.error.issues, '  ')}`,
    );
  const offer = r.data;
  try {
    new WindowSchedule(offer.windows, offer.timezone);
  } catch (err) {
    if (!(err instanceof InvalidWindowError)) throw err;
    const fromFlags =
      err.expression === offer.timezone ? flags.timezone !== undefined : (flags.windows ?? []).includes(err.expression);
    const where = fromFlags
      ? err.expression === offer.timezone
        ? '--timezone'
        : '--window'
      : `${src}: ${err.expression === offer.timezone ? 'timezone' : 'windows'}`;
    throw new OfferConfigError(`${where}: ${err.message}`);
  }
  return {
    name: flags.name ?? f.name,
    cpus: flags.cpus ?? f.cpus,
    memoryMb: flags.memoryMb ?? fileMemory,
    allowNetwork: flags.allowNetwork ?? f.allowNetwork ?? false,
    allowPrivateNetwork: flags.allowPrivateNetwork ?? f.allowPrivateNetwork ?? false,
    offer,
  };
}

/** `path (--flag): message` lines for zod issues. */
function describeIssues(issues: z.ZodError['issues'], indent = ''): string {
  return issues
    .map((i) => {
      const path = i.path.map(String).join('.');
      const flag = FLAG_OF[path] ?? FLAG_OF[i.path.slice(0, 1).map(String).join('.')];
      return `${indent}${path ? `${path}${flag ? ` (${flag})` : ''}: ` : ''}${i.message}`;
    })
    .join(indent ? '\n' : '; ');
}

/** What the agent lends, for display: the probed capacity's share plus the offer's disk. */
export type Lend = Pick<Capacity, 'cpus' | 'memoryMb' | 'gpus' | 'allowNetwork'>;

/** The offer as a person reads it (lines, no trailing newline): prices, lend, labels, windows, idle policy. */
export function describeOffer(name: string, lend: Lend, offer: Offer): string {
  const p = offer.prices;
  const pct = (x: number) => `${Math.round(x * 100)}%`;
  const ip = offer.idlePolicy;
  const labels = Object.entries(offer.labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
  const gpus =
    lend.gpus.length === 0
      ? '0 GPUs'
      : `${lend.gpus.length} GPU${lend.gpus.length > 1 ? 's' : ''} (${lend.gpus.map((g) => g.model).join(', ')})`;
  return [
    `offer of ${name}:`,
    `  prices   ${formatDecimalCredits(p.cpuHour)} per CPU-hour · ${formatDecimalCredits(p.memoryGiBHour)} per GiB-hour · ${formatDecimalCredits(p.gpuHour)} per GPU-hour · start fee ${formatDecimalCredits(p.startFee)}`,
    `  lends    ${lend.cpus} cores · ${lend.memoryMb} MiB memory · ${offer.diskMb} MiB disk · ${gpus} · ${lend.allowNetwork ? 'network allowed' : 'no network'}`,
    `  labels   ${labels || '(none)'}`,
    `  windows  ${offer.windows.length === 0 ? 'always' : offer.windows.map((w) => `'${w}'`).join(', ')}${offer.windows.length > 0 ? ` (${offer.timezone ?? 'local time'})` : ''}`,
    ip.enabled
      ? `  idle     on: start below ${pct(ip.startBelow)} owner load; stop after ${ip.suspendAfterSeconds} s at ≥ ${pct(ip.suspendAbove)}; resume after ${ip.resumeAfterSeconds} s below ${pct(ip.startBelow)}`
      : '  idle     off (works whatever the owner does)',
  ].join('\n');
}
