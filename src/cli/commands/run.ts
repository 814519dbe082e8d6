/** `deqo run script.py`: submit a Python script job, follow it, and print the verified result's stdout. */
import { readFile } from 'node:fs/promises';
import { Command, Option } from 'commander';
import { VerificationModeSchema, type JobResults } from '../../protocol/index.js';
import { submitAndFollow } from './submit.js';
import { action, globals, type CliContext } from '../command.js';
import { CliError, EXIT } from '../exit-codes.js';
import { formatFailure, printJson } from '../format.js';
import { addJobFlags, rawSpecFromFlags, type JobFlagOptions } from '../jobflags.js';
import { clientFor } from '../settings.js';
import { resolveSpec } from '../specfile.js';
import { terminalLine, terminalText } from '../terminal.js';
import { collect } from './units.js';

interface RunOptions extends JobFlagOptions {
  requirement: string[];
  requirementsFile?: string;
  image?: string;
  verification?: string;
  wait: boolean;
  raw?: boolean;
  json?: boolean;
}

/**
 * The requirement lines of a requirements.txt: blank lines and `#` comments skipped. Throws CliError (USAGE)
 * for pip options (`-r`, `--index-url` …), which script jobs do not take.
 */
export function parseRequirementsFile(text: string, path: string): string[] {
  const out: string[] = [];
  for (const [i, rawLine] of text.split(/\r?\n/).entries()) {
    const line = rawLine.replace(/(^|\s)#.*$/, '').trim();
    if (line === '') continue;
    if (line.startsWith('-'))
      throw new CliError(`${path}:${i + 1}: pip options are not supported in script jobs (${line})`, EXIT.USAGE);
    out.push(line.replace(/\s+/g, ''));
  }
  return out;
}

async function readText(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new CliError(`cannot read ${path}: ${(err as Error).message}`, EXIT.USAGE);
  }
}

/**
 * Writes each task's verified stdout (fetched from its blob) to stdout and each failure to stderr, or all of it as
 * JSON. `as` says how: `json`, `raw` (the bytes unchanged) or `text` (made terminal-safe, terminal.ts).
 */
async function printResults(
  results: JobResults,
  fetch: (sha: string) => Promise<Uint8Array>,
  as: 'json' | 'raw' | 'text',
): Promise<void> {
  const tasks = [];
  for (const t of results.tasks) {
    const bytes = t.state === 'verified' && t.stdoutBlob ? await fetch(t.stdoutBlob) : null;
    const stdout = bytes && new TextDecoder().decode(bytes);
    tasks.push({ taskIndex: t.taskIndex, state: t.state, failure: t.failure, stdout });
    if (as === 'json') continue;
    if (results.tasks.length > 1) process.stderr.write(`--- task ${t.taskIndex}: ${t.state}\n`);
    if (bytes !== null) process.stdout.write(as === 'raw' ? bytes : terminalText(stdout!));
    if (t.failure) process.stderr.write(`task ${t.taskIndex} failed: ${terminalLine(formatFailure(t.failure))}\n`);
  }
  if (as === 'json') printJson({ jobId: results.jobId, state: results.state, tasks });
}

export function runCommand(ctx: CliContext): Command {
  return addJobFlags(
    new Command('run')
      .description('run a Python script on the network (a script job), follow it live, and print its verified stdout')
      .argument('<script>', 'Python file to run; it appears as /inputs/main.py, outputs go to /outputs'),
  )
    .option(
      '--requirement <name>',
      'pip requirement the script imports, e.g. numpy or pandas>=2 (repeatable)',
      collect,
      [],
    )
    .option('--requirements-file <file>', 'requirements.txt with one requirement a line')
    .option('--image <image>', 'image to run in [default deqo/python-sklearn:bookworm]')
    .addOption(new Option('--verification <mode>', 'same as --verify').choices(VerificationModeSchema.options))
    .option('--no-wait', 'print the job id and return at once')
    .option('--raw', "print the script's stdout bytes unchanged, terminal escape sequences included")
    .addOption(new Option('--json', "print JSON (the job id, or each task's state, failure and stdout)"))
    .addHelpText(
      'after',
      `
Examples:
  deqo run train.py
  deqo run train.py --requirement scikit-learn --replicas 3 --quorum 2
  deqo run analysis.py --requirements-file requirements.txt --provider <agentId> --verify none

Requirements must be importable in the image, or installable with pip where the job has network access
(--network; only providers that allow it run such jobs). Otherwise the job fails as requirements_unavailable.
The stdout is the job's: escape sequences in it are removed and other control characters shown as \\xNN, unless --raw.`,
    )
    .action(
      action(async (scriptPath: string, opts: RunOptions, cmd: Command) => {
        const client = await clientFor(ctx.env, globals(cmd));
        const requirements = [
          ...(opts.requirementsFile
            ? parseRequirementsFile(await readText(opts.requirementsFile), opts.requirementsFile)
            : []),
          ...opts.requirement,
        ];
        opts.verify ??= opts.verification;
        const { raw, baseDir } = await rawSpecFromFlags(opts.image, [], opts, false);
        raw.script = {
          ...(raw.script as object | undefined),
          language: 'python',
          source: await readText(scriptPath),
          requirements,
        };
        const view = await submitAndFollow(client, await resolveSpec(client, raw, baseDir), opts);
        if (!view) return EXIT.OK;
        const jobId = view.id;
        const as = opts.json ? 'json' : opts.raw ? 'raw' : 'text';
        await printResults(await client.getResults(jobId), (sha) => client.blobBytes(sha), as);
        return view.state === 'succeeded' ? EXIT.OK : EXIT.JOB_FAILED;
      }),
    );
}
