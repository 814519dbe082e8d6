/** Money and matching commands: `deqo quote`, `deqo balance`, `deqo ledger`, `deqo explain`. All take --json. */
import { Command, Option } from 'commander';
import { formatDecimalCredits, PROBE_PAIR } from '../../core/index.js';
import { action, globals, type CliContext } from '../command.js';
import { EXIT } from '../exit-codes.js';
import { printJson, table } from '../format.js';
import { addJobFlags, rawSpecFromFlags, type JobFlagOptions } from '../jobflags.js';
import { clientFor } from '../settings.js';
import { terminalLine } from '../terminal.js';
import { resolveSpec } from '../specfile.js';
import { parseIntFlag } from './units.js';

const json = () => new Option('--json', 'print JSON for scripts');

export function quoteCommand(ctx: CliContext): Command {
  return addJobFlags(
    new Command('quote')
      .description('price a job before submitting it: escrow, cost per verification mode, matching providers')
      .passThroughOptions()
      .argument('[image]', 'container image')
      .argument('[command...]', 'command run in the container'),
  )
    .addOption(json())
    .addHelpText(
      'after',
      `
Takes the same flags and spec files as \`deqo submit\`; inputs are hashed, not uploaded.
Examples:
  deqo quote -f examples/svm-sweep/job.yaml
  deqo quote --cpus 2 --timeout 1h --replicas 3 --quorum 2 deqo/busybox:test true
Exit code 6 when your balance does not cover the escrow.`,
    )
    .action(
      action(
        async (
          image: string | undefined,
          command: string[],
          opts: JobFlagOptions & { json?: boolean },
          cmd: Command,
        ) => {
          const client = await clientFor(ctx.env, globals(cmd));
          const { raw, baseDir } = await rawSpecFromFlags(image, command, opts);
          const spec = await resolveSpec(client, raw, baseDir, false);
          const q = await client.quote(spec);
          if (opts.json) {
            printJson(q);
            return q.affordable ? EXIT.OK : EXIT.INSUFFICIENT_FUNDS;
          }
          const out = (s: string) => process.stdout.write(`${s}\n`);
          out(
            `${q.tasks} task(s); one execution costs at most ${formatDecimalCredits(q.executionMaxCost)} (timeout × resources × your maximum prices + start fee)`,
          );
          out(
            `expected runtime per execution: ${q.expectedSecondsPerExecution} s${q.matchingProviders > 0 ? '' : ' (no history: the timeout)'}\n`,
          );
          process.stdout.write(
            table(
              ['VERIFICATION', 'EXECUTIONS/TASK', 'MAX COST', 'EXPECTED COST'],
              q.modes.map((m) => [
                `${m.mode}${m.mode === q.mode ? ' (this spec)' : ''}`,
                m.mode === 'adaptive' ? `1–${m.executionsPerTask}` : String(m.executionsPerTask),
                formatDecimalCredits(m.maxCost),
                formatDecimalCredits(m.expectedCost),
              ]),
            ),
          );
          if (q.errorBound)
            out(
              `\nerror bound ${q.errorBound.maxError}: about ${q.errorBound.executionsPerTask} agreeing executions per task from ` +
                `the matching providers (mean credibility ${q.errorBound.meanCredibility.toFixed(4)}), expected cost ` +
                `${formatDecimalCredits(q.errorBound.expectedCost)}; more when results disagree (escrow is topped up as needed)`,
            );
          out(
            `\nescrow held on submit: ${formatDecimalCredits(q.escrow)}; your balance: ${formatDecimalCredits(q.balance)}${q.affordable ? '' : ` — short by ${formatDecimalCredits(q.shortfall)}`}`,
          );
          if (spec.verification.checkDeterminism)
            out(
              `  (includes the determinism probe: ${PROBE_PAIR} executions of task 0 at most ` +
                `${formatDecimalCredits(q.executionMaxCost)} each, paid for the time they run)`,
            );
          out(
            `providers online that match: ${q.matchingProviders}${q.cheapestMatchingCpuHour !== null ? ` (cheapest ${formatDecimalCredits(q.cheapestMatchingCpuHour)}/core-hour)` : ''}` +
              `${q.feeBps > 0 ? `; platform fee ${q.feeBps / 100}% of payments` : ''}`,
          );
          return q.affordable ? EXIT.OK : EXIT.INSUFFICIENT_FUNDS;
        },
      ),
    );
}

export function balanceCommand(ctx: CliContext): Command {
  return new Command('balance')
    .description('your credits: available, held in escrow for running jobs, earned as a provider')
    .addOption(json())
    .action(
      action(async (opts: { json?: boolean }, cmd: Command) => {
        const b = await (await clientFor(ctx.env, globals(cmd))).balance();
        if (opts.json) {
          printJson(b);
          return;
        }
        process.stdout.write(
          `${b.accountName}: ${formatDecimalCredits(b.available)} available, ${formatDecimalCredits(b.inEscrow)} in escrow, ${formatDecimalCredits(b.earned)} earned\n`,
        );
      }),
    );
}

export function ledgerCommand(ctx: CliContext): Command {
  return new Command('ledger')
    .description('your ledger entries, newest first: grants, escrow holds, payments, refunds')
    .option('--job <id>', 'only entries of this job (with its escrow account, if it is yours)')
    .option('--limit <n>', 'at most this many [default 100]', parseIntFlag)
    .addOption(json())
    .action(
      action(async (opts: { job?: string; limit?: number; json?: boolean }, cmd: Command) => {
        const entries = await (await clientFor(ctx.env, globals(cmd))).ledger({ jobId: opts.job, limit: opts.limit });
        if (opts.json) {
          printJson(entries);
          return;
        }
        if (entries.length === 0) {
          process.stdout.write('no ledger entries yet\n');
          return;
        }
        process.stdout.write(
          table(
            ['WHEN', 'KIND', 'ACCOUNT', 'AMOUNT', 'JOB', 'MEMO'],
            entries.map((e) => [
              new Date(e.at).toISOString(),
              e.kind,
              e.account,
              (e.amount > 0 ? '+' : '') + formatDecimalCredits(e.amount),
              e.jobId ?? '',
              e.memo,
            ]),
          ),
        );
      }),
    );
}

export function explainCommand(ctx: CliContext): Command {
  return new Command('explain')
    .description('why each provider was or was not chosen for a job')
    .argument('<job>', 'job id')
    .addOption(json())
    .addHelpText(
      'after',
      `
Reasons: not_picked, arch, os, cpus, memory, disk, gpus, gpu_model, network, labels, price, reputation (the machine
can never run the job as offered); offline, outside_window, owner_busy, draining, at_capacity, quota_exhausted,
already_ran (it cannot right now).`,
    )
    .action(
      action(async (jobId: string, opts: { json?: boolean }, cmd: Command) => {
        const e = await (await clientFor(ctx.env, globals(cmd))).explain(jobId);
        if (opts.json) {
          printJson(e);
          return;
        }
        process.stdout.write(`job ${e.jobId}: ${e.state}. ${terminalLine(e.summary)}\n`);
        if (e.queueTimeoutAt)
          process.stdout.write(`waiting tasks fail as queue_timeout at ${new Date(e.queueTimeoutAt).toISOString()}\n`);
        process.stdout.write(
          '\n' +
            table(
              ['PROVIDER', 'AGENT', 'ONLINE', 'EXECUTIONS', 'VERDICT', 'WHY'],
              e.providers.map((p) => [
                p.name,
                p.agentId.slice(0, 12),
                p.online ? 'yes' : 'no',
                String(p.executions),
                p.eligible ? `eligible (rank ${p.rank})` : 'not chosen',
                p.reasons.map((r) => `${r.code}: ${r.message}`).join('; '),
              ]),
            ),
        );
      }),
    );
}
