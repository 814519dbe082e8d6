/**
 * `deqo results`: download and unpack a job's verified outputs, checking every file against its result hash; a copy
 * that does not match is replaced by another agreeing provider's (download.ts).
 */
import { Command, Option } from 'commander';
import { resolve } from 'node:path';
import { action, globals, type CliContext } from '../command.js';
import { downloadResults } from '../download.js';
import { EXIT } from '../exit-codes.js';
import { formatFailure, formatParams, printJson, table } from '../format.js';
import { clientFor } from '../settings.js';

export function resultsCommand(ctx: CliContext): Command {
  return new Command('results')
    .description('download the verified outputs of a job into a folder (one sub-folder per task)')
    .argument('<job>', 'job id')
    .option('-o, --out <dir>', 'where to write outputs [default ./deqo-results/<job>]')
    .option('--no-download', 'only show which providers agreed on each result')
    .addOption(
      new Option(
        '--json',
        'print JSON: per task the result hash, agreeing providers and their outputs, manifest, local folder and whose outputs it holds',
      ),
    )
    .addHelpText('after', '\nExample:\n  deqo results job_3f2a… -o ./out && cat ./out/task-0/result.json')
    .action(
      action(async (jobId: string, opts: { out?: string; download: boolean; json?: boolean }, cmd: Command) => {
        const client = await clientFor(ctx.env, globals(cmd));
        const results = await client.getResults(jobId);
        const dir = resolve(opts.out ?? `deqo-results/${jobId}`);
        const downloaded = opts.download ? await downloadResults(client, results, dir) : [];
        if (opts.json) {
          printJson({
            ...results,
            tasks: results.tasks.map((t) => {
              const d = downloaded.find((x) => x.taskIndex === t.taskIndex);
              return { ...t, dir: d?.dir ?? null, outputsFrom: d?.from ?? null };
            }),
          });
        } else {
          process.stdout.write(
            table(
              ['TASK', 'PARAMS', 'STATE', 'AGREED BY', 'RESULT HASH / REASON'],
              results.tasks.map((t) => [
                String(t.taskIndex),
                formatParams({ index: t.taskIndex, params: t.params }),
                t.state,
                t.agreedBy.map((a) => a.agentName).join(' + '),
                t.failure ? formatFailure(t.failure) : (t.resultHash?.slice(0, 16) ?? ''),
              ]),
            ),
          );
          if (downloaded.length > 0)
            process.stdout.write(`\nverified outputs of ${downloaded.length} task(s) written to ${dir}\n`);
        }
        return results.tasks.every((t) => t.state === 'verified') ? EXIT.OK : EXIT.JOB_FAILED;
      }),
    );
}
