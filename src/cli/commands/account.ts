/**
 * Account commands: `deqo login`, `deqo whoami`, `deqo keys`, `deqo provider …` (a provider's agents and
 * reputation) and `deqo admin …` (accounts, grants, ledger audit).
 */
import { createInterface } from 'node:readline/promises';
import { Command, Option } from 'commander';
import { DeqoClient } from '../../client/index.js';
import { formatDecimalCredits, formatDuration } from '../../core/index.js';
import { MAX_CREDITS, MIN_CREDITS, RoleSchema } from '../../protocol/index.js';
import { action, globals, type CliContext } from '../command.js';
import { CliError, EXIT } from '../exit-codes.js';
import { printJson, table } from '../format.js';
import { clientFor, saveProfile } from '../settings.js';
import { parseIntFlag } from './units.js';

const json = () => new Option('--json', 'print JSON for scripts');

async function promptKey(): Promise<string> {
  if (!process.stdin.isTTY)
    throw new CliError('give the key with --api-key (or DEQO_API_KEY); there is no terminal to ask on', EXIT.USAGE);
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return (await rl.question('API key: ')).trim();
  } finally {
    rl.close();
  }
}

export function loginCommand(ctx: CliContext): Command {
  return new Command('login')
    .description('check an API key against a coordinator and save both as a named profile')
    .option('--name <profile>', 'profile name to save [default "default"]', 'default')
    .addHelpText(
      'after',
      `
The config file ($DEQO_HOME/config.json, mode 0600) keeps named profiles of coordinator URL + key; the
saved profile becomes the current one. Pick another per command with --profile or DEQO_PROFILE.
Example:
  deqo login --coordinator https://deqo.example.org --api-key deqo_… --name work`,
    )
    .action(
      action(async (opts: { name: string }, cmd: Command) => {
        const g = globals(cmd);
        const coordinator = (g.coordinator ?? ctx.env.coordinator ?? 'http://127.0.0.1:8470').replace(/\/$/, '');
        const apiKey = g.apiKey ?? ctx.env.apiKey ?? (await promptKey());
        const me = await new DeqoClient(coordinator, apiKey).whoami();
        await saveProfile(ctx.env.configPath, opts.name, { coordinator, apiKey });
        process.stdout.write(
          `logged in to ${coordinator} as ${me.accountName} (${me.scope} key); saved as profile "${opts.name}" in ${ctx.env.configPath}\n`,
        );
      }),
    );
}

export function whoamiCommand(ctx: CliContext): Command {
  return new Command('whoami')
    .description('the account and key scope the current key belongs to')
    .addOption(json())
    .action(
      action(async (opts: { json?: boolean }, cmd: Command) => {
        const me = await (await clientFor(ctx.env, globals(cmd))).whoami();
        if (opts.json) printJson(me);
        else
          process.stdout.write(
            `${me.accountName} (${me.accountId}), roles ${me.roles.join(', ')}, this key: ${me.scope}\n`,
          );
      }),
    );
}

export function keysCommand(ctx: CliContext): Command {
  const keys = new Command('keys').description('your API keys: list, create (shown once), revoke');
  keys
    .command('list', { isDefault: true })
    .description('list your keys (never the keys themselves)')
    .addOption(json())
    .action(
      action(async (opts: { json?: boolean }, cmd: Command) => {
        const ks = await (await clientFor(ctx.env, globals(cmd))).listKeys();
        if (opts.json) {
          printJson(ks);
          return;
        }
        process.stdout.write(
          table(
            ['KEY ID', 'SCOPE', 'LABEL', 'CREATED', 'REVOKED'],
            ks.map((k) => [
              k.keyId,
              k.scope,
              k.label ?? '',
              new Date(k.createdAt).toISOString(),
              k.revokedAt ? new Date(k.revokedAt).toISOString() : '',
            ]),
          ),
        );
      }),
    );
  keys
    .command('create')
    .description('create a key for one of your roles; it is printed once, store it now')
    .addOption(new Option('--scope <scope>', 'what the key may do').choices(RoleSchema.options).makeOptionMandatory())
    .option('--label <text>', 'a note to recognise the key by')
    .addOption(json())
    .action(
      action(async (opts: { scope: 'buyer' | 'provider' | 'admin'; label?: string; json?: boolean }, cmd: Command) => {
        const k = await (await clientFor(ctx.env, globals(cmd))).createKey(opts.scope, opts.label);
        if (opts.json) printJson(k);
        else {
          process.stdout.write(`${k.apiKey}\n`);
          process.stderr.write(`key ${k.keyId} (${k.scope}) created; it is shown only this once\n`);
        }
      }),
    );
  keys
    .command('revoke')
    .description('revoke one of your keys (requests with it then answer 401)')
    .argument('<keyId>', 'key id from `deqo keys`')
    .action(
      action(async (keyId: string, _opts: unknown, cmd: Command) => {
        await (await clientFor(ctx.env, globals(cmd))).revokeKey(keyId);
        process.stdout.write(`revoked ${keyId}\n`);
      }),
    );
  return keys;
}

export function providerCommand(ctx: CliContext): Command {
  const provider = new Command('provider').description(
    "a provider's own view: its agents and its reputation (needs a provider key)",
  );
  provider
    .command('agents')
    .description('your agents: online, availability, offer, running executions, jobs done')
    .addOption(json())
    .action(
      action(async (opts: { json?: boolean }, cmd: Command) => {
        const ps = await (await clientFor(ctx.env, globals(cmd))).providerAgents();
        if (opts.json) {
          printJson(ps);
          return;
        }
        process.stdout.write(
          table(
            ['AGENT', 'NAME', 'ONLINE', 'AVAILABILITY', 'CPU-HOUR', 'RUNNING', 'DONE'],
            ps.map((p) => [
              p.agentId.slice(0, 12),
              p.name,
              p.online ? 'yes' : 'no',
              p.availability.state,
              formatDecimalCredits(p.offer.prices.cpuHour),
              String(p.running),
              String(p.jobsDone),
            ]),
          ),
        );
      }),
    );
  provider
    .command('reputation')
    .description('your reputation (BOINC rules) and every change to it, newest first')
    .option('--limit <n>', 'events to show [default 50]', parseIntFlag, 50)
    .addOption(json())
    .action(
      action(async (opts: { limit: number; json?: boolean }, cmd: Command) => {
        const r = await (await clientFor(ctx.env, globals(cmd))).providerReputation(opts.limit);
        if (opts.json) {
          printJson(r);
          return;
        }
        const x = r.reputation;
        process.stdout.write(
          `score ${x.score.toFixed(3)}: ${x.valid} valid, ${x.invalid} invalid, ${x.errors} errors (error rate ${(x.errorRate * 100).toFixed(1)}%); ` +
            `${x.consecutiveValid} consecutive valid; mean turnaround ${x.meanTurnaroundMs === null ? '-' : formatDuration(x.meanTurnaroundMs)}; ` +
            `daily quota ${x.dailyQuota} (${x.startedToday} used in the last 24 h)\n\n`,
        );
        process.stdout.write(
          table(
            ['WHEN', 'EVENT', 'CROSS-CHECKED', 'CONSECUTIVE', 'QUOTA', 'SCORE', 'JOB', 'EXECUTION'],
            r.events.map((e) => [
              new Date(e.at).toISOString(),
              e.kind,
              e.crossChecked ? 'yes' : 'no',
              String(e.consecutiveValid),
              String(e.dailyQuota),
              e.score.toFixed(3),
              e.jobId ?? '',
              e.executionId ?? '',
            ]),
          ),
        );
      }),
    );
  return provider;
}

export function adminCommand(ctx: CliContext): Command {
  const admin = new Command('admin').description(
    'administration (needs an admin key): accounts, credit grants, ledger audit',
  );
  admin
    .command('create-account')
    .description('create an account; prints its first API key once')
    .argument('<name>', 'account name')
    .addOption(new Option('--role <role...>', 'roles').choices(RoleSchema.options).makeOptionMandatory())
    .addOption(json())
    .action(
      action(
        async (name: string, opts: { role: Array<'buyer' | 'provider' | 'admin'>; json?: boolean }, cmd: Command) => {
          const r = await (await clientFor(ctx.env, globals(cmd))).adminCreateAccount(name, opts.role);
          if (opts.json) printJson(r);
          else {
            process.stdout.write(`${r.apiKey}\n`);
            process.stderr.write(
              `account ${name} (${r.accountId}) created; its ${opts.role[0]} key is shown only this once\n`,
            );
          }
        },
      ),
    );
  admin
    .command('grant')
    .description('grant credits to an account (issued by the platform)')
    .argument('<account>', 'account name or id')
    .argument('<credits>', 'amount, e.g. 50', (v) => {
      const n = Number(v);
      if (!(n >= MIN_CREDITS && n <= MAX_CREDITS))
        throw new CliError(`credits must be a number from ${MIN_CREDITS} to ${MAX_CREDITS}`, EXIT.USAGE);
      return n;
    })
    .option('--memo <text>', 'why')
    .addOption(json())
    .action(
      action(async (account: string, credits: number, opts: { memo?: string; json?: boolean }, cmd: Command) => {
        const r = await (await clientFor(ctx.env, globals(cmd))).adminGrant(account, credits, opts.memo);
        if (opts.json) printJson(r);
        else
          process.stdout.write(
            `granted ${formatDecimalCredits(credits)} to ${account}; available now ${formatDecimalCredits(r.available)}\n`,
          );
      }),
    );
  admin
    .command('vouch')
    .description(
      'vouch for a provider you run or vetted: it is established at once (off probation), so its results count\n' +
        'for a quorum and it may run adaptive tasks alone; how a new network gets its first trusted providers',
    )
    .argument('<account>', 'provider account name or id')
    .addOption(json())
    .action(
      action(async (account: string, opts: { json?: boolean }, cmd: Command) => {
        const r = await (await clientFor(ctx.env, globals(cmd))).adminVouch(account);
        if (opts.json) printJson(r);
        else process.stdout.write(`vouched for ${account} (${r.providerId})\n`);
      }),
    );
  admin
    .command('audit')
    .description('check the ledger: every transaction balances, cached balances equal the entries, none negative')
    .addOption(json())
    .action(
      action(async (opts: { json?: boolean }, cmd: Command) => {
        const r = await (await clientFor(ctx.env, globals(cmd))).adminAudit();
        if (opts.json) printJson(r);
        else
          process.stdout.write(
            r.sound ? 'ledger sound\n' : `ledger problems:\n${r.problems.map((p) => `  ${p}`).join('\n')}\n`,
          );
        return r.sound ? EXIT.OK : EXIT.INTERNAL;
      }),
    );
  return admin;
}
