/** `deqo agent`: run one provider agent against a coordinator. */
import { Command, Option } from 'commander';
import { hostname } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { Agent, ExecutorUnavailableError, probeCapacity } from '../../agent/index.js';
import { DockerExecutor } from '../../agent/docker-executor.js';
import { loadOrCreateIdentity } from '../../agent/identity.js';
import { action, globals, type CliContext } from '../command.js';
import { CliError, EXIT } from '../exit-codes.js';
import { clientFor } from '../settings.js';
import { parseCpus, parseMemoryMb } from './units.js';

interface AgentOptions { dataDir?: string; name?: string; cpus?: number; memory?: number; allowNetwork?: boolean; pull?: boolean; testCorruptOutputs?: boolean }

export function agentCommand(ctx: CliContext): Command {
  return new Command('agent').description('run a provider agent: lend this machine to a coordinator (outbound connections only)')
    .option('--data-dir <dir>', 'identity key and work folders [default $DEQO_HOME/agent]')
    .option('--name <name>', 'a display name for this machine [default the host name]')
    .option('--cpus <n>', 'cores to lend [default all]', parseCpus)
    .option('--memory <size>', 'memory to lend, e.g. 8g [default all]', parseMemoryMb)
    .option('--allow-network', 'let jobs that ask for network access have it')
    .option('--pull', 'pull images that are missing locally (otherwise they fail as image_not_found)')
    .addOption(new Option('--test-corrupt-outputs', 'TEST ONLY: report corrupted results').hideHelp())
    .addHelpText('after', `
The agent needs a provider API key (--api-key or DEQO_API_KEY) and a reachable Docker engine.
Example:
  DEQO_API_KEY=deqo_… deqo agent --coordinator http://10.0.0.5:8470 --cpus 4 --memory 8g --name lab-pc`)
    .action(action(async (opts: AgentOptions, cmd: Command) => {
      const client = await clientFor(ctx.env, globals(cmd));
      const dataDir = opts.dataDir ?? join(ctx.env.home, 'agent');
      const name = (opts.name ?? hostname()).replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 64);
      const log = pino({ level: 'info', base: { agent: name } });
      const identity = await loadOrCreateIdentity(dataDir);
      const executor = new DockerExecutor({ agentId: identity.agentId, pullMissing: opts.pull ?? false });
      let dockerVersion: string;
      try { dockerVersion = await executor.version(); } catch (err) {
        if (err instanceof ExecutorUnavailableError) throw new CliError(err.message, EXIT.ENVIRONMENT);
        throw err;
      }
      const capacity = await probeCapacity(dockerVersion, { cpus: opts.cpus, memoryMb: opts.memory, allowNetwork: opts.allowNetwork ?? false });
      const agent = new Agent(client, executor, capacity,
        { dataDir, name, testCorruptOutputs: opts.testCorruptOutputs ?? false }, log);
      await agent.start();
      process.stderr.write(`agent ${name} (${agent.id.slice(0, 12)}…) lending ${capacity.cpus} cores, ${capacity.memoryMb} MiB to ${client.baseUrl}; Ctrl-C stops it\n`);
      await new Promise<void>((resolve) => {
        const stop = () => { process.stderr.write('stopping agent…\n'); void agent.stop().then(resolve); };
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
    }));
}
