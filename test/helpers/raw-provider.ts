/**
 * A raw-API provider for adversarial tests: it speaks the agent HTTP API directly through the typed client
 * (register with a real Ed25519 identity, heartbeat, long-poll claim, upload blobs, report) and runs no container.
 * What it reports for each assignment is decided by a strategy: honest (computed by an oracle that knows what the
 * job's command outputs), lazy, colluding, sleeper, self-billing, early timeout, fake out-of-memory, tarball
 * swapping, squatting or abandoning. Results are packaged with the agent's real helpers (agent/results.ts
 * buildManifest + tarOutputs, core resultHashOf), exactly as src/bench/sim-agent.ts does, so an honest raw
 * provider's result hash equals a real `deqo agent`'s.
 *
 * Every assignment is recorded (`RawProvider.executions`): what the strategy decided, whether the result was a lie,
 * and whether the coordinator accepted or refused the report (HTTP status and error code).
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { buildManifest, loadOrCreateIdentity, signRegistration, tarOutputs } from '../../src/agent/index.js';
import { ApiError, DeqoClient, uploadFile } from '../../src/client/index.js';
import { resultHashOf } from '../../src/core/index.js';
import type {
  Assignment,
  Capacity,
  Manifest,
  OfferInput,
  ParamValue,
  ReportRequest,
  Usage,
} from '../../src/protocol/index.js';

// ---------- results ----------

/** What an execution leaves: exit code, stdout text and output files (path relative to the output dir → content). */
export interface FileResult {
  exitCode: number;
  stdout: string;
  files: Readonly<Record<string, string>>;
}

/** A result packaged in `dir` with the agent's helpers: manifest, result hash and the files its blobs come from. */
export interface PackagedResult {
  manifest: Manifest;
  resultHash: string;
  stdoutPath: string;
  stderrPath: string;
  tarballPath: string;
}

/** Writes `r` into `dir` and packages it like the agent does (manifest of regular files, gzip tarball). */
export async function packageFiles(r: FileResult, dir: string): Promise<PackagedResult> {
  const outputs = join(dir, 'outputs');
  await mkdir(outputs, { recursive: true });
  for (const [path, content] of Object.entries(r.files)) {
    await mkdir(dirname(join(outputs, path)), { recursive: true });
    await writeFile(join(outputs, path), content);
  }
  const stdoutPath = join(dir, 'stdout');
  const stderrPath = join(dir, 'stderr');
  await writeFile(stdoutPath, r.stdout);
  await writeFile(stderrPath, '');
  const manifest = await buildManifest(outputs, r.exitCode, stdoutPath);
  const tarballPath = join(dir, 'outputs.tar.gz');
  await tarOutputs(outputs, tarballPath);
  return { manifest, resultHash: resultHashOf(manifest), stdoutPath, stderrPath, tarballPath };
}

const hashCache = new Map<string, string>();

/** The result hash a real agent reports for `r` (packaged in a temp dir; cached). */
export async function resultHashFor(r: FileResult): Promise<string> {
  const key = JSON.stringify([r.exitCode, r.stdout, Object.entries(r.files).sort()]);
  const hit = hashCache.get(key);
  if (hit) return hit;
  const dir = await mkdtemp(join(tmpdir(), 'deqo-hash-'));
  try {
    const { resultHash } = await packageFiles(r, dir);
    hashCache.set(key, resultHash);
    return resultHash;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

// ---------- jobs whose honest answer a test can compute ----------

/** Knows what an assignment's command honestly outputs; null when it does not know the job. */
export type Oracle = (a: Assignment) => FileResult | null;

/** `sh -c 'echo $((A*B)) > /outputs/r'` over the array parameters A and B (DEQO_PARAM_A, DEQO_PARAM_B). */
export const PRODUCT_COMMAND: readonly string[] = Object.freeze([
  'sh',
  '-c',
  'echo $((DEQO_PARAM_A * DEQO_PARAM_B)) > /outputs/r',
]);

/** The honest result of PRODUCT_COMMAND for parameters A and B. */
export function productResult(params: Readonly<Record<string, ParamValue>>): FileResult {
  return { exitCode: 0, stdout: '', files: { r: `${Number(params.A) * Number(params.B)}\n` } };
}

/** Oracle of PRODUCT_COMMAND jobs (reads DEQO_PARAM_A and DEQO_PARAM_B of the assignment). */
export const productOracle: Oracle = (a) => {
  const A = Number(a.env.DEQO_PARAM_A);
  const B = Number(a.env.DEQO_PARAM_B);
  if (a.command.join(' ') !== PRODUCT_COMMAND.join(' ') || !Number.isInteger(A) || !Number.isInteger(B)) return null;
  return productResult({ A, B });
};

/** `n` parameter sets {A, B} for a PRODUCT_COMMAND array job, distinct per `salt` (so jobs differ). */
export function productParameters(n: number, salt = 0): Array<{ A: number; B: number }> {
  return Array.from({ length: n }, (_, i) => ({ A: 1000 + salt * 97 + i, B: 7 + ((i * 13 + salt) % 89) }));
}

/** A wrong but plausible variant of an honest result: every number is off by one, other text is altered. */
export function forged(honest: FileResult, nonce = ''): FileResult {
  const files: Record<string, string> = {};
  for (const [path, content] of Object.entries(honest.files)) {
    const n = Number(content.trim());
    files[path] = content.trim() !== '' && Number.isFinite(n) ? `${n + 1}${nonce}\n` : `${content}forged${nonce}\n`;
  }
  if (Object.keys(files).length === 0) files.result = `forged${nonce}\n`;
  return { exitCode: 0, stdout: honest.stdout, files };
}

// ---------- strategies ----------

/** What a provider does with one assignment. */
export type Decision =
  | {
      kind: 'complete';
      result: FileResult;
      /** The result is not the honest one (for the test's bookkeeping). */
      lie: boolean;
      /** Reported usage.wallMs; default the time from claim to report. */
      wallMs?: number;
      /** `garbage`: upload random bytes as the outputs tarball (the manifest stays as given). */
      tarball?: 'honest' | 'garbage';
      /** Wait this long before reporting, ms. */
      delayMs?: number;
    }
  | { kind: 'fail'; reason: string; message: string; delayMs?: number; wallMs?: number }
  /** Hold the lease (heartbeat it) forever and never report. */
  | { kind: 'squat' }
  /** Never heartbeat nor report the execution: its lease runs out. */
  | { kind: 'abandon' };

/** What a strategy knows besides the assignment. */
export interface StrategyContext {
  oracle: Oracle;
  /** Assignments this provider received before this one. */
  seen: number;
}

/** Decides what to report for an assignment. */
export type Strategy = (a: Assignment, ctx: StrategyContext) => Decision | Promise<Decision>;

function honestOf(a: Assignment, ctx: StrategyContext): FileResult {
  const r = ctx.oracle(a);
  if (!r) throw new Error(`the oracle does not know job ${a.jobId} (${a.command.join(' ')})`);
  return r;
}

/** Reports the honest result (as a real agent would). */
export const honest = (): Strategy => (a, ctx) => ({ kind: 'complete', result: honestOf(a, ctx), lie: false });

/** Reports a made-up result without running anything: fixed stdout, no files. */
export const lazy =
  (stdout = 'done\n'): Strategy =>
  () => ({ kind: 'complete', result: { exitCode: 0, stdout, files: {} }, lie: true });

/**
 * One party's accounts that agree on a fabricated result per task: the first member to get a task forges a result
 * (with a random nonce, so only sharing makes them agree), the others report the same.
 */
export class ColluderRing {
  /** taskKey (`jobId/taskIndex`) → the fabricated result. */
  readonly fabricated = new Map<string, FileResult>();

  /** The ring's result for the assignment's task (forged on first sight). */
  resultFor(a: Assignment, ctx: StrategyContext): FileResult {
    const key = `${a.jobId}/${a.taskIndex}`;
    let r = this.fabricated.get(key);
    if (!r) {
      const h = ctx.oracle(a) ?? { exitCode: 0, stdout: '', files: {} };
      r = forged(h, ` ${randomBytes(3).toString('hex')}`);
      this.fabricated.set(key, r);
    }
    return r;
  }

  /** A member's strategy: report the ring's result. */
  member(): Strategy {
    return (a, ctx) => ({ kind: 'complete', result: this.resultFor(a, ctx), lie: true });
  }
}

/** Honest for its first `honestFor` assignments, then reports forged results. */
export const sleeper =
  (honestFor: number): Strategy =>
  (a, ctx) =>
    ctx.seen < honestFor
      ? { kind: 'complete', result: honestOf(a, ctx), lie: false }
      : { kind: 'complete', result: forged(ctx.oracle(a) ?? { exitCode: 0, stdout: '', files: {} }), lie: true };

/** Honest result, but claims usage.wallMs of the job's whole timeout (or `wallMs`) while reporting at once. */
export const selfBiller =
  (wallMs?: number): Strategy =>
  (a, ctx) => ({
    kind: 'complete',
    result: honestOf(a, ctx),
    lie: false,
    wallMs: wallMs ?? a.resources.timeoutSeconds * 1000,
  });

/** Reports `failed` / `timeout` after `afterMs` (long before the job's time limit). */
export const earlyTimeout =
  (afterMs = 300): Strategy =>
  () => ({
    kind: 'fail',
    reason: 'timeout',
    message: `stopped after ${afterMs} ms: time limit`,
    delayMs: afterMs,
    wallMs: afterMs,
  });

/** Reports `failed` / `out_of_memory` after `afterMs` without running anything. */
export const fakeOutOfMemory =
  (afterMs = 300): Strategy =>
  () => ({ kind: 'fail', reason: 'out_of_memory', message: 'OOM killed', delayMs: afterMs, wallMs: afterMs });

/** Honest manifest and result hash, garbage output tarball. */
export const tarballSwapper = (): Strategy => (a, ctx) => ({
  kind: 'complete',
  result: honestOf(a, ctx),
  lie: false,
  tarball: 'garbage',
});

/** Claims and heartbeats forever, never reports. */
export const squatter = (): Strategy => () => ({ kind: 'squat' });

/** Claims, then goes silent on the execution (no heartbeat for it, no report). */
export const abandoner = (): Strategy => () => ({ kind: 'abandon' });

// ---------- the provider ----------

/** One assignment as the raw provider handled it. */
export interface RawExecution {
  executionId: string;
  jobId: string;
  taskIndex: number;
  kind: Decision['kind'];
  lie: boolean;
  claimedAt: number;
  /** The result hash it reported (completed reports). */
  resultHash: string | null;
  /** pending (not reported yet), accepted, refused (an ApiError answered), held (squatting), abandoned, error. */
  outcome: 'pending' | 'accepted' | 'refused' | 'held' | 'abandoned' | 'error';
  refusal: { status: number; code: string; message: string } | null;
}

/** Settings of a raw provider. */
export interface RawProviderOptions {
  url: string;
  /** Its provider account's API key. */
  apiKey: string;
  name: string;
  /** Folder of its identity key and work files. */
  dataDir: string;
  strategy: Strategy;
  oracle: Oracle;
  /** Executions it holds at once (claim `max`); default 4. */
  slots?: number;
  capacity?: Partial<Capacity>;
  offer?: OfferInput;
}

/** Long-poll wait of a claim, ms (short, so stop() is quick). */
const CLAIM_WAIT_MS = 2_000;

/** A provider that fabricates what it reports (see the file comment). */
export class RawProvider {
  readonly client: DeqoClient;
  readonly executions: RawExecution[] = [];
  /** Request failures other than report refusals (claim/heartbeat errors), for diagnosis. */
  readonly errors: string[] = [];
  agentId = '';
  private stopped = false;
  private heartbeatTimer: NodeJS.Timeout | null = null;
  private readonly abort = new AbortController();
  private loop: Promise<void> | null = null;
  /** Executions whose leases it renews (running or squatted), by id → fencing token. */
  private readonly held = new Map<string, number>();
  /** Executions taking a slot (running or squatted). */
  private busy = 0;
  private readonly runs = new Set<Promise<void>>();

  constructor(readonly o: RawProviderOptions) {
    this.client = new DeqoClient(o.url, o.apiKey);
  }

  get slots(): number {
    return this.o.slots ?? 4;
  }

  /** Registers with a fresh Ed25519 identity and starts heartbeating and claiming. */
  async start(): Promise<void> {
    const identity = await loadOrCreateIdentity(this.o.dataDir);
    const timestamp = Date.now();
    const reg = await this.client.registerAgent({
      publicKey: identity.publicKey,
      name: this.o.name,
      timestamp,
      signature: signRegistration(identity, timestamp),
      capacity: {
        cpus: 4,
        memoryMb: 8192,
        arch: 'amd64',
        os: 'linux',
        dockerVersion: 'raw-provider',
        gpus: [],
        allowNetwork: false,
        ...this.o.capacity,
      },
      ...(this.o.offer ? { offer: this.o.offer } : {}),
      availability: { state: 'available' },
    });
    this.agentId = reg.agentId;
    this.heartbeatTimer = setInterval(() => {
      const executions = [...this.held].map(([executionId, fencingToken]) => ({ executionId, fencingToken }));
      this.client
        .heartbeat(this.agentId, executions, { state: 'available' })
        .catch((err: Error) => this.errors.push(`heartbeat: ${err.message}`));
    }, reg.heartbeatIntervalMs);
    this.loop = this.claimLoop();
  }

  /** Stops claiming and heartbeating (squatted leases then run out); waits for reports in flight. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.abort.abort();
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    await this.loop;
    await Promise.allSettled([...this.runs]);
  }

  /** Executions whose reports the coordinator accepted. */
  accepted(): RawExecution[] {
    return this.executions.filter((e) => e.outcome === 'accepted');
  }

  /** Executions whose reports the coordinator refused. */
  refused(): RawExecution[] {
    return this.executions.filter((e) => e.outcome === 'refused');
  }

  private async claimLoop(): Promise<void> {
    while (!this.stopped) {
      if (this.busy >= this.slots) {
        await new Promise((r) => setTimeout(r, 100));
        continue;
      }
      try {
        const got = await this.client.claim(this.agentId, this.slots - this.busy, CLAIM_WAIT_MS, this.abort.signal);
        for (const a of got) {
          const run = this.handle(a).finally(() => this.runs.delete(run));
          this.runs.add(run);
        }
      } catch (err) {
        if (this.stopped) break;
        this.errors.push(`claim: ${(err as Error).message}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  }

  private async handle(a: Assignment): Promise<void> {
    const claimedAt = Date.now();
    const seen = this.executions.length;
    const rec: RawExecution = {
      executionId: a.executionId,
      jobId: a.jobId,
      taskIndex: a.taskIndex,
      kind: 'complete',
      lie: false,
      claimedAt,
      resultHash: null,
      outcome: 'pending',
      refusal: null,
    };
    this.executions.push(rec);
    this.busy++;
    this.held.set(a.executionId, a.fencingToken);
    let keepSlot = false;
    try {
      const d = await this.o.strategy(a, { oracle: this.o.oracle, seen });
      rec.kind = d.kind;
      if (d.kind === 'abandon') {
        rec.outcome = 'abandoned';
        return;
      }
      if (d.kind === 'squat') {
        rec.outcome = 'held';
        keepSlot = true;
        return;
      }
      if (d.delayMs) await new Promise((r) => setTimeout(r, d.delayMs));
      const body = await this.reportBody(a, d, claimedAt, rec);
      try {
        await this.client.report(this.agentId, a.executionId, body);
        rec.outcome = 'accepted';
      } catch (err) {
        if (!(err instanceof ApiError) || err.status === 0) throw err;
        rec.outcome = 'refused';
        rec.refusal = { status: err.status, code: err.code, message: err.message };
      }
    } catch (err) {
      rec.outcome = 'error';
      this.errors.push(`execution ${a.executionId}: ${(err as Error).message}`);
    } finally {
      if (!keepSlot) {
        this.held.delete(a.executionId);
        this.busy--;
      }
    }
  }

  private async reportBody(
    a: Assignment,
    d: Extract<Decision, { kind: 'complete' | 'fail' }>,
    claimedAt: number,
    rec: RawExecution,
  ): Promise<ReportRequest> {
    const elapsed = Math.max(1, Date.now() - claimedAt);
    const usage = (wallMs: number | undefined): Usage => {
      const wall = wallMs ?? elapsed;
      return { wallMs: wall, cpuMs: Math.round(wall / 2), maxMemoryBytes: 1 << 20 };
    };
    if (d.kind === 'fail') {
      // Every failure a strategy reports is made up (nothing ran).
      rec.lie = true;
      return {
        outcome: 'failed',
        fencingToken: a.fencingToken,
        reason: d.reason,
        message: d.message,
        usage: usage(d.wallMs),
      };
    }
    rec.lie = d.lie;
    const dir = join(this.o.dataDir, 'work', a.executionId);
    try {
      const p = await packageFiles(d.result, dir);
      rec.resultHash = p.resultHash;
      const stdoutBlob = (await uploadFile(this.client, p.stdoutPath)).sha256;
      const stderrBlob = (await uploadFile(this.client, p.stderrPath)).sha256;
      const outputsBlob =
        d.tarball === 'garbage'
          ? (await this.client.uploadBytes(new Uint8Array(randomBytes(256)))).sha256
          : (await uploadFile(this.client, p.tarballPath)).sha256;
      return {
        outcome: 'completed',
        fencingToken: a.fencingToken,
        manifest: p.manifest,
        resultHash: p.resultHash,
        outputsBlob,
        stdoutBlob,
        stderrBlob,
        usage: usage(d.wallMs),
      };
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
}
