/**
 * Job spec files (YAML or JSON). Besides the protocol's `{path, blob}` inputs, a file may name a local file:
 * `{path: "sweep.py", file: "./sweep.py"}` (relative to the spec file); the CLI uploads it and puts its blob.
 */
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { sha256File, type DeqoClient } from '../client/index.js';
import { fieldIssues, JobSpecSchema, type JobSpec } from '../protocol/index.js';
import { CliError, EXIT } from './exit-codes.js';
import { uploadWithProgress } from './transfer.js';

/** Reads a YAML/JSON spec file. Throws CliError (USAGE) for unreadable or unparsable files. */
export async function readSpecFile(path: string): Promise<{ raw: Record<string, unknown>; baseDir: string }> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new CliError(`cannot read ${path}: ${(err as Error).message}`, EXIT.USAGE);
  }
  let raw: unknown;
  try {
    // Loaded when a spec file is read, not with every command (`deqo --help` stays light).
    const { parse } = await import('yaml');
    raw = parse(text);
  } catch (err) {
    throw new CliError(`${path} is not valid YAML/JSON: ${(err as Error).message}`, EXIT.USAGE);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    throw new CliError(`${path}: expected a mapping of job fields`, EXIT.USAGE);
  return { raw: raw as Record<string, unknown>, baseDir: dirname(resolve(path)) };
}

/**
 * Uploads `file:` inputs (relative to baseDir) — or with `upload: false` (quotes) only hashes them — and
 * validates the result against the job spec schema. Throws CliError (USAGE) naming each bad field.
 */
export async function resolveSpec(
  client: DeqoClient,
  raw: Record<string, unknown>,
  baseDir: string,
  upload = true,
): Promise<JobSpec> {
  const inputs = Array.isArray(raw.inputs) ? raw.inputs : [];
  const resolved = [];
  for (const [i, input] of inputs.entries()) {
    if (input && typeof input === 'object' && 'file' in input) {
      const { file, ...rest } = input as { file: unknown };
      if (typeof file !== 'string') throw new CliError(`inputs.${i}.file: expected a path to a local file`, EXIT.USAGE);
      const path = resolve(baseDir, file);
      let blob: string;
      try {
        blob = upload ? (await uploadWithProgress(client, path)).sha256 : await sha256File(path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT')
          throw new CliError(`inputs.${i}.file: ${path} does not exist`, EXIT.USAGE);
        throw err;
      }
      resolved.push({ ...rest, blob });
    } else {
      resolved.push(input);
    }
  }
  const candidate = raw.inputs === undefined ? raw : { ...raw, inputs: resolved };
  const r = JobSpecSchema.safeParse(candidate);
  if (!r.success) {
    throw new CliError(
      `invalid job spec:\n${fieldIssues(r.error)
        .map((x) => `  ${x.path}: ${x.message}`)
        .join('\n')}`,
      EXIT.USAGE,
    );
  }
  return r.data;
}
