/** The `deqo` command line: `deqo <command>`; one file per command under commands/. */
import { Command } from 'commander';
import { adminCommand, keysCommand, loginCommand, providerCommand, whoamiCommand } from './commands/account.js';
import { agentCommand } from './commands/agent.js';
import { coordinatorCommand } from './commands/coordinator.js';
import { balanceCommand, explainCommand, ledgerCommand, quoteCommand } from './commands/market.js';
import { demoCommand } from './commands/demo.js';
import { cancelCommand, jobsCommand, logsCommand, providersCommand, statusCommand } from './commands/read.js';
import { resultsCommand } from './commands/results.js';
import { runCommand } from './commands/run.js';
import { submitCommand } from './commands/submit.js';
import { upCommand } from './commands/up.js';
import { EXIT } from './exit-codes.js';
import { readEnv } from './settings.js';

const ctx = { env: readEnv() };

/**
 * The connection flags, accepted before or after the command name (`deqo --profile x jobs` or `deqo jobs --profile x`).
 * A command that defines `--coordinator` itself (`deqo agent`: repeatable) keeps its own.
 */
function withGlobalOptions(cmd: Command): Command {
  if (!cmd.options.some((o) => o.long === '--coordinator'))
    cmd.option(
      '--coordinator <url>',
      'coordinator URL [env DEQO_COORDINATOR, else the config profile, else http://127.0.0.1:8470]',
    );
  return cmd
    .option('--api-key <key>', 'API key [env DEQO_API_KEY, else the config profile]')
    .option('--profile <name>', 'config profile to use [env DEQO_PROFILE]');
}

const program = withGlobalOptions(new Command('deqo'))
  .description("Deqo: run container jobs on providers' idle machines, verified by redundant execution")
  .showHelpAfterError('(run with --help for usage)')
  .enablePositionalOptions()
  .exitOverride((err) => {
    // commander's own exits: help/version are success, usage errors are EXIT.USAGE.
    process.exit(err.exitCode === 0 ? EXIT.OK : EXIT.USAGE);
  })
  .addHelpText(
    'after',
    `
Quick start:
  deqo demo                                   run the demo (local network + verified SVM sweep)
  deqo up                                     start a local network; then in another terminal:
  deqo submit --wait deqo/busybox:test sh -c 'echo hi > /outputs/hi.txt'
  deqo results <job>                          download its verified outputs

Exit codes: 0 ok, 1 job failed, 2 usage/bad spec, 3 not found, 4 auth, 5 coordinator unreachable,
6 insufficient credits, 69 missing prerequisite (e.g. no Docker engine), 70 internal error.`,
  );

const commands = [
  submitCommand,
  runCommand,
  quoteCommand,
  statusCommand,
  explainCommand,
  logsCommand,
  resultsCommand,
  jobsCommand,
  cancelCommand,
  providersCommand,
  balanceCommand,
  ledgerCommand,
  loginCommand,
  whoamiCommand,
  keysCommand,
  providerCommand,
  adminCommand,
  upCommand,
  coordinatorCommand,
  agentCommand,
  demoCommand,
];
for (const make of commands) {
  program.addCommand(
    withGlobalOptions(make(ctx)).exitOverride((err) => process.exit(err.exitCode === 0 ? EXIT.OK : EXIT.USAGE)),
  );
}

await program.parseAsync(process.argv);
