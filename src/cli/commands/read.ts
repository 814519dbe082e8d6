/** Read commands: `deqo status`, `deqo jobs`, `deqo providers`, `deqo logs`, `deqo cancel`. All take --json. */
import { Command, Option } from 'commander';
import { formatDecimalCredits, formatDuration } from '../../core/index.js';
import { JobStateSchema, TASK_PAGE_MAX, TaskStateSchema, type TaskState, type TaskView } from '../../protocol/index.js';
import { action, globals, type CliContext } from '../command.js';
import { CliError, EXIT } from '../exit-codes.js';
import { formatExecution, formatFailure, formatParams, printJson, table } from '../format.js';
import { clientFor } from '../settings.js';
import { terminalLine, terminalText } from '../terminal.js';
import type { DeqoClient } from '../../client/index.js';
import { parseCpus, parseIntFlag, parseMemoryMb } from './units.js';

const json = () => new Option('--json', 'print JSON for scripts');

/** Tasks `deqo status` lists per page by default. */
const STATUS_PAGE = 50;

export function statusCommand(ctx: CliContext): Command {
  return new Command('status')
    .description('show a job: its state, tasks per state, and a page of its tasks with each execution per provider')
    .argument('<job>', 'job id (from `deqo submit` or `deqo jobs`)')
    .addOption(new Option('--tasks <state>', 'list only tasks in this state').choices(TaskStateSchema.options))
    .option('--page <n>', 'which page of tasks to list, from 1 [default 1]', parseIntFlag)
    .option('--page-size <n>', `tasks per page, 1-${TASK_PAGE_MAX} [default ${STATUS_PAGE}]`, parseIntFlag)
    .addOption(json())
    .addHelpText(
      'after',
      '\nExamples:\n  deqo status job_3f2a…                  failure reasons say who caused them: (job) or (provider)' +
        "\n  deqo status job_3f2a… --tasks failed   an array job's failed tasks, 50 per page (--page 2 …)",
    )
    .action(
      action(
        async (
          jobId: string,
          opts: { json?: boolean; tasks?: TaskState; page?: number; pageSize?: number },
          cmd: Command,
        ) => {
          const size = opts.pageSize ?? STATUS_PAGE;
          if (size < 1 || size > TASK_PAGE_MAX)
            throw new CliError(`--page-size must be between 1 and ${TASK_PAGE_MAX}, got ${size}`, EXIT.USAGE);
          if (opts.page !== undefined && opts.page < 1)
            throw new CliError(`--page counts from 1, got ${opts.page}`, EXIT.USAGE);
          const page = opts.page ?? 1;
          const view = await (
            await clientFor(ctx.env, globals(cmd))
          ).getJob(jobId, { taskOffset: (page - 1) * size, taskLimit: size, taskState: opts.tasks });
          if (opts.json) {
            printJson(view);
            return;
          }
          const took = view.finishedAt ? ` in ${formatDuration(view.finishedAt - view.createdAt)}` : '';
          const v = view.spec.verification;
          const c = view.taskCounts;
          const total = c.queued + c.running + c.verified + c.failed + c.cancelled;
          process.stdout.write(
            `job ${view.id}${view.name ? ` (${terminalLine(view.name)})` : ''}: ${view.state}${took}\n`,
          );
          process.stdout.write(
            `image ${terminalLine(view.spec.image)}, ${total} task(s), verification ${v.mode}${v.mode === 'none' ? '' : ` ${v.quorum}-of-${v.replicas}`}` +
              `${view.probe ? `, determinism probe ${view.probe}` : ''}\n`,
          );
          const states = TaskStateSchema.options.filter((s) => c[s] > 0).map((s) => `${c[s]} ${s}`);
          if (total > 1) process.stdout.write(`tasks: ${states.join(', ')}\n`);
          const b = view.billing;
          process.stdout.write(
            `credits: ${formatDecimalCredits(b.escrowHeld)} held in escrow, ${formatDecimalCredits(b.paid)} paid to providers${b.fees > 0 ? ` (${formatDecimalCredits(b.fees)} fees)` : ''}, ` +
              `${formatDecimalCredits(b.refunded)} refunded${b.settled ? ' (settled)' : `, ${formatDecimalCredits(b.inEscrow)} still held`}\n\n`,
          );
          process.stdout.write(
            table(
              ['TASK', 'PARAMS', 'STATE', 'EXECUTIONS', 'RESULT / REASON'],
              view.tasks.map((t) => [
                String(t.index),
                formatParams(t),
                t.state,
                t.executions.map(formatExecution).join(' '),
                t.failure
                  ? formatFailure(t.failure, view.spec)
                  : `${t.resultHash?.slice(0, 12) ?? ''}${t.audit ? ` (re-verification: ${t.audit})` : ''}`,
              ]),
            ),
          );
          const p = view.taskPage;
          if (p.total > view.tasks.length) {
            const which = p.state ? `${p.state} tasks` : 'tasks';
            const shown =
              view.tasks.length > 0 ? `${which} ${p.offset + 1}-${p.offset + view.tasks.length}` : `no ${which}`;
            const next =
              p.offset + view.tasks.length < p.total
                ? `; next: deqo status ${view.id}${p.state ? ` --tasks ${p.state}` : ''} --page ${page + 1}${opts.pageSize ? ` --page-size ${size}` : ''}`
                : '';
            process.stdout.write(`\n${shown} of ${p.total}${next}\n`);
          }
          if (view.history.length > 0) {
            process.stdout.write('\nhistory:\n');
            for (const h of view.history)
              process.stdout.write(`  ${new Date(h.at).toISOString()}  ${terminalLine(h.message)}\n`);
          }
          const waiting =
            p.total > view.tasks.length
              ? c.queued
              : view.tasks.filter(
                  (t) =>
                    t.state === 'queued' ||
                    (t.state === 'running' &&
                      t.executions.every((e) => !['assigned', 'running', 'reported'].includes(e.state))),
                ).length;
          if (waiting > 0)
            process.stdout.write(`\n${waiting} task(s) waiting for a provider; see why: deqo explain ${view.id}\n`);
        },
      ),
    );
}

export function jobsCommand(ctx: CliContext): Command {
  return new Command('jobs')
    .description('list your jobs, newest first')
    .addOption(new Option('--state <state>', 'only jobs in this state').choices(JobStateSchema.options))
    .option('--limit <n>', 'at most this many [default 50]', parseIntFlag)
    .addOption(json())
    .action(
      action(
        async (
          opts: { state?: (typeof JobStateSchema.options)[number]; limit?: number; json?: boolean },
          cmd: Command,
        ) => {
          const jobs = await (
            await clientFor(ctx.env, globals(cmd))
          ).listJobs({ state: opts.state, limit: opts.limit });
          if (opts.json) {
            printJson(jobs);
            return;
          }
          if (jobs.length === 0) {
            process.stdout.write('no jobs yet; submit one with `deqo submit`\n');
            return;
          }
          process.stdout.write(
            table(
              ['JOB', 'NAME', 'STATE', 'TASKS', 'IMAGE', 'CREATED'],
              jobs.map((j) => [
                j.id,
                j.name ?? '',
                j.state,
                `${j.tasks.verified}/${j.tasks.total} verified${j.tasks.failed ? `, ${j.tasks.failed} failed` : ''}`,
                j.image,
                new Date(j.createdAt).toISOString(),
              ]),
            ),
          );
        },
      ),
    );
}

interface CatalogOptions {
  minCpus?: number;
  minMemory?: number;
  gpus?: number;
  gpuModel?: string;
  arch?: string;
  os?: string;
  maxCpuHour?: number;
  minReputation?: number;
  online?: boolean;
  label?: string;
  sort?: string;
  order?: string;
  json?: boolean;
}

export function providersCommand(ctx: CliContext): Command {
  return new Command('providers')
    .description('the provider catalog: specs, prices, reputation, jobs done, online now')
    .option('--min-cpus <n>', 'at least this many cores lent', parseCpus)
    .option('--min-memory <size>', 'at least this much memory lent, e.g. 8g', parseMemoryMb)
    .option('--gpus <n>', 'at least this many GPUs', (v) => Number.parseInt(v, 10))
    .option('--gpu-model <text>', 'a GPU whose model contains this text')
    .option('--arch <arch>', 'architecture, e.g. amd64')
    .option('--os <os>', 'operating system, e.g. linux')
    .option('--max-cpu-hour <credits>', 'price per core-hour at most this', Number)
    .option('--min-reputation <score>', 'reputation score at least this (0–1)', Number)
    .option('--online', 'only agents online now')
    .option('--label <name=value>', 'only offers with this label')
    .addOption(
      new Option('--sort <key>', 'sort by')
        .choices(['price', 'reputation', 'cpus', 'memory', 'name', 'jobs'])
        .default('name'),
    )
    .addOption(
      new Option('--order <dir>', 'sort direction [default: asc for price/name, desc otherwise]').choices([
        'asc',
        'desc',
      ]),
    )
    .addOption(json())
    .addHelpText(
      'after',
      '\nExample:\n  deqo providers --online --min-cpus 4 --sort price      pick ids for `deqo submit --provider <id>`',
    )
    .action(
      action(async (o: CatalogOptions, cmd: Command) => {
        const ps = await (
          await clientFor(ctx.env, globals(cmd))
        ).listProviders({
          minCpus: o.minCpus,
          minMemoryMb: o.minMemory,
          gpus: o.gpus,
          gpuModel: o.gpuModel,
          arch: o.arch,
          os: o.os,
          maxCpuHour: o.maxCpuHour,
          minReputation: o.minReputation,
          online: o.online,
          label: o.label,
          sort: o.sort,
          order: o.order,
        } as Parameters<DeqoClient['listProviders']>[0]);
        if (o.json) {
          printJson(ps);
          return;
        }
        if (ps.length === 0) {
          process.stdout.write('no provider matches\n');
          return;
        }
        process.stdout.write(
          table(
            [
              'AGENT',
              'NAME',
              'STATUS',
              'CPUS',
              'MEMORY',
              'ARCH/OS',
              'GPUS',
              'CPU-HOUR',
              'GIB-HOUR',
              'REPUTATION',
              'DONE',
              'RUNNING',
              'AVAILABILITY',
            ],
            ps.map((p) => [
              p.agentId.slice(0, 12),
              p.name,
              p.status,
              String(p.capacity.cpus),
              `${p.capacity.memoryMb} MiB`,
              `${p.capacity.arch}/${p.capacity.os}`,
              p.capacity.gpus.length === 0 ? '0' : `${p.capacity.gpus.length}× ${p.capacity.gpus[0]!.model}`,
              formatDecimalCredits(p.offer.prices.cpuHour),
              formatDecimalCredits(p.offer.prices.memoryGiBHour),
              `${p.reputation.score.toFixed(2)} (${p.reputation.consecutiveValid} in a row)`,
              String(p.jobsDone),
              String(p.running),
              p.availability.state,
            ]),
          ),
        );
      }),
    );
}

export function logsCommand(ctx: CliContext): Command {
  return new Command('logs')
    .description("print a job's stdout (or stderr), per task, from the verified execution")
    .argument('<job>', 'job id')
    .option('--task <index>', 'only this task', (v) => Number.parseInt(v, 10))
    .option('--stderr', 'print stderr instead of stdout')
    .option('--execution <id>', 'a specific execution (any state)')
    .option('--raw', "print the job's bytes unchanged, terminal escape sequences included")
    .addOption(json())
    .addHelpText(
      'after',
      "\nThe output is the job's: escape sequences in it (colours, cursor moves, window titles, links, clipboard\n" +
        'writes) are removed and other control characters shown as \\xNN, unless --raw. --json escapes them too.',
    )
    .action(
      action(
        async (
          jobId: string,
          opts: { task?: number; stderr?: boolean; execution?: string; raw?: boolean; json?: boolean },
          cmd: Command,
        ) => {
          const client = await clientFor(ctx.env, globals(cmd));
          const { tasks, total } = await tasksOf(client, jobId, opts.task);
          const out: Array<{ taskIndex: number; executionId: string; agent: string; bytes: Uint8Array }> = [];
          for (const t of tasks) {
            if (opts.task !== undefined && t.index !== opts.task) continue;
            const e = opts.execution
              ? t.executions.find((x) => x.id === opts.execution)
              : (t.executions.find((x) => x.state === 'valid') ?? t.executions.find((x) => x.stdoutBlob !== null));
            const blob = opts.stderr ? e?.stderrBlob : e?.stdoutBlob;
            if (!e || !blob) continue;
            out.push({
              taskIndex: t.index,
              executionId: e.id,
              agent: e.agentName,
              bytes: await client.blobBytes(blob),
            });
          }
          if (opts.execution && out.length === 0)
            throw new CliError(
              `execution ${opts.execution} has no ${opts.stderr ? 'stderr' : 'stdout'} yet`,
              EXIT.NOT_FOUND,
            );
          const decode = (b: Uint8Array): string => new TextDecoder().decode(b);
          if (opts.json) {
            printJson(out.map(({ bytes, ...o }) => ({ ...o, text: decode(bytes) })));
            return;
          }
          if (out.length === 0) process.stderr.write('no logs yet: executions upload logs when they end\n');
          for (const o of out) {
            if (total > 1 || opts.execution)
              process.stdout.write(`==> task ${o.taskIndex} (${terminalLine(o.agent)}, ${o.executionId}) <==\n`);
            if (opts.raw) {
              process.stdout.write(o.bytes);
              continue;
            }
            const text = terminalText(decode(o.bytes));
            process.stdout.write(text.endsWith('\n') || text === '' ? text : `${text}\n`);
          }
        },
      ),
    );
}

/**
 * The tasks `deqo logs` reads: task `index` alone when given (tasks are numbered from 0, so its offset is its
 * index), else every task, a page of TASK_PAGE_MAX at a time. `total` is the job's task count.
 */
async function tasksOf(
  client: DeqoClient,
  jobId: string,
  index?: number,
): Promise<{ tasks: TaskView[]; total: number }> {
  if (index !== undefined) {
    const view = await client.getJob(jobId, { taskOffset: Math.max(0, index), taskLimit: 1 });
    return { tasks: view.tasks.filter((t) => t.index === index), total: view.taskPage.total };
  }
  const tasks: TaskView[] = [];
  for (;;) {
    const view = await client.getJob(jobId, { taskOffset: tasks.length, taskLimit: TASK_PAGE_MAX });
    tasks.push(...view.tasks);
    if (view.tasks.length === 0 || tasks.length >= view.taskPage.total) return { tasks, total: view.taskPage.total };
  }
}

export function cancelCommand(ctx: CliContext): Command {
  return new Command('cancel')
    .description('cancel a job: stops its executions; verified tasks keep their results')
    .argument('<job>', 'job id')
    .addOption(json())
    .action(
      action(async (jobId: string, opts: { json?: boolean }, cmd: Command) => {
        const cancelled = await (await clientFor(ctx.env, globals(cmd))).cancelJob(jobId);
        if (opts.json) printJson({ jobId, cancelled });
        else
          process.stdout.write(cancelled ? `cancelled ${jobId}\n` : `${jobId} had already ended; nothing to cancel\n`);
      }),
    );
}
