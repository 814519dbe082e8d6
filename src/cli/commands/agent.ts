/** `deqo agent`: run one provider agent against a coordinator, publishing an offer (prices, lend, labels, windows, idle policy). */
import { Command, InvalidArgumentError, Option } from 'commander';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { AgentSettings, OfferFlags } from '../../agent/index.js';
import { DEFAULT_AGENT_GRACE_MS } from '../../core/index.js';
import { action, globals, type CliContext } from '../command.js';
import { CliError, EXIT } from '../exit-codes.js';
import { printJson } from '../format.js';
import { clientsFor, coordinatorList } from '../settings.js';
import { collect, parseCpus, parseCredits, parseEnvPair, parseFraction, parseMemoryMb, parseSeconds } from './units.js';

interface AgentOptions {
  /** --coordinator, repeatable and comma-separated. */
  coordinator?: string[];
  dataDir?: string;
  name?: string;
  cpus?: number;
  memory?: number;
  allowNetwork?: boolean;
  allowPrivateNetwork?: boolean;
  pull?: boolean;
  config?: string;
  priceCpuHour?: number;
  priceMemoryGibHour?: number;
  priceGpuHour?: number;
  startFee?: number;
  disk?: number;
  label?: Record<string, string>;
  window?: string[];
  timezone?: string;
  idlePolicy?: boolean;
  idleStartBelow?: number;
  idleSuspendAbove?: number;
  idleSuspendAfter?: number;
  idleResumeAfter?: number;
  printOffer?: boolean;
  json?: boolean;
  testCorruptOutputs?: boolean;
  testOwnerLoadFile?: string;
  gracePeriod: number;
}

/** Reads --config and overlays the flags; a bad value is a usage error naming the field and flag. */
async function settingsFrom(opts: AgentOptions): Promise<AgentSettings> {
  const flags: OfferFlags = {
    name: opts.name,
    cpus: opts.cpus,
    memoryMb: opts.memory,
    allowNetwork: opts.allowNetwork,
    allowPrivateNetwork: opts.allowPrivateNetwork,
    priceCpuHour: opts.priceCpuHour,
    priceMemoryGibHour: opts.priceMemoryGibHour,
    priceGpuHour: opts.priceGpuHour,
    startFee: opts.startFee,
    diskMb: opts.disk,
    labels: opts.label,
    windows: opts.window,
    timezone: opts.timezone,
    idlePolicy: opts.idlePolicy,
    idleStartBelow: opts.idleStartBelow,
    idleSuspendAbove: opts.idleSuspendAbove,
    idleSuspendAfterSeconds: opts.idleSuspendAfter,
    idleResumeAfterSeconds: opts.idleResumeAfter,
  };
  const { buildAgentSettings, OfferConfigError, readAgentConfigFile } = await import('../../agent/index.js');
  try {
    const file = opts.config ? { path: opts.config, raw: await readAgentConfigFile(opts.config) } : undefined;
    return buildAgentSettings(file, flags);
  } catch (err) {
    if (err instanceof OfferConfigError) throw new CliError(err.message, EXIT.USAGE);
    throw err;
  }
}

/** Repeatable `--coordinator URL[,URL…]`, accumulated in order. */
function parseCoordinators(v: string, prev: string[] = []): string[] {
  try {
    return [...prev, ...coordinatorList(v, '--coordinator')];
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message.replace(/^--coordinator: /, ''));
  }
}

export function agentCommand(ctx: CliContext): Command {
  return new Command('agent')
    .description('run a provider agent: lend this machine to a coordinator (outbound connections only)')
    .option(
      '--coordinator <url>',
      'a coordinator of the network; repeat (or separate with commas) to fail over between coordinators that share ' +
        'one database [env DEQO_COORDINATOR, else the config profile, else http://127.0.0.1:8470]',
      parseCoordinators,
    )
    .option('--config <file>', 'agent config file (YAML or JSON, see below); flags override it')
    .option('--data-dir <dir>', 'identity key, state database and work folders [default $DEQO_HOME/agent]')
    .option('--name <name>', 'a display name for this machine [default the host name]')
    .option('--cpus <n>', 'cores to lend [default all]', parseCpus)
    .option('--memory <size>', 'memory to lend, e.g. 8g [default all]', parseMemoryMb)
    .option('--disk <size>', 'disk to lend for inputs and outputs, e.g. 20g [default 10g]', parseMemoryMb)
    .option(
      '--allow-network',
      'let jobs that ask for network access have it: the internet, not this machine nor private networks (needs root for iptables)',
    )
    .option(
      '--allow-private-network',
      'with --allow-network: network jobs may also reach this machine and private networks (LAN, cloud metadata)',
    )
    .option('--pull', 'pull images that are missing locally (otherwise they fail as image_not_found)')
    .option('--price-cpu-hour <credits>', 'price per core-hour [default 0.05]', parseCredits)
    .option('--price-memory-gib-hour <credits>', 'price per GiB-hour of memory [default 0.005]', parseCredits)
    .option('--price-gpu-hour <credits>', 'price per GPU-hour [default 0.5]', parseCredits)
    .option('--start-fee <credits>', 'fee per execution started [default 0.001]', parseCredits)
    .option('--label <key=value>', 'a label buyers can require (repeatable)', parseEnvPair, undefined)
    .option(
      '--window <cron>',
      'available only during minutes this cron expression matches (repeatable; default always)',
      collect,
    )
    .option('--timezone <iana>', 'time zone of the windows, e.g. Europe/Paris [default local time]')
    .option('--idle-policy', 'lend only while the owner is not using the machine (HTCondor-style desktop policy)')
    .option('--no-idle-policy', 'lend whatever the owner does (the default; overrides the config file)')
    .option(
      '--idle-start-below <load>',
      "take work only while the owner's CPU load is at most this [0.3]",
      parseFraction,
    )
    .option('--idle-suspend-above <load>', 'the owner is back when their load is at least this … [0.5]', parseFraction)
    .option(
      '--idle-suspend-after <duration>',
      '… for this long: stop taking work and stop running executions [2m]',
      parseSeconds,
    )
    .option('--idle-resume-after <duration>', 'take work again after the load stayed low this long [5m]', parseSeconds)
    .option(
      '--grace-period <duration>',
      'keep running executions this long while the coordinator cannot be reached [10m]',
      parseSeconds,
      DEFAULT_AGENT_GRACE_MS / 1000,
    )
    .option('--print-offer', 'print the offer this agent would publish and exit (needs no Docker or API key)')
    .option('--json', 'with --print-offer: print JSON {name, lend, offer}')
    .addOption(new Option('--test-corrupt-outputs', 'TEST ONLY: report corrupted results').hideHelp())
    .addOption(
      new Option('--test-owner-load-file <path>', 'TEST ONLY: read the owner load (0..1) from this file').hideHelp(),
    )
    .addHelpText(
      'after',
      `
The agent needs a provider API key (--api-key or DEQO_API_KEY) and a reachable Docker engine.
Prices are credits; an execution costs start fee + wall-time hours × (cores × cpu-hour + GiB × GiB-hour
+ GPUs × GPU-hour). Windows are cron expressions (minute hour day-of-month month day-of-week): the agent
takes work during every minute one matches; executions started inside a window may finish after it.
With the idle policy on, running executions are stopped when the owner comes back (not charged to buyers).
If the coordinator cannot be reached, executions keep running and their reports wait in <data-dir>/state.db
until it answers again; after --grace-period without a heartbeat they are stopped (their leases are gone).
With several --coordinator URLs (coordinators sharing one database) the agent uses one at a time and moves to
the next when it is out of reach (unreachable, timed out, 5xx). If no coordinator answers at start, the agent
retries the registration (1 s doubling to 30 s) until one does; Ctrl-C stops it.
After a restart the agent reattaches to the containers it was running and sends the reports it had queued.

Example config file (agent.yaml; every field optional):
  name: lab-pc
  cpus: 4
  memory: 8g
  disk: 20g
  prices: { cpuHour: 0.04, memoryGiBHour: 0.004, gpuHour: 0.4, startFee: 0.001 }
  labels: { zone: eu-west }
  windows: ['* 22-23,0-6 * * 1-5', '* * * * 6,0']   # weeknights and weekends
  timezone: Europe/Paris
  idlePolicy: { enabled: true, startBelow: 0.3, suspendAbove: 0.5, suspendAfterSeconds: 120, resumeAfterSeconds: 300 }

Examples:
  deqo agent --config agent.yaml --print-offer
  DEQO_API_KEY=deqo_… deqo agent --coordinator http://10.0.0.5:8470 --cpus 4 --memory 8g --name lab-pc \\
    --price-cpu-hour 0.04 --label zone=eu-west --window '* 22-23,0-6 * * 1-5' --idle-policy
  deqo agent --coordinator http://10.0.0.5:8470 --coordinator http://10.0.0.6:8470   # fail over between two`,
    )
    .action(
      action(async (opts: AgentOptions, cmd: Command) => {
        // Loaded when the agent runs, not for `deqo --help` or other commands (Docker and gRPC clients are heavy).
        const [
          {
            Agent,
            describeOffer,
            DockerExecutor,
            ExecutorUnavailableError,
            FileLoadSampler,
            NetworkFenceError,
            loadOrCreateIdentity,
            probeCapacity,
          },
          { pino },
        ] = await Promise.all([import('../../agent/index.js'), import('pino')]);
        const settings = await settingsFrom(opts);
        const name = (settings.name ?? hostname()).replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 64);
        const lendFlags = { cpus: settings.cpus, memoryMb: settings.memoryMb, allowNetwork: settings.allowNetwork };
        if (opts.printOffer) {
          const c = await probeCapacity('unknown', lendFlags);
          const lend = { cpus: c.cpus, memoryMb: c.memoryMb, gpus: c.gpus, allowNetwork: c.allowNetwork };
          if (opts.json) printJson({ name, lend, offer: settings.offer });
          else process.stdout.write(`${describeOffer(name, lend, settings.offer)}\n`);
          return EXIT.OK;
        }
        // `deqo --coordinator X agent` (before the command name) is the global flag; after it, the agent's own.
        const clients = await clientsFor(ctx.env, globals(cmd), opts.coordinator);
        const dataDir = opts.dataDir ?? join(ctx.env.home, 'agent');
        const identity = await loadOrCreateIdentity(dataDir);
        // JSON lines on stdout; every line names the agent, and lines about an execution its executionId and jobId.
        const log = pino({ level: 'info', base: { agent: name, agentId: identity.agentId } });
        const executor = new DockerExecutor({ agentId: identity.agentId, pullMissing: opts.pull ?? false });
        let dockerVersion: string;
        try {
          dockerVersion = await executor.version();
        } catch (err) {
          if (err instanceof ExecutorUnavailableError) throw new CliError(err.message, EXIT.ENVIRONMENT);
          throw err;
        }
        if (settings.allowNetwork) {
          try {
            const network = await executor.prepareNetwork({ allowPrivateNetwork: settings.allowPrivateNetwork });
            log.info({ network }, 'network jobs run on this Docker network');
          } catch (err) {
            if (err instanceof NetworkFenceError) throw new CliError(err.message, EXIT.ENVIRONMENT);
            throw err;
          }
        }
        const capacity = await probeCapacity(dockerVersion, lendFlags);
        process.stderr.write(`${describeOffer(name, capacity, settings.offer)}\n`);
        const agent = new Agent(
          clients,
          executor,
          capacity,
          {
            dataDir,
            name,
            offer: settings.offer,
            gracePeriodMs: opts.gracePeriod * 1000,
            testCorruptOutputs: opts.testCorruptOutputs ?? false,
          },
          log,
          opts.testOwnerLoadFile ? new FileLoadSampler(opts.testOwnerLoadFile) : undefined,
        );
        // Stop handlers first: start() may wait a long time for a coordinator to answer.
        const stopped = new Promise<void>((resolve) => {
          const stop = () => {
            process.stderr.write('stopping agent…\n');
            void agent.stop().then(resolve);
          };
          process.once('SIGINT', stop);
          process.once('SIGTERM', stop);
        });
        await agent.start();
        if (agent.running)
          process.stderr.write(
            `agent ${name} (${agent.id.slice(0, 12)}…) lending ${capacity.cpus} cores, ${capacity.memoryMb} MiB to ` +
              `${clients.map((c) => c.baseUrl).join(', ')} (${agent.currentAvailability.state}); Ctrl-C stops it\n`,
          );
        await stopped;
      }),
    );
}
