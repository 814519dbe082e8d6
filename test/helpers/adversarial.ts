/**
 * A world for adversarial scenarios: a real coordinator over HTTP (in this process, SQLite or a fresh PostgreSQL
 * database), honest `deqo agent` processes on Docker, and raw providers (raw-provider.ts) that fabricate what they
 * report. The world knows every provider account, so a scenario can read each one's earnings and reputation, count
 * the wrong results the coordinator accepted, print its figures as one JSON line and, when it stops, check the
 * ledger invariants (invariants.ts) on the stopped database.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { pino } from 'pino';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeqoClient } from '../../src/client/index.js';
import {
  DEFAULT_COORDINATOR_CONFIG,
  DEFAULT_ENGINE_CONFIG,
  startCoordinator,
  type EngineConfig,
  type RunningCoordinator,
} from '../../src/coordinator/index.js';
import { TERMINAL_JOB_STATES, type CredibilityConfig } from '../../src/core/index.js';
import type { JobSpecInput, JobView, ParamValue, ReputationView } from '../../src/protocol/index.js';
import { AgentProcess, until } from './cluster.js';
import { checkPgRun, checkRun, type RunCounts } from './invariants.js';
import {
  PRODUCT_COMMAND,
  productParameters,
  RawProvider,
  resultHashFor,
  type FileResult,
  type Oracle,
  type Strategy,
} from './raw-provider.js';
import { createPgDatabase } from './stores.js';

/** Short intervals so leases, retries and reaping play out within a test (coordinator side). */
export const ADVERSARIAL_ENGINE: Partial<EngineConfig> = {
  heartbeatIntervalMs: 1_000,
  leaseTtlMs: 6_000,
  agentTtlMs: 6_000,
  claimTimeoutMs: 8_000,
  tickMs: 250,
  predictorRefreshMs: 2_000,
  restartGraceMs: 30_000,
  retryBackoffMs: 250,
  retryBackoffMaxMs: 2_000,
};

export type DatabaseKind = 'sqlite' | 'postgres';

/** Settings of a world. */
export interface WorldOptions {
  db: DatabaseKind;
  /** Honest `deqo agent` processes (provider accounts honest-1…). */
  honest: number;
  /** CPUs each honest agent lends (default 1). */
  honestCpus?: number;
  /** Knows the honest answer of the scenario's jobs (for raw providers and for counting wrong results). */
  oracle: Oracle;
  engine?: Partial<EngineConfig>;
  /** Credibility settings (spot-check rate, probation length…); unset fields keep DEFAULT_CREDIBILITY. */
  credibility?: Partial<CredibilityConfig>;
  /** Credits granted to the buyer (default 1000). */
  credits?: number;
}

/** One provider account of the world. */
export interface WorldProvider {
  name: string;
  /** `honest` for a `deqo agent`, else the raw provider's role as the scenario named it. */
  role: string;
  accountId: string;
  client: DeqoClient;
  raw: RawProvider | null;
}

/** One provider's standing, as printed. */
export interface ProviderFigures {
  name: string;
  role: string;
  earned: number;
  score: number;
  valid: number;
  invalid: number;
  errors: number;
  consecutiveValid: number;
}

/** What a scenario prints (one JSON line) and asserts on. */
export interface ScenarioFigures {
  scenario: string;
  db: DatabaseKind;
  tasks: number;
  verified: number;
  failed: number;
  wrongAccepted: number;
  executions: number;
  replicasPerTask: number;
  buyerPaid: number;
  failures: Record<string, number>;
  providers: ProviderFigures[];
  [extra: string]: unknown;
}

/** A coordinator, honest agents and raw providers (see the file comment). */
export class World {
  readonly providers: WorldProvider[] = [];
  private readonly agents: AgentProcess[] = [];
  private stopped: RunCounts | null = null;
  /** Connections to the coordinator on which no byte arrived yet. */
  private readonly silentSockets = new Set<Socket>();

  private constructor(
    readonly o: WorldOptions,
    readonly dir: string,
    readonly coordinator: RunningCoordinator,
    readonly admin: DeqoClient,
    /** The buyer's API key (for the CLI). */
    readonly buyerKey: string,
    private readonly pg: Awaited<ReturnType<typeof createPgDatabase>> | null,
  ) {}

  /** The buyer's client. */
  get buyer(): DeqoClient {
    return new DeqoClient(this.coordinator.url, this.buyerKey);
  }

  get url(): string {
    return this.coordinator.url;
  }

  /** Starts the coordinator, the buyer and the honest agents; waits until they are online. */
  static async start(o: WorldOptions): Promise<World> {
    const dir = await mkdtemp(join(tmpdir(), 'deqo-adv-'));
    const pgdb = o.db === 'postgres' ? await createPgDatabase() : null;
    const coordinator = await startCoordinator(
      {
        ...DEFAULT_COORDINATOR_CONFIG,
        dataDir: join(dir, 'coordinator'),
        ...(pgdb ? { databaseUrl: pgdb.url } : {}),
        port: 0,
        engine: { ...DEFAULT_ENGINE_CONFIG, ...ADVERSARIAL_ENGINE, ...o.engine },
        ...(o.credibility && { credibility: o.credibility }),
      },
      // Lost leases are the point of several scenarios: print errors only.
      pino({ level: 'error' }),
    );
    const adminKey = (await coordinator.engine.accounts.createAccount('admin', ['admin'])).apiKey;
    const admin = new DeqoClient(coordinator.url, adminKey);
    const buyerKey = (await admin.adminCreateAccount('buyer', ['buyer'])).apiKey;
    await admin.adminGrant('buyer', o.credits ?? 1000, 'adversarial scenario');
    const world = new World(o, dir, coordinator, admin, buyerKey, pgdb);
    coordinator.app.server.on('connection', (sock: Socket) => {
      world.silentSockets.add(sock);
      const spoke = () => world.silentSockets.delete(sock);
      sock.once('data', spoke);
      sock.once('close', spoke);
    });
    for (let i = 1; i <= o.honest; i++) {
      const name = `honest-${i}`;
      const acct = await admin.adminCreateAccount(name, ['provider']);
      const agent = new AgentProcess(name, join(dir, 'agents', name), coordinator.url, acct.apiKey, [
        '--cpus',
        String(o.honestCpus ?? 1),
      ]);
      await agent.start();
      world.agents.push(agent);
      world.providers.push({
        name,
        role: 'honest',
        accountId: acct.accountId,
        client: new DeqoClient(coordinator.url, acct.apiKey),
        raw: null,
      });
    }
    await world.waitOnline(o.honest);
    return world;
  }

  /** Waits (60 s at most) until `n` agents are online. */
  async waitOnline(n: number): Promise<void> {
    await until(
      async () => (await this.buyer.listProviders({ online: true })).length >= n,
      60_000,
      async () => `agents online: ${(await this.buyer.listProviders()).map((p) => `${p.name}:${p.status}`).join(', ')}`,
    );
  }

  /** Creates a provider account `name` and starts a raw provider for it with `strategy`. */
  async addRaw(
    name: string,
    role: string,
    strategy: Strategy,
    opts: { slots?: number; oracle?: Oracle } = {},
  ): Promise<RawProvider> {
    const acct = await this.admin.adminCreateAccount(name, ['provider']);
    const raw = new RawProvider({
      url: this.url,
      apiKey: acct.apiKey,
      name,
      dataDir: join(this.dir, 'raw', name),
      strategy,
      oracle: opts.oracle ?? this.o.oracle,
      ...(opts.slots ? { slots: opts.slots } : {}),
    });
    await raw.start();
    this.providers.push({ name, role, accountId: acct.accountId, client: raw.client, raw });
    return raw;
  }

  /** The provider account named `name`. */
  provider(name: string): WorldProvider {
    const p = this.providers.find((x) => x.name === name);
    if (!p) throw new Error(`no provider ${name}`);
    return p;
  }

  /** Account ids of the named providers (for `constraints.providers`). */
  ids(...names: string[]): string[] {
    return names.map((n) => this.provider(n).accountId);
  }

  /** Submits a job as the buyer; returns its id. */
  async submit(spec: JobSpecInput): Promise<string> {
    return (await this.buyer.submitJob(spec)).jobId;
  }

  /**
   * Waits until the job ended, has nothing in flight and is settled, or `ms` passed. Returns the last view and
   * whether it ended (a scenario asserts on the outcome, so running out of time is reported, not thrown).
   */
  async waitSettled(jobId: string, ms = 90_000): Promise<{ view: JobView; ended: boolean }> {
    const deadline = Date.now() + ms;
    for (;;) {
      const view = await this.buyer.getJob(jobId);
      if (settledView(view)) return { view, ended: true };
      if (Date.now() > deadline) return { view, ended: false };
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  /** Each provider's earnings and reputation now. */
  async providerFigures(): Promise<ProviderFigures[]> {
    const out: ProviderFigures[] = [];
    for (const p of this.providers) {
      const [bal, rep] = await Promise.all([p.client.balance(), p.client.providerReputation(1)]);
      out.push({ name: p.name, role: p.role, earned: bal.earned, ...repFigures(rep.reputation) });
    }
    return out;
  }

  /** The reputation of one provider now. */
  async reputation(name: string): Promise<ReputationView> {
    return (await this.provider(name).client.providerReputation(1)).reputation;
  }

  /**
   * The scenario's figures over `views`: tasks, verified/failed, tasks accepted with a result other than the
   * honest one (`honest` gives a task's honest result from its parameters), executions per task, what the buyer
   * paid, and every provider's standing.
   */
  async figures(
    scenario: string,
    views: readonly JobView[],
    honest: ((params: Readonly<Record<string, ParamValue>>) => FileResult) | null,
    extra: Record<string, unknown> = {},
  ): Promise<ScenarioFigures> {
    const tasks = views.flatMap((v) => v.tasks);
    let wrong = 0;
    if (honest)
      for (const t of tasks)
        if (t.state === 'verified' && t.resultHash !== (await resultHashFor(honest(t.params)))) wrong++;
    const executions = tasks.reduce((n, t) => n + t.executions.length, 0);
    // Executions that failed or were lost, by provider and reason (e.g. "honest-2:lease_expired": 1).
    const failures: Record<string, number> = {};
    for (const e of tasks.flatMap((t) => t.executions))
      if (e.failure && (e.state === 'failed' || e.state === 'lost')) {
        const k = `${e.agentName}:${e.failure.reason}`;
        failures[k] = (failures[k] ?? 0) + 1;
      }
    return {
      scenario,
      db: this.o.db,
      tasks: tasks.length,
      verified: tasks.filter((t) => t.state === 'verified').length,
      failed: tasks.filter((t) => t.state === 'failed').length,
      wrongAccepted: wrong,
      executions,
      replicasPerTask: tasks.length === 0 ? 0 : Math.round((executions / tasks.length) * 100) / 100,
      buyerPaid: round6(views.reduce((s, v) => s + v.billing.paid, 0)),
      failures,
      providers: await this.providerFigures(),
      ...extra,
    };
  }

  /**
   * Stops raw providers, agents and the coordinator (once), then checks the ledger invariants on the stopped
   * database and drops a PostgreSQL one. Returns the run's counts with the problems found.
   */
  async stop(): Promise<RunCounts> {
    if (this.stopped) return this.stopped;
    await Promise.all(this.providers.map((p) => p.raw?.stop()));
    await Promise.all(this.agents.map((a) => a.stop()));
    // Everything that talked to it has stopped. A connection this process's HTTP client opened but never sent a
    // request on would hold the close for about a minute (Node's headers timeout): drop those; requests still
    // being answered finish normally.
    for (const sock of this.silentSockets) sock.destroy();
    // Long-poll claims whose clients hung up are still being answered; stopping the engine wakes them. Give them
    // a moment before the store closes: RunningCoordinator.close does not wait for them, and they would fail on the
    // closed store ("The database connection is not open").
    await this.coordinator.engine.stop();
    await new Promise((r) => setTimeout(r, 1_000));
    await this.coordinator.close();
    try {
      this.stopped = this.pg ? await checkPgRun(this.pg.url) : await checkRun(join(this.dir, 'coordinator', 'deqo.db'));
    } finally {
      await this.pg?.drop();
    }
    await rm(this.dir, { recursive: true, force: true }).catch(() => undefined);
    return this.stopped;
  }
}

/** The job ended, nothing of it is in flight, and it is settled. */
export function settledView(v: JobView): boolean {
  return (
    TERMINAL_JOB_STATES.includes(v.state) &&
    v.billing.settled &&
    v.tasks.every((t) => t.executions.every((e) => !['assigned', 'running', 'reported'].includes(e.state)))
  );
}

function repFigures(r: ReputationView): Omit<ProviderFigures, 'name' | 'role' | 'earned'> {
  return {
    score: Math.round(r.score * 1000) / 1000,
    valid: r.valid,
    invalid: r.invalid,
    errors: r.errors,
    consecutiveValid: r.consecutiveValid,
  };
}

function round6(x: number): number {
  return Math.round(x * 1e6) / 1e6;
}

/** Prints a scenario's figures as one JSON line (for comparing with the simulation). */
export function printFigures(f: ScenarioFigures): void {
  console.log(JSON.stringify(f));
}

/** The image honest agents run. */
export const BUSYBOX = 'deqo/busybox:test';

/**
 * A PRODUCT_COMMAND array job of `tasks` tasks (parameters distinct per `salt`), half a core and 64 MiB per
 * execution, with the given verification and any other spec fields.
 */
export function productJob(
  tasks: number,
  salt: number,
  verification: Record<string, unknown>,
  extra: Partial<JobSpecInput> = {},
): JobSpecInput {
  return {
    image: BUSYBOX,
    command: [...PRODUCT_COMMAND],
    resources: { cpus: 0.5, memoryMb: 64, timeoutSeconds: 60 },
    verification: verification as JobSpecInput['verification'],
    array: { parameters: productParameters(tasks, salt) },
    ...extra,
  };
}
