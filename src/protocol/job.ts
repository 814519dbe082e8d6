/**
 * Job spec: what a buyer submits. Validated at every edge (CLI, coordinator) with these schemas.
 * Units are in field names: memoryMb (MiB), timeoutSeconds, *Bytes.
 */
import { z } from 'zod';
import { execArgsProblem, inputCollision, INPUTS_DIR, outputDirProblem, PATH_MAX_DEPTH } from './limits.js';
import { ConstraintsSchema, MaxPriceSchema } from './offer.js';

/** A parameter value of an array job: strings, numbers and booleans only (they become env strings). */
export const ParamValueSchema = z.union([z.string().max(1024), z.number(), z.boolean()]);
export type ParamValue = z.infer<typeof ParamValueSchema>;

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;
const PARAM_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;
/** Docker image reference: [registry/]name[:tag][@sha256:digest], lower-case name parts. */
const IMAGE_REF =
  /^[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[0-9]+)?(?:\/[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*)*(?::[\w][\w.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$/;
/** Relative path inside /inputs: no leading or trailing slash, no `.` or `..` segment, no empty segment. */
export const REL_PATH = /^(?!\/)(?!.*\/\/)(?!.*\/$)(?!.*(?:^|\/)\.\.?(?:\/|$))[A-Za-z0-9._\-/]{1,255}$/;

/** Ids of jobs, tasks, executions, agents and accounts. */
export const IdSchema = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'expected an id');

export const Sha256Schema = z
  .string()
  .regex(/^[a-f0-9]{64}$/, 'expected a SHA-256 hex digest (64 lower-case hex characters)');

export const ResourcesSchema = z
  .object({
    /** CPU cores (fractions allowed), enforced with a CFS quota. */
    cpus: z.number().positive().max(256).default(1),
    /** Memory limit in MiB; swap is not allowed beyond it. Exceeding it ends the execution as out_of_memory. */
    memoryMb: z.number().int().min(16).max(1_048_576).default(512),
    /** Wall-clock limit in seconds from container start. */
    timeoutSeconds: z
      .number()
      .int()
      .min(1)
      .max(7 * 24 * 3600)
      .default(600),
    /** Maximum processes/threads inside the container. */
    pids: z.number().int().min(8).max(65_536).default(256),
    /** GPUs to reserve (only offers with that many GPUs match; see constraints.gpuModel). */
    gpus: z.number().int().min(0).max(16).default(0),
  })
  .strict();
export type Resources = z.infer<typeof ResourcesSchema>;

export const LimitsSchema = z
  .object({
    /** stdout kept per execution, bytes; the rest is dropped and the log marked truncated. */
    stdoutBytes: z
      .number()
      .int()
      .min(0)
      .max(64 * 1024 * 1024)
      .default(1024 * 1024),
    /** stderr kept per execution, bytes. */
    stderrBytes: z
      .number()
      .int()
      .min(0)
      .max(64 * 1024 * 1024)
      .default(1024 * 1024),
    /** Total size of the output directory, bytes; exceeding it ends the execution as output_too_large. */
    outputBytes: z
      .number()
      .int()
      .min(0)
      .max(16 * 1024 ** 3)
      .default(256 * 1024 * 1024),
  })
  .strict();
export type Limits = z.infer<typeof LimitsSchema>;

export const InputSchema = z
  .object({
    /** Path under /inputs where the blob appears (read-only), e.g. "sweep.py". */
    path: z
      .string()
      .regex(REL_PATH, 'expected a relative path without ".." (letters, digits, . _ - /)')
      .refine((p) => p.split('/').length <= PATH_MAX_DEPTH + 1, `at most ${PATH_MAX_DEPTH} folders deep`),
    /** SHA-256 of a blob already uploaded with `POST /v1/blobs`. */
    blob: Sha256Schema,
  })
  .strict();
export type Input = z.infer<typeof InputSchema>;

/** A glob of output files, relative to the output directory (no leading `/`, no `..` segment). */
const OUTPUT_GLOB = /^(?!\/)(?!.*(?:^|\/)\.\.(?:\/|$))[^\0]{1,255}$/;

/**
 * A comparator rule: output files matching `glob` (relative to the output directory; `*` stays within one folder,
 * `**` crosses folders, `?`, `[...]` and `{a,b}` as in a shell) are compared as `format` values, numbers within a
 * tolerance: |a − b| ≤ absTol, or |a − b| ≤ relTol · max(|a|, |b|). Strings, keys, structure and shape must agree
 * exactly. At least one tolerance; both non-negative.
 */
export const CompareRuleSchema = z
  .object({
    glob: z
      .string()
      .regex(OUTPUT_GLOB, 'expected a glob relative to the output directory, such as "metrics.json" or "**/*.csv"'),
    format: z.enum(['json', 'csv']),
    /** Largest absolute difference accepted between two numbers. */
    absTol: z.number().min(0).max(1e300).optional(),
    /** Largest difference accepted relative to the larger magnitude of the two numbers (e.g. 1e-6). */
    relTol: z.number().min(0).max(1).optional(),
  })
  .strict()
  .refine((r) => r.absTol !== undefined || r.relTol !== undefined, {
    message: 'give absTol or relTol (or both): the tolerance numbers may differ by',
    path: ['absTol'],
  });
export type CompareRule = z.infer<typeof CompareRuleSchema>;

/**
 * How results are verified (and paid for): `none` runs one execution and trusts it; `replicate` runs
 * `replicas` on distinct providers and needs `quorum` to agree; `adaptive` lets a provider with a long record
 * of cross-checked valid results run a task alone (BOINC's adaptive replication), otherwise replicates.
 */
export const VerificationModeSchema = z.enum(['none', 'replicate', 'adaptive']);
export type VerificationMode = z.infer<typeof VerificationModeSchema>;

export const VerificationSchema = z
  .object({
    mode: VerificationModeSchema.default('replicate'),
    /** Executions started per task on distinct providers. */
    replicas: z.number().int().min(1).max(16).default(1),
    /** Matching result hashes needed to accept a task. */
    quorum: z.number().int().min(1).max(16).default(1),
    /** Cap on executions per task (including replacements); default replicas + 3. */
    maxExecutions: z.number().int().min(1).max(64).optional(),
    /** Provider-side errors (crash, lost lease) tolerated per task before it fails; default 3. */
    maxErrors: z.number().int().min(1).max(64).default(3),
    /**
     * The error bound ε: the highest acceptable probability that an accepted result is wrong (e.g. 1e-4). A task is
     * accepted only when its agreeing results' credibility reaches 1 − ε (docs/verification.md); more replicas are
     * placed until it does (up to maxExecutions). Absent: quorum voting with probation.
     */
    maxError: z.number().gt(0).max(0.5).optional(),
    /**
     * Allow the verified tasks of this job to be replayed to other providers as spot-checks (tasks whose answer the
     * network knows, used to catch lying providers). A replay shows the task's inputs and command to one more
     * provider; off by default.
     */
    spotChecks: z.boolean().default(false),
    /**
     * Output comparator: files matching a rule's glob agree when their JSON or CSV values agree within its tolerance
     * (the first matching rule applies). Other files, stdout and the exit code must agree exactly. At most 32 rules.
     */
    compare: z.array(CompareRuleSchema).max(32).default([]),
    /**
     * Determinism probe: before any task is placed, task 0 runs twice on one provider (both copies at once, so that
     * agent needs room for two); when the two results differ (or disagree under `compare`) the job fails naming the
     * outputs that differ, else the job fans out as usual. The buyer pays both probe executions. Off by default.
     */
    checkDeterminism: z.boolean().default(false),
  })
  .strict()
  .refine((v) => v.mode !== 'none' || (v.replicas === 1 && v.quorum === 1), {
    message: 'mode "none" runs one execution: leave replicas and quorum at 1',
    path: ['replicas'],
  })
  .refine((v) => v.quorum <= v.replicas, { message: 'quorum must be at most replicas', path: ['quorum'] })
  .refine((v) => v.maxExecutions === undefined || v.maxExecutions >= v.replicas, {
    message: 'maxExecutions must be at least replicas',
    path: ['maxExecutions'],
  });
export type Verification = z.infer<typeof VerificationSchema>;

/** Image a script job runs in when the spec names none (Debian bookworm python3 + scikit-learn, no pip). */
export const DEFAULT_SCRIPT_IMAGE = 'deqo/python-sklearn:bookworm';
/** Where a script job's source appears in the container (an input path no other input may use, nor a folder of it). */
export const SCRIPT_INPUT_PATH = 'main.py';
/** Command a script job runs when the spec gives none: the source, written by the agent to /inputs/main.py. */
export const SCRIPT_COMMAND: readonly string[] = Object.freeze(['python3', `${INPUTS_DIR}/${SCRIPT_INPUT_PATH}`]);
/** Largest script source, bytes of UTF-8. */
export const SCRIPT_MAX_BYTES = 256 * 1024;
/** A pip requirement: a PEP 508 name, optional extras, optional version specifiers (no URLs, no options). */
const REQUIREMENT =
  /^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,98}[A-Za-z0-9])?(?:\[[A-Za-z0-9._,-]{1,100}\])?(?:(?:===|==|!=|<=|>=|~=|<|>)[A-Za-z0-9.*+!_-]{1,50}(?:,(?:===|==|!=|<=|>=|~=|<|>)[A-Za-z0-9.*+!_-]{1,50}){0,5})?$/;

/**
 * A script job: Python source run as `/inputs/main.py` (the agent writes it there), with pip requirements
 * that must be importable in the image — or are installed with pip when the job has `network: true` (and so
 * only runs on providers that allow network). A requirement that cannot be met fails the task as
 * `requirements_unavailable` (docs/job-spec.md).
 */
export const ScriptSchema = z
  .object({
    language: z.literal('python'),
    /** The program, UTF-8, at most SCRIPT_MAX_BYTES bytes. */
    source: z
      .string()
      .refine(
        (s) => new TextEncoder().encode(s).length <= SCRIPT_MAX_BYTES,
        `the script source is larger than ${SCRIPT_MAX_BYTES / 1024} KiB`,
      ),
    /** pip requirement names such as "numpy" or "scikit-learn>=1.2"; at most 50. */
    requirements: z
      .array(z.string().regex(REQUIREMENT, 'expected a pip requirement such as "numpy" or "pandas>=2"'))
      .max(50)
      .default([]),
  })
  .strict();
export type Script = z.infer<typeof ScriptSchema>;

/** Most parameters of one task (each becomes two environment variables). */
const MAX_PARAMS = 64;
const ParamsSchema = z
  .record(z.string().regex(PARAM_NAME, 'parameter names are letters, digits and _'), ParamValueSchema)
  .refine((p) => Object.keys(p).length <= MAX_PARAMS, `at most ${MAX_PARAMS} parameters per task`);

/**
 * Array job: one task per index. Exactly one of `count`, `parameters` (explicit list) or `sweep`
 * (cartesian product of value lists, first key varying slowest) is given.
 */
export const ArraySchema = z
  .object({
    count: z.number().int().min(1).max(10_000).optional(),
    parameters: z.array(ParamsSchema).min(1).max(10_000).optional(),
    sweep: z
      .record(
        z.string().regex(PARAM_NAME, 'parameter names are letters, digits and _'),
        z.array(ParamValueSchema).min(1).max(10_000),
      )
      .optional(),
  })
  .strict()
  .refine((a) => [a.count, a.parameters, a.sweep].filter((x) => x !== undefined).length === 1, {
    message: 'give exactly one of count, parameters or sweep',
  });
export type ArraySpec = z.infer<typeof ArraySchema>;

/**
 * The job spec. `image` and `command` are required, except for a script job (`script`), where they default to
 * DEFAULT_SCRIPT_IMAGE and SCRIPT_COMMAND (the parsed spec always has both).
 */
export const JobSpecSchema = z
  .object({
    name: z.string().min(1).max(100).optional(),
    image: z
      .string()
      .max(512)
      .regex(IMAGE_REF, 'expected a Docker image reference such as "python:3.12" or "deqo/busybox:test"')
      .optional(),
    /** argv of the container's process; no shell unless the command starts one. */
    command: z.array(z.string()).min(1).max(1024).optional(),
    /** A Python script to run (see ScriptSchema). */
    script: ScriptSchema.optional(),
    env: z
      .record(
        z
          .string()
          .regex(ENV_NAME, 'environment names are letters, digits and _')
          .refine((k) => !k.startsWith('DEQO_'), 'names starting with DEQO_ are reserved'),
        z.string(),
      )
      .default({}),
    resources: ResourcesSchema.default(ResourcesSchema.parse({})),
    inputs: z.array(InputSchema).max(1000).default([]),
    /** Absolute, normalized directory inside the container whose files are the task's outputs (limits.ts). */
    outputDir: z
      .string()
      .max(255)
      .regex(/^[A-Za-z0-9._\-/]+$/, 'expected an absolute path of letters, digits and . _ - /')
      .superRefine((p, ctx) => {
        const problem = outputDirProblem(p);
        if (problem) ctx.addIssue({ code: 'custom', message: problem });
      })
      .default('/outputs'),
    /** Ask for network access; only providers that allow it will run the job. */
    network: z.boolean().default(false),
    verification: VerificationSchema.default(VerificationSchema.parse({})),
    /** Which providers may run the job (arch, OS, GPU model, labels, reputation, picked providers). */
    constraints: ConstraintsSchema.default(ConstraintsSchema.parse({})),
    /** Highest price accepted per unit; the escrow is computed from it. Credits. */
    maxPrice: MaxPriceSchema.default(MaxPriceSchema.parse({})),
    /** A task that no provider takes for this long fails as queue_timeout (see `deqo explain`). Seconds. */
    queueTimeoutSeconds: z
      .number()
      .int()
      .min(1)
      .max(30 * 86_400)
      .default(86_400),
    limits: LimitsSchema.default(LimitsSchema.parse({})),
    array: ArraySchema.optional(),
  })
  .strict()
  .refine((s) => s.constraints.gpuModel === undefined || s.resources.gpus > 0, {
    message: 'constraints.gpuModel needs resources.gpus of at least 1',
    path: ['constraints', 'gpuModel'],
  })
  .refine((s) => s.script !== undefined || s.image !== undefined, {
    message: 'expected an image (or a script)',
    path: ['image'],
  })
  .refine((s) => s.script !== undefined || s.command !== undefined, {
    message: 'expected a command (or a script)',
    path: ['command'],
  })
  .superRefine((s, ctx) => {
    const reserved = s.script ? [SCRIPT_INPUT_PATH] : [];
    const clash = inputCollision(
      s.inputs.map((i) => i.path),
      reserved,
    );
    if (clash)
      ctx.addIssue({
        code: 'custom',
        path: ['inputs', clash.index, 'path'],
        message:
          typeof clash.other === 'string'
            ? `a script job's source is ${INPUTS_DIR}/${clash.other}: use another input path, not it nor under it`
            : `collides with inputs.${clash.other}.path: two inputs cannot share a path, nor can one be a folder of another`,
      });
    const exec = execArgsProblem(s.command ?? SCRIPT_COMMAND, s.env);
    if (exec) ctx.addIssue({ code: 'custom', path: exec.path.split('.'), message: exec.message });
  })
  .transform((s) => ({ ...s, image: s.image ?? DEFAULT_SCRIPT_IMAGE, command: s.command ?? [...SCRIPT_COMMAND] }));
/** A validated job spec with defaults filled in. */
export type JobSpec = z.infer<typeof JobSpecSchema>;
/** A job spec as a user writes it (defaults optional). */
export type JobSpecInput = z.input<typeof JobSpecSchema>;
