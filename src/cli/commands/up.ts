/** `deqo up`: start a local network (coordinator + N agents) and save the buyer key in the CLI config. */
import { Command } from 'commander';
import { join } from 'node:path';
import { action, type CliContext } from '../command.js';
import { startLocalNetwork } from '../network.js';
import { saveProfile } from '../settings.js';
import { parseIntFlag } from './units.js';

export function upCommand(ctx: CliContext): Command {
  return new Command('up').description('start a local network on this machine: a coordinator and N provider agents')
    .option('--agents <n>', 'number of agents, each its own provider [default 3]', parseIntFlag, 3)
    .option('--port <port>', 'coordinator port on 127.0.0.1 [default 8470]', (v) => Number.parseInt(v, 10), 8470)
    .option('--data-dir <dir>', 'where the network keeps its database, blobs and agents [default $DEQO_HOME/network]')
    .addHelpText('after', `
It saves a buyer key as the "local" profile in the CLI config, so in another terminal:
  deqo submit --wait deqo/busybox:test sh -c 'echo hi > /outputs/hi.txt'
  deqo jobs`)
    .action(action(async (opts: { agents: number; port: number; dataDir?: string }) => {
      const dataDir = opts.dataDir ?? join(ctx.env.home, 'network');
      const net = await startLocalNetwork({ dataDir, agents: opts.agents, port: opts.port });
      await saveProfile(ctx.env.configPath, 'local', { coordinator: net.url, apiKey: net.buyerKey });
      process.stderr.write(`coordinator ${net.url} with ${opts.agents} agents (data in ${dataDir})\n` +
        `buyer key saved as profile "local" in ${ctx.env.configPath}; Ctrl-C stops the network\n`);
      await new Promise<void>((resolve) => {
        const stop = () => { process.stderr.write('stopping the network…\n'); void net.stop().then(resolve); };
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
    }));
}
