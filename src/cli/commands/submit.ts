/** `deqo submit`: run a container job, in the spirit of `docker run`, or submit a spec file. */
import { Command, Option } from 'commander';
import { basename } from 'node:path';
import { TERMINAL_JOB_STATES } from '../../core/index.js';
import { action, globals, type CliContext } from '../command.js';
import { CliError, EXIT } from '../exit-codes.js';
import { followJob } from '../follow.js';
import { printJson } from '../format.js';
import { clientFor } from '../settings.js';
import { readSpecFile, resolveSpec } from '../specfile.js';
import { parseMemoryMb, parseSeconds, parseEnvPair, parseInputFlag, parseIntFlag, parseCpus } from './units.js';

interface SubmitOptions {
  file?: string; name?: string; cpus?: number; memory?: number; timeout?: number; input: Array<{ path: string; file: string }>;
  output?: string; replicas?: number; quorum?: number; env: Record<string, string>; network?: boolean; wait?: boolean; json?: boolean;
}

export function submitCommand(ctx: CliContext): Command {
  return new Command('submit')
    .description('submit a job: an image and a command (like `docker run`), or a spec file with -f')
    // Like `docker run`: everything after the image belongs to the container's command.
    .passThroughOptions()
    .argument('[image]', 'container image, e.g. deqo/busybox:test')
    .argument('[command...]', 'command and arguments run in the container (no shell unless you start one)')
    .option('-f, --file <spec>', 'job spec file (YAML or JSON); flags given too override its fields')
    .option('--name <name>', 'a name to recognise the job by')
    .option('--cpus <n>', 'CPU cores (fractions allowed) [default 1]', parseCpus)
    .option('--memory <size>', 'memory limit, e.g. 512m, 2g (MiB if no unit) [default 512m]', parseMemoryMb)
    .option('--timeout <duration>', 'wall-clock limit, e.g. 90s, 10m, 2h (seconds if no unit) [default 10m]', parseSeconds)
    .option('--input <file[:path]>', 'local file to upload and mount read-only at /inputs/<path> (repeatable)', parseInputFlag, [])
    .option('--output <dir>', 'directory inside the container whose files are the outputs [default /outputs]')
    .option('--replicas <n>', 'executions per task, each on a different provider [default 1]', parseIntFlag)
    .option('--quorum <n>', 'matching results needed to accept a task [default 1]', parseIntFlag)
    .option('-e, --env <KEY=VALUE>', 'environment variable for the container (repeatable)', parseEnvPair, {})
    .option('--network', 'ask for network access (only providers that allow it will run the job)')
    .option('-w, --wait', 'follow the job live until it ends; exit 1 if it fails')
    .addOption(new Option('--json', 'print JSON (the job id, or the final job with --wait)'))
    .addHelpText('after', `
Examples:
  deqo submit deqo/busybox:test sh -c 'echo hello > /outputs/greeting.txt'
  deqo submit --cpus 2 --memory 1g --timeout 5m --input data.csv:train.csv \\
      deqo/python-sklearn:bookworm python3 -c 'print(open("/inputs/train.csv").read()[:80])'
  deqo submit --replicas 3 --quorum 2 --wait deqo/busybox:test sh -c 'sha256sum /inputs/* > /outputs/sums' --input big.bin
  deqo submit -f examples/svm-sweep/job.yaml --wait

Array jobs and sweeps need a spec file (see docs/job-spec.md); each task sees DEQO_TASK_INDEX and
DEQO_PARAM_<NAME> for its parameters.`)
    .action(action(async (image: string | undefined, command: string[], opts: SubmitOptions, cmd: Command) => {
      const client = await clientFor(ctx.env, globals(cmd));
      let raw: Record<string, unknown> = {};
      let baseDir = process.cwd();
      if (opts.file) ({ raw, baseDir } = await readSpecFile(opts.file));
      else if (!image || command.length === 0) throw new CliError('give an image and a command, or a spec file with -f (see `deqo submit --help`)', EXIT.USAGE);
      if (image) raw.image = image;
      if (command.length > 0) raw.command = command;
      if (opts.name) raw.name = opts.name;
      const resources = { ...(raw.resources as object | undefined) } as Record<string, unknown>;
      if (opts.cpus !== undefined) resources.cpus = opts.cpus;
      if (opts.memory !== undefined) resources.memoryMb = opts.memory;
      if (opts.timeout !== undefined) resources.timeoutSeconds = opts.timeout;
      if (Object.keys(resources).length > 0) raw.resources = resources;
      const verification = { ...(raw.verification as object | undefined) } as Record<string, unknown>;
      if (opts.replicas !== undefined) verification.replicas = opts.replicas;
      if (opts.quorum !== undefined) verification.quorum = opts.quorum;
      if (Object.keys(verification).length > 0) raw.verification = verification;
      if (Object.keys(opts.env).length > 0) raw.env = { ...(raw.env as object | undefined), ...opts.env };
      if (opts.output) raw.outputDir = opts.output;
      if (opts.network) raw.network = true;
      if (opts.input.length > 0) {
        const flagInputs = opts.input.map((i) => ({ path: i.path || basename(i.file), file: i.file }));
        raw.inputs = [...((raw.inputs as unknown[] | undefined) ?? []), ...flagInputs];
        if (!opts.file) baseDir = process.cwd();
      }
      const spec = await resolveSpec(client, raw, baseDir);
      const { jobId, tasks } = await client.submitJob(spec);
      if (!opts.wait) {
        if (opts.json) printJson({ jobId, tasks }); else process.stdout.write(`${jobId}\n`);
        process.stderr.write(`submitted ${jobId} (${tasks} task${tasks === 1 ? '' : 's'}); follow it with: deqo status ${jobId}\n`);
        return EXIT.OK;
      }
      process.stderr.write(`submitted ${jobId} (${tasks} task${tasks === 1 ? '' : 's'})\n`);
      const view = await followJob(client, jobId, (l) => process.stderr.write(`${l}\n`));
      if (opts.json) printJson(view); else process.stdout.write(`${jobId} ${view.state}\n`);
      return TERMINAL_JOB_STATES.includes(view.state) && view.state === 'succeeded' ? EXIT.OK : EXIT.JOB_FAILED;
    }));
}
