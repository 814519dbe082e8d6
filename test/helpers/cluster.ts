/**
 * A cluster of real processes for fault tests: `deqo coordinator` and `deqo agent` children that a test can
 * SIGKILL and restart, on a fixed port so agents reconnect to the restarted coordinator. Real HTTP, SQLite (or
 * PostgreSQL with a database URL) and Docker.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DeqoClient } from '../../src/client/index.js';
import { DEQO_BIN } from '../../src/cli/network.js';

export { freePort } from './tcp-proxy.js';

/** Coordinator flags with short intervals so leases and retries play out within a test; the restart grace covers a restart. */
export const FAST_FAULTS = [
  '--heartbeat-interval',
  '1s',
  '--lease-ttl',
  '5s',
  '--agent-ttl',
  '3s',
  '--claim-timeout',
  '10s',
  '--tick',
  '250ms',
  '--restart-grace',
  '30s',
  '--retry-backoff',
  '500ms',
  '--retry-backoff-max',
  '4s',
];

/** Waits until `p` exits (resolves at once if it already has). */
export function exited(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => p.once('exit', () => resolve()));
}

function spawnLogged(args: string[], env: NodeJS.ProcessEnv, logFile: string): ChildProcess {
  const child = spawn(process.execPath, [DEQO_BIN, ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const out = createWriteStream(logFile, { flags: 'a' });
  child.stdout!.pipe(out, { end: false });
  child.stderr!.pipe(out, { end: false });
  return child;
}

/** A `deqo coordinator` child process that can be killed and started again on the same port and data. */
export class CoordinatorProcess {
  proc: ChildProcess | null = null;
  /** How many times it was started. */
  starts = 0;
  readonly url: string;

  constructor(
    readonly dataDir: string,
    readonly port: number,
    readonly args: string[] = [],
    readonly env: NodeJS.ProcessEnv = {},
  ) {
    this.url = `http://127.0.0.1:${port}`;
  }

  get adminKeyFile(): string {
    return join(this.dataDir, 'admin.key');
  }

  /** Starts it and waits (30 s at most) until /v1/health answers. Throws with the log tail if it exits first. */
  async start(): Promise<void> {
    await mkdir(this.dataDir, { recursive: true });
    const log = join(this.dataDir, 'coordinator.log');
    this.proc = spawnLogged(
      [
        'coordinator',
        '--data-dir',
        this.dataDir,
        '--port',
        String(this.port),
        '--admin-key-file',
        this.adminKeyFile,
        '--log-level',
        'info',
        ...this.args,
      ],
      this.env,
      log,
    );
    this.starts++;
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (this.proc.exitCode !== null) throw new Error(`coordinator exited during start-up:\n${await tail(log)}`);
      const ok = await fetch(`${this.url}/v1/health`).then(
        (r) => r.ok,
        () => false,
      );
      if (ok) return;
      if (Date.now() > deadline) throw new Error(`coordinator did not answer within 30 s:\n${await tail(log)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** SIGKILL: no shutdown code runs (a crash). */
  async kill(): Promise<void> {
    if (!this.proc) return;
    this.proc.kill('SIGKILL');
    await exited(this.proc);
  }

  /** SIGTERM and wait: a clean stop. */
  async stop(): Promise<void> {
    if (!this.proc) return;
    this.proc.kill('SIGTERM');
    const t = setTimeout(() => this.proc?.kill('SIGKILL'), 15_000);
    await exited(this.proc);
    clearTimeout(t);
  }

  /**
   * A client with the admin key written at first start. The coordinator writes it just after it starts listening,
   * so this waits for the file (30 s at most).
   */
  async admin(): Promise<DeqoClient> {
    let key = '';
    await until(
      async () => (key = (await readFile(this.adminKeyFile, 'utf8')).trim()) !== '',
      30_000,
      () => `no admin key in ${this.adminKeyFile}`,
    );
    return new DeqoClient(this.url, key);
  }
}

/** A `deqo agent` child process (its own provider account and data dir) that can be killed and restarted. */
export class AgentProcess {
  proc: ChildProcess | null = null;
  starts = 0;

  constructor(
    readonly name: string,
    readonly dataDir: string,
    readonly coordinatorUrl: string,
    readonly apiKey: string,
    readonly args: string[] = [],
  ) {}

  get logFile(): string {
    return join(this.dataDir, 'agent.log');
  }

  /** Spawns the agent (it registers on its own; see waitOnline). */
  async start(): Promise<void> {
    await mkdir(this.dataDir, { recursive: true });
    this.proc = spawnLogged(
      [
        'agent',
        '--coordinator',
        this.coordinatorUrl,
        '--data-dir',
        this.dataDir,
        '--name',
        this.name,
        '--no-idle-policy',
        '--cpus',
        '1',
        ...this.args,
      ],
      { DEQO_API_KEY: this.apiKey },
      this.logFile,
    );
    this.starts++;
  }

  get running(): boolean {
    return this.proc !== null && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  async kill(): Promise<void> {
    if (!this.proc) return;
    this.proc.kill('SIGKILL');
    await exited(this.proc);
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    this.proc!.kill('SIGTERM');
    const t = setTimeout(() => this.proc?.kill('SIGKILL'), 15_000);
    await exited(this.proc!);
    clearTimeout(t);
  }
}

/** Creates a buyer with `credits` and `n` provider accounts through the admin API. */
export async function accounts(
  admin: DeqoClient,
  n: number,
  credits: number,
): Promise<{ buyerKey: string; providerKeys: string[] }> {
  const buyer = await admin.adminCreateAccount('buyer', ['buyer']);
  await admin.adminGrant('buyer', credits, 'fault test credits');
  const providerKeys: string[] = [];
  for (let i = 0; i < n; i++)
    providerKeys.push((await admin.adminCreateAccount(`provider-${i + 1}`, ['provider'])).apiKey);
  return { buyerKey: buyer.apiKey, providerKeys };
}

/** Polls `fn` until it returns true (every 250 ms), or throws `what` after `ms`. */
export async function until(
  fn: () => Promise<boolean>,
  ms: number,
  what: () => string | Promise<string>,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await fn().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms: ${await what()}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** The last `n` lines of a log file. */
export async function tail(file: string, n = 15): Promise<string> {
  return (await readFile(file, 'utf8').catch(() => '')).trim().split('\n').slice(-n).join('\n');
}
