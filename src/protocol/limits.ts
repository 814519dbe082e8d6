/**
 * Admission limits: every limit a job spec can hit in the container, Docker, the kernel or the ledger, as one constant
 * each, with the checks the job spec schema (job.ts) applies at submit and quote. The agent and the coordinator import
 * the same constants, so a spec the coordinator accepts is one an agent can run (docs/job-spec.md, "Limits"); what an
 * agent can package is bounded in api.ts (MAX_OUTPUT_FILES, MAX_OUTPUT_PATH_BYTES, MAX_MANIFEST_BYTES).
 */

/** Micro-credits per credit: the API speaks decimal credits, the ledger integer micro-credits (µcr). */
export const MICRO_PER_CREDIT = 1_000_000;
/** Smallest positive amount of credits the ledger counts (1 µcr). A positive price or grant below it is refused. */
export const MIN_CREDITS = 1 / MICRO_PER_CREDIT;
/**
 * Most micro-credits in circulation (granted and not taken back): 10¹⁵ µcr = 10⁹ credits. Every other bound
 * follows from it: no balance but the issuer's is negative and all balances sum to zero, so every balance, escrow
 * and payment is at most this; a job's worst case (tasks × maxExecutions × the most one execution costs) is
 * refused above it. 2⁵³ ≈ 9.007 × 10¹⁵, so a sum of up to nine such amounts is still exact in a JS number.
 */
export const MAX_MICRO = 1_000_000_000_000_000;
/** MAX_MICRO in credits (10⁹). */
export const MAX_CREDITS = MAX_MICRO / MICRO_PER_CREDIT;

/**
 * Most folders deep an input path or the output directory may be (output files are bounded by MAX_OUTPUT_PATH_BYTES,
 * api.ts).
 */
export const PATH_MAX_DEPTH = 32;

/** Where inputs appear in the container (read-only). */
export const INPUTS_DIR = '/inputs';
/** The container's writable scratch folder (a tmpfs) and its working directory. */
export const TMP_DIR = '/tmp';
/**
 * Container paths an output directory may not be, nor lie under: the inputs and scratch mounts, and what the kernel
 * or Docker mounts itself (/proc, /sys, /dev and the files Docker writes into /etc).
 */
export const RESERVED_CONTAINER_PATHS: readonly string[] = Object.freeze([
  INPUTS_DIR,
  TMP_DIR,
  '/proc',
  '/sys',
  '/dev',
  '/etc/hosts',
  '/etc/hostname',
  '/etc/resolv.conf',
]);

/** Most environment variables a job may set. */
export const ENV_MAX_VARS = 1024;
/**
 * Largest single command argument or `NAME=value` environment string, UTF-8 bytes. Linux refuses to exec a string
 * of MAX_ARG_STRLEN (131,072 bytes, with its NUL) or more ("argument list too long").
 */
export const EXEC_STRING_MAX_BYTES = 65_536;
/**
 * Largest command and environment together, bytes of their JSON (as the agent sends them to Docker). Docker 20.10
 * answers 431 to a container-create request over about 1 MiB (measured: a 1,050,000-byte variable is accepted,
 * 1,060,000 refused); half of it leaves room for what the agent adds (DEQO_* variables, a script's bootstrap).
 */
export const EXEC_ARGS_MAX_BYTES = 512 * 1024;

/**
 * UTF-8 length of `s`, bytes, as TextEncoder would encode it (a lone surrogate becomes U+FFFD, 3 bytes), counted
 * without encoding: admission checks every task's environment of an array, and encoding each was a tenth of a
 * 10,000-task submit's CPU.
 */
export function utf8Bytes(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

/** A problem with one field: its path (dotted, as in API error details) and what was expected. */
export interface FieldProblem {
  path: string;
  message: string;
}

/**
 * Whether a container's command and environment fit what the kernel and Docker accept: each string at most
 * EXEC_STRING_MAX_BYTES, at most ENV_MAX_VARS variables, both together at most EXEC_ARGS_MAX_BYTES of JSON.
 * Returns the first problem (path `command.<i>`, `env.<NAME>`, `env` or `command`), or null.
 */
export function execArgsProblem(
  command: readonly string[],
  env: Readonly<Record<string, string>>,
): FieldProblem | null {
  const names = Object.keys(env);
  if (names.length > ENV_MAX_VARS)
    return { path: 'env', message: `at most ${ENV_MAX_VARS} variables, got ${names.length}` };
  for (const [i, arg] of command.entries())
    if (utf8Bytes(arg) > EXEC_STRING_MAX_BYTES)
      return { path: `command.${i}`, message: `an argument is at most ${EXEC_STRING_MAX_BYTES} bytes of UTF-8` };
  for (const name of names)
    if (utf8Bytes(`${name}=${env[name]}`) > EXEC_STRING_MAX_BYTES)
      return { path: `env.${name}`, message: `NAME=value is at most ${EXEC_STRING_MAX_BYTES} bytes of UTF-8` };
  const total = utf8Bytes(JSON.stringify(command)) + utf8Bytes(JSON.stringify(names.map((n) => `${n}=${env[n]}`)));
  if (total > EXEC_ARGS_MAX_BYTES)
    return {
      path: names.length > 0 ? 'env' : 'command',
      message: `command and environment together are ${Math.ceil(total / 1024)} KiB; at most ${EXEC_ARGS_MAX_BYTES / 1024} KiB (Docker refuses larger containers)`,
    };
  return null;
}

/**
 * Why `p` cannot be a container's output directory, or null: it must be absolute and normalized (no empty, `.` or
 * `..` segment, no trailing `/`), at most PATH_MAX_DEPTH folders deep, not `/`, and neither one of nor under
 * RESERVED_CONTAINER_PATHS, nor a parent of /inputs.
 */
export function outputDirProblem(p: string): string | null {
  if (!p.startsWith('/')) return 'expected an absolute path such as /outputs';
  const segments = p.slice(1).split('/');
  if (p === '/') return 'the output directory cannot be /';
  if (segments.some((s) => s === '' || s === '.' || s === '..'))
    return `expected a normalized absolute path (no "//", "." or "..", no trailing "/"), such as /outputs`;
  if (segments.length > PATH_MAX_DEPTH) return `at most ${PATH_MAX_DEPTH} folders deep`;
  for (const r of RESERVED_CONTAINER_PATHS) {
    if (p === r || p.startsWith(`${r}/`))
      return `${r} is reserved in the container: use another folder, such as /outputs`;
    if (r.startsWith(`${p}/`)) return `${p} would hide ${r}: use another folder, such as /outputs`;
  }
  return null;
}

/**
 * The first input path that collides with another: the same path, or a file at a path another input uses as a
 * folder (`a` and `a/b`). `reserved` are paths the agent writes itself (a script's main.py). Returns the index of
 * the later input and the other's: its index, or the reserved path it collides with; null when none collide.
 */
export function inputCollision(
  paths: readonly string[],
  reserved: readonly string[] = [],
): { index: number; other: number | string } | null {
  const files = new Map<string, number | string>(reserved.map((r) => [r, r]));
  const folders = new Map<string, number | string>();
  for (const r of reserved) for (const f of parentsOf(r)) folders.set(f, r);
  for (const [index, p] of paths.entries()) {
    const other =
      files.get(p) ??
      folders.get(p) ??
      parentsOf(p)
        .map((f) => files.get(f))
        .find((x) => x !== undefined);
    if (other !== undefined) return { index, other };
    files.set(p, index);
    for (const f of parentsOf(p)) if (!folders.has(f)) folders.set(f, index);
  }
  return null;
}

/** The folders `a`, `a/b` of a relative path `a/b/c`. */
function parentsOf(p: string): string[] {
  const parts = p.split('/');
  return parts.slice(0, -1).map((_, i) => parts.slice(0, i + 1).join('/'));
}
