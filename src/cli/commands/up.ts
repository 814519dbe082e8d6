/** `deqo up`: start a local network (coordinator + N agents) and save the buyer key in the CLI config. */
import { Command, InvalidArgumentError } from 'commander';
import { join } from 'node:path';
import { action, type CliContext } from '../command.js';
import { saveProfile } from '../settings.js';
import { dashboardUrl } from './demo.js';
import { parseIntFlag } from './units.js';

export function upCommand(ctx: CliContext): Command {
  return new Command('up')
    .description('start a local network on this machine: a coordinator and N provider agents')
    .option('--agents <n>', 'number of agents, each its own provider [default 3]', parseIntFlag, 3)
    .option('--port <port>', 'coordinator port on 127.0.0.1 [default 8470]', (v) => Number.parseInt(v, 10), 8470)
    .option('--data-dir <dir>', 'where the network keeps its database, blobs and agents [default $DEQO_HOME/network]')
    .option(
      '--platform-fee <percent>',
      'platform fee taken from each payment to providers, e.g. 2.5 [default 0]',
      (v) => {
        const n = Number(v);
        if (!Number.isFinite(n) || n < 0 || n > 100)
          throw new InvalidArgumentError('expected a percentage from 0 to 100');
        return Math.round(n * 100);
      },
    )
    .addHelpText(
      'after',
      `
It saves the demo buyer's key as the "local" profile (current) in the CLI config, plus "local-admin" and
"local-provider-N" profiles, so in another terminal:
  deqo quote deqo/busybox:test true
  deqo submit --wait deqo/busybox:test sh -c 'echo hi > /outputs/hi.txt'
  deqo balance; deqo ledger
  deqo provider reputation --profile local-provider-1`,
    )
    .action(
      action(async (opts: { agents: number; port: number; dataDir?: string; platformFee?: number }) => {
        // Loaded when the network starts, not for `deqo --help` or other commands.
        const { DEMO_BUYER_CREDITS, startLocalNetwork } = await import('../network.js');
        const dataDir = opts.dataDir ?? join(ctx.env.home, 'network');
        const net = await startLocalNetwork({
          dataDir,
          agents: opts.agents,
          port: opts.port,
          feeBps: opts.platformFee,
        });
        await saveProfile(ctx.env.configPath, 'local', { coordinator: net.url, apiKey: net.buyerKey });
        await saveProfile(ctx.env.configPath, 'local-admin', { coordinator: net.url, apiKey: net.adminKey });
        for (const [i, key] of net.providerKeys.entries())
          await saveProfile(ctx.env.configPath, `local-provider-${i + 1}`, { coordinator: net.url, apiKey: key });
        await saveProfile(ctx.env.configPath, 'local', { coordinator: net.url, apiKey: net.buyerKey });
        process.stderr.write(
          `coordinator ${net.url} with ${opts.agents} agents (data in ${dataDir})\n` +
            `dashboard: ${dashboardUrl(net.url, net.buyerKey)}  (signed in as the demo buyer)\n` +
            `profiles saved in ${ctx.env.configPath}: "local" (the demo buyer, current, ${DEMO_BUYER_CREDITS} credits to start), ` +
            `"local-admin", "local-provider-1…${opts.agents}"; e.g. deqo balance --profile local-provider-1\nCtrl-C stops the network\n`,
        );
        await new Promise<void>((resolve) => {
          const stop = () => {
            process.stderr.write('stopping the network…\n');
            void net.stop().then(resolve);
          };
          process.once('SIGINT', stop);
          process.once('SIGTERM', stop);
        });
      }),
    );
}
