/**
 * The job flags shared by `deqo submit` and `deqo quote` (docker-run style), and turning them plus an
 * optional spec file into the raw spec fields (validated later by resolveSpec).
 */
import { basename } from 'node:path';
import { Command, Option, InvalidArgumentError } from 'commander';
import { VerificationModeSchema } from '../protocol/index.js';
import { CliError, EXIT } from './exit-codes.js';
import { readSpecFile } from './specfile.js';
import {
  collect,
  parseCpus,
  parseCredits,
  parseEnvPair,
  parseFraction,
  parseInputFlag,
  parseIntFlag,
  parseMemoryMb,
  parseSeconds,
} from './commands/units.js';

/** Options the job flags produce. */
export interface JobFlagOptions {
  file?: string;
  name?: string;
  cpus?: number;
  memory?: number;
  timeout?: number;
  gpus?: number;
  input: Array<{ path: string; file: string }>;
  output?: string;
  replicas?: number;
  quorum?: number;
  maxError?: number;
  spotChecks?: boolean;
  checkDeterminism?: boolean;
  verify?: string;
  env: Record<string, string>;
  network?: boolean;
  maxCpuHour?: number;
  maxMemoryGibHour?: number;
  maxGpuHour?: number;
  maxStartFee?: number;
  arch?: string;
  os?: string;
  gpuModel?: string;
  label: Record<string, string>;
  minReputation?: number;
  provider: string[];
  queueTimeout?: number;
  array?: number;
}

function parseGpus(v: string): number {
  if (!/^\d+$/.test(v)) throw new InvalidArgumentError('expected a whole number of GPUs ≥ 0');
  return Number(v);
}

/** Adds the job flags to a command. */
export function addJobFlags(cmd: Command): Command {
  return cmd
    .option('-f, --file <spec>', 'job spec file (YAML or JSON); flags given too override its fields')
    .option('--name <name>', 'a name to recognise the job by')
    .option('--cpus <n>', 'CPU cores (fractions allowed) [default 1]', parseCpus)
    .option('--memory <size>', 'memory limit, e.g. 512m, 2g (MiB if no unit) [default 512m]', parseMemoryMb)
    .option(
      '--timeout <duration>',
      'wall-clock limit, e.g. 90s, 10m, 2h (seconds if no unit) [default 10m]',
      parseSeconds,
    )
    .option('--gpus <n>', 'GPUs to reserve [default 0]', parseGpus)
    .option(
      '--input <file[:path]>',
      'local file to upload and mount read-only at /inputs/<path> (repeatable)',
      parseInputFlag,
      [],
    )
    .option('--output <dir>', 'directory inside the container whose files are the outputs [default /outputs]')
    .addOption(
      new Option(
        '--verify <mode>',
        'verification: none (1 execution), replicate (replicas/quorum), adaptive (trusted providers run alone) [default replicate]',
      ).choices(VerificationModeSchema.options),
    )
    .option('--replicas <n>', 'executions per task, each on a different provider [default 1]', parseIntFlag)
    .option('--quorum <n>', 'matching results needed to accept a task [default 1]', parseIntFlag)
    .option(
      '--max-error <probability>',
      'error bound: accept a task only when its agreeing results are credible to 1 − this, e.g. 1e-4 (replicas are added as needed; `deqo quote` shows how many)',
      parseFraction,
    )
    .option(
      '--spot-checks',
      "let this job's verified tasks be replayed to other providers as spot-checks (tasks whose answer is known, " +
        'used to catch lying providers; a replay shows the task to one more provider) [default off]',
    )
    .option(
      '--check-determinism',
      'first run task 0 twice at once on one provider (needs room for both); if the results differ the job fails ' +
        'naming the outputs that differ, else its tasks are placed as usual. You pay both probe executions [default off]',
    )
    .option('-e, --env <KEY=VALUE>', 'environment variable for the container (repeatable)', parseEnvPair, {})
    .option('--network', 'ask for network access (only providers that allow it will run the job)')
    .option('--max-cpu-hour <credits>', 'highest price accepted per core-hour [default 0.1]', parseCredits)
    .option('--max-memory-gib-hour <credits>', 'highest price accepted per GiB-hour [default 0.01]', parseCredits)
    .option('--max-gpu-hour <credits>', 'highest price accepted per GPU-hour [default 1]', parseCredits)
    .option('--max-start-fee <credits>', 'highest start fee accepted per execution [default 0.002]', parseCredits)
    .option('--arch <arch>', 'only providers of this architecture, e.g. amd64')
    .option('--os <os>', 'only providers with this OS, e.g. linux')
    .option('--gpu-model <text>', 'only GPUs whose model contains this text (needs --gpus)')
    .option('--label <name=value>', 'only providers whose offer has this label (repeatable)', parseEnvPair, {})
    .option('--min-reputation <score>', 'only providers with at least this reputation score (0–1)', parseFraction)
    .option('--provider <id>', 'only this agent or provider id, from `deqo providers` (repeatable)', collect, [])
    .option(
      '--array <n>',
      'an array job of n tasks, each with DEQO_TASK_INDEX 0 … n-1 in its environment',
      parseIntFlag,
    )
    .option('--queue-timeout <duration>', 'fail tasks no provider takes within this long [default 1d]', parseSeconds);
}

/**
 * Merges an optional spec file with the flags into raw spec fields and the folder `file:` inputs are relative to.
 * Without a spec file an image and a command are needed, unless `needCommand` is false (script jobs default them).
 * Throws CliError (USAGE).
 */
export async function rawSpecFromFlags(
  image: string | undefined,
  command: string[],
  opts: JobFlagOptions,
  needCommand = true,
): Promise<{ raw: Record<string, unknown>; baseDir: string }> {
  let raw: Record<string, unknown> = {};
  let baseDir = process.cwd();
  if (opts.file) ({ raw, baseDir } = await readSpecFile(opts.file));
  else if (needCommand && (!image || command.length === 0))
    throw new CliError('give an image and a command, or a spec file with -f (see --help)', EXIT.USAGE);
  const section = (key: string, values: Record<string, unknown>) => {
    const set = Object.fromEntries(Object.entries(values).filter(([, v]) => v !== undefined));
    if (Object.keys(set).length > 0) raw[key] = { ...(raw[key] as object | undefined), ...set };
  };
  if (image) raw.image = image;
  if (command.length > 0) raw.command = command;
  if (opts.name) raw.name = opts.name;
  section('resources', { cpus: opts.cpus, memoryMb: opts.memory, timeoutSeconds: opts.timeout, gpus: opts.gpus });
  section('verification', {
    mode: opts.verify,
    replicas: opts.replicas,
    quorum: opts.quorum,
    maxError: opts.maxError,
    spotChecks: opts.spotChecks,
    checkDeterminism: opts.checkDeterminism,
  });
  section('maxPrice', {
    cpuHour: opts.maxCpuHour,
    memoryGiBHour: opts.maxMemoryGibHour,
    gpuHour: opts.maxGpuHour,
    startFee: opts.maxStartFee,
  });
  section('constraints', {
    arch: opts.arch,
    os: opts.os,
    gpuModel: opts.gpuModel,
    minReputation: opts.minReputation,
    labels:
      Object.keys(opts.label).length > 0
        ? { ...(raw.constraints as { labels?: object } | undefined)?.labels, ...opts.label }
        : undefined,
    providers: opts.provider.length > 0 ? opts.provider : undefined,
  });
  if (opts.queueTimeout !== undefined) raw.queueTimeoutSeconds = opts.queueTimeout;
  if (opts.array !== undefined) raw.array = { count: opts.array };
  if (Object.keys(opts.env).length > 0) raw.env = { ...(raw.env as object | undefined), ...opts.env };
  if (opts.output) raw.outputDir = opts.output;
  if (opts.network) raw.network = true;
  if (opts.input.length > 0) {
    const flagInputs = opts.input.map((i) => ({ path: i.path || basename(i.file), file: i.file }));
    raw.inputs = [...((raw.inputs as unknown[] | undefined) ?? []), ...flagInputs];
    if (!opts.file) baseDir = process.cwd();
  }
  return { raw, baseDir };
}
