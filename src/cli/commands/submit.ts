/** `deqo submit`: run a container job, in the spirit of `docker run`, or submit a spec file. */
import { Command, Option } from 'commander';
import { formatDecimalCredits, TERMINAL_JOB_STATES } from '../../core/index.js';
import { action, globals, type CliContext } from '../command.js';
import { EXIT } from '../exit-codes.js';
import { followJob } from '../follow.js';
import { printJson } from '../format.js';
import { clientFor } from '../settings.js';
import { addJobFlags, rawSpecFromFlags, type JobFlagOptions } from '../jobflags.js';
import { resolveSpec } from '../specfile.js';
import type { DeqoClient } from '../../client/index.js';
import type { JobSpec, JobView } from '../../protocol/index.js';

interface SubmitOptions extends JobFlagOptions {
  wait?: boolean;
  json?: boolean;
}

export function submitCommand(ctx: CliContext): Command {
  return addJobFlags(
    new Command('submit')
      .description('submit a job: an image and a command (like `docker run`), or a spec file with -f')
      // Like `docker run`: everything after the image belongs to the container's command.
      .passThroughOptions()
      .argument('[image]', 'container image, e.g. deqo/busybox:test')
      .argument('[command...]', 'command and arguments run in the container (no shell unless you start one)'),
  )
    .option('-w, --wait', 'follow the job live until it ends; exit 1 if it fails')
    .addOption(new Option('--json', 'print JSON (the job id, or the final job with --wait)'))
    .addHelpText(
      'after',
      `
Examples:
  deqo submit deqo/busybox:test sh -c 'echo hello > /outputs/greeting.txt'
  deqo submit --cpus 2 --memory 1g --timeout 5m --input data.csv:train.csv \\
      deqo/python-sklearn:bookworm python3 -c 'print(open("/inputs/train.csv").read()[:80])'
  deqo submit --replicas 3 --quorum 2 --wait deqo/busybox:test sh -c 'sha256sum /inputs/* > /outputs/sums' --input big.bin
  deqo submit -f examples/svm-sweep/job.yaml --wait
  deqo submit --verify adaptive --replicas 3 --quorum 2 --max-cpu-hour 0.05 deqo/busybox:test true
  deqo submit --check-determinism --replicas 2 --quorum 2 --wait -f examples/svm-sweep/job.yaml

Submitting holds the job's maximum cost in escrow (see \`deqo quote\`); what providers are not paid
returns when the job ends. With --check-determinism task 0 first runs twice at once on one provider
(two more executions in escrow); if the two results differ the job fails naming the outputs that
differ (see docs/job-spec.md, "Determinism probe").

Array jobs and sweeps need a spec file (see docs/job-spec.md); each task sees DEQO_TASK_INDEX and
DEQO_PARAM_<NAME> for its parameters.`,
    )
    .action(
      action(async (image: string | undefined, command: string[], opts: SubmitOptions, cmd: Command) => {
        const client = await clientFor(ctx.env, globals(cmd));
        const { raw, baseDir } = await rawSpecFromFlags(image, command, opts);
        const view = await submitAndFollow(client, await resolveSpec(client, raw, baseDir), opts);
        if (!view) return EXIT.OK;
        if (opts.json) printJson(view);
        else process.stdout.write(`${view.id} ${view.state}\n`);
        return TERMINAL_JOB_STATES.includes(view.state) && view.state === 'succeeded' ? EXIT.OK : EXIT.JOB_FAILED;
      }),
    );
}

/**
 * Submits `spec` and says so: without `wait`, prints the job id (or `{jobId, tasks, escrow}` with `json`) and
 * returns null; with it, follows the job live on stderr until it ends and returns its final view.
 * Throws ApiError from the coordinator (e.g. insufficient_funds).
 */
export async function submitAndFollow(
  client: DeqoClient,
  spec: JobSpec,
  opts: { wait?: boolean; json?: boolean },
): Promise<JobView | null> {
  const { jobId, tasks, escrow } = await client.submitJob(spec);
  const held = `${tasks} task${tasks === 1 ? '' : 's'}, ${formatDecimalCredits(escrow)} held in escrow`;
  if (!opts.wait) {
    if (opts.json) printJson({ jobId, tasks, escrow });
    else process.stdout.write(`${jobId}\n`);
    process.stderr.write(`submitted ${jobId} (${held}); follow it with: deqo status ${jobId}\n`);
    return null;
  }
  process.stderr.write(`submitted ${jobId} (${held})\n`);
  return followJob(client, jobId, (l) => process.stderr.write(`${l}\n`));
}
