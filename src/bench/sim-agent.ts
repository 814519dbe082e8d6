/**
 * A simulated provider agent for the dispatch benchmark. It speaks the real agent protocol over HTTP: registers
 * with a real Ed25519 identity (agent/identity.ts), heartbeats at the interval the coordinator gives it,
 * long-polls claims, and "runs" each execution with a no-op executor that ends at once. Every report names the
 * same result: an empty output directory, empty stdout and stderr, exit 0 — manifest, result hash and output
 * tarball built by the real agent helpers (agent/results.ts), its blobs uploaded once at start by this agent's
 * provider (a report may only name blobs its provider uploaded).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ApiError, DeqoClient, sha256File, uploadFile } from '../client/index.js';
import {
  buildManifest,
  loadOrCreateIdentity,
  signRegistration,
  tarOutputs,
  type ExecutionOutcome,
  type Executor,
  type ExecutionRequest,
  type OwnContainer,
} from '../agent/index.js';
import { resultHashOf } from '../core/index.js';
import type { Assignment, Capacity, ReportRequest } from '../protocol/index.js';

/** An executor that runs nothing: every execution exits 0 at once with zero usage. */
export class NoopExecutor implements Executor {
  /** A fixed version string (there is no engine). */
  async version(): Promise<string> {
    return 'noop';
  }
  /** Ends at once: exit 0, no output. */
  async run(_req: ExecutionRequest): Promise<ExecutionOutcome> {
    return {
      kind: 'exited',
      exitCode: 0,
      usage: { wallMs: 0, cpuMs: 0, maxMemoryBytes: 0 },
      stdoutTruncated: false,
      stderrTruncated: false,
    };
  }
  /** There are no containers to take over: ends at once like run. */
  async attach(_containerId: string, req: ExecutionRequest): Promise<ExecutionOutcome> {
    return this.run(req);
  }
  /** Nothing is ever left behind. */
  async containers(): Promise<OwnContainer[]> {
    return [];
  }
  /** Nothing to remove. */
  async remove(_containerId: string): Promise<void> {}
}

/** The fixed result every simulated execution reports (minus the fencing token and usage). */
export type FixedResult = Omit<Extract<ReportRequest, { outcome: 'completed' }>, 'fencingToken' | 'usage'>;

/**
 * Builds the fixed result in `dir` with the real helpers: manifest of an empty output directory with exit 0 and
 * empty stdout, its result hash, and the empty output tarball. Returns it and the files whose blobs it names.
 */
export async function buildFixedResult(dir: string): Promise<{ result: FixedResult; files: string[] }> {
  const outputs = join(dir, 'outputs');
  await mkdir(outputs, { recursive: true });
  const stdout = join(dir, 'stdout');
  await writeFile(stdout, '');
  const manifest = await buildManifest(outputs, 0, stdout);
  const tarball = join(dir, 'outputs.tar.gz');
  await tarOutputs(outputs, tarball);
  const outputsBlob = await sha256File(tarball);
  return {
    result: {
      outcome: 'completed',
      manifest,
      resultHash: resultHashOf(manifest),
      outputsBlob,
      stdoutBlob: manifest.stdoutSha256,
      stderrBlob: manifest.stdoutSha256,
    },
    files: [stdout, tarball],
  };
}

/** Settings of one simulated agent. */
export interface SimAgentOptions {
  coordinatorUrl: string;
  providerKey: string;
  /** Folder of its identity key. */
  dataDir: string;
  name: string;
  capacity: Capacity;
  /** Executions it runs at once (claim `max`). */
  slots: number;
  /** Files to upload as blobs at start (the fixed result's). */
  blobFiles: string[];
  result: FixedResult;
  /** Called after each accepted report. */
  onReported(executionId: string): void;
  /** Called when a report is refused or fails (the benchmark counts them). */
  onError(err: Error): void;
}

/** Long-poll wait of a claim, ms (the real agent's). */
const CLAIM_WAIT_MS = 20_000;

/** A simulated agent (see the file comment). */
export class SimAgent {
  private readonly client: DeqoClient;
  private readonly executor = new NoopExecutor();
  private stopped = false;
  private inflight = 0;
  private agentId = '';
  private heartbeatTimer: NodeJS.Timeout | null = null;
  private readonly abort = new AbortController();
  private loop: Promise<void> | null = null;
  private wakeLoop: (() => void) | null = null;
  /** Heartbeats and claims sent so far (for request rates). */
  readonly sent = { heartbeats: 0, claims: 0 };
  /** Its result blobs, uploaded once while it runs its first execution (a provider key uploads only then). */
  private uploaded: Promise<void> | null = null;

  constructor(private readonly o: SimAgentOptions) {
    this.client = new DeqoClient(o.coordinatorUrl, o.providerKey);
  }

  /** Registers like a real agent and starts heartbeating and claiming. */
  async start(): Promise<void> {
    const identity = await loadOrCreateIdentity(this.o.dataDir);
    const timestamp = Date.now();
    const reg = await this.client.registerAgent({
      publicKey: identity.publicKey,
      name: this.o.name,
      timestamp,
      signature: signRegistration(identity, timestamp),
      capacity: this.o.capacity,
      availability: { state: 'available' },
    });
    this.agentId = reg.agentId;
    this.heartbeatTimer = setInterval(() => {
      this.sent.heartbeats++;
      this.client.heartbeat(this.agentId, [], { state: 'available' }).catch((err: Error) => this.o.onError(err));
    }, reg.heartbeatIntervalMs);
    this.loop = this.claimLoop();
  }

  /** Stops claiming and heartbeating; waits for the claim loop to end. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.abort.abort();
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    this.wakeLoop?.();
    await this.loop;
  }

  private async claimLoop(): Promise<void> {
    while (!this.stopped) {
      if (this.inflight >= this.o.slots) {
        await new Promise<void>((r) => {
          this.wakeLoop = r;
        });
        continue;
      }
      try {
        this.sent.claims++;
        const got = await this.client.claim(
          this.agentId,
          this.o.slots - this.inflight,
          CLAIM_WAIT_MS,
          this.abort.signal,
        );
        for (const a of got) void this.run(a);
      } catch (err) {
        if (this.stopped) break;
        this.o.onError(err as Error);
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  }

  private async run(a: Assignment): Promise<void> {
    this.inflight++;
    try {
      const outcome = await this.executor.run({
        executionId: a.executionId,
        fencingToken: a.fencingToken,
        image: a.image,
        command: a.command,
        env: a.env,
        resources: a.resources,
        limits: a.limits,
        hostInputsDir: '/nonexistent',
        hostOutputDir: '/nonexistent',
        outputDir: a.outputDir,
        stdoutPath: '',
        stderrPath: '',
        network: a.network,
      });
      this.uploaded ??= (async () => {
        for (const f of this.o.blobFiles) await uploadFile(this.client, f);
      })().catch((err: unknown) => {
        this.uploaded = null;
        throw err;
      });
      await this.uploaded;
      await this.client.report(this.agentId, a.executionId, {
        ...this.o.result,
        fencingToken: a.fencingToken,
        usage: outcome.usage,
      });
      this.o.onReported(a.executionId);
    } catch (err) {
      this.o.onError(
        err instanceof ApiError ? new Error(`report refused: ${err.code}: ${err.message}`) : (err as Error),
      );
    } finally {
      this.inflight--;
      this.wakeLoop?.();
      this.wakeLoop = null;
    }
  }
}

/**
 * `count` simulated agents, not started: agent i has provider key `providerKeys[i]`, talks to `urlOf(i)`, keeps its
 * identity in `<dir>/agents/<i>`, lends `capacity` (one slot per CPU) and reports the fixed result built once in
 * `<dir>/result`. `onReported` and `onError` are called per report and per failed request (default: nothing).
 */
export async function simAgents(o: {
  dir: string;
  count: number;
  providerKeys: readonly string[];
  urlOf: (i: number) => string;
  capacity: Capacity;
  onReported?: (executionId: string) => void;
  onError?: (err: Error) => void;
}): Promise<SimAgent[]> {
  const { result, files } = await buildFixedResult(join(o.dir, 'result'));
  const agents: SimAgent[] = [];
  for (let i = 0; i < o.count; i++) {
    const dataDir = join(o.dir, 'agents', String(i));
    await mkdir(dataDir, { recursive: true });
    agents.push(
      new SimAgent({
        coordinatorUrl: o.urlOf(i),
        providerKey: o.providerKeys[i]!,
        dataDir,
        name: `sim-${i + 1}`,
        capacity: o.capacity,
        slots: o.capacity.cpus,
        blobFiles: files,
        result,
        onReported: o.onReported ?? (() => undefined),
        onError: o.onError ?? (() => undefined),
      }),
    );
  }
  return agents;
}
