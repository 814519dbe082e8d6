/**
 * A local network on this machine: one coordinator (in this process, SQLite + local blobs) and N agents
 * (child processes running `deqo agent`, each with its own identity and provider account).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { z } from 'zod';
import { DeqoClient } from '../client/index.js';
import {
  DEFAULT_COORDINATOR_CONFIG,
  DEFAULT_ENGINE_CONFIG,
  startCoordinator,
  type EngineConfig,
  type RunningCoordinator,
} from '../coordinator/index.js';
import { CliError, EXIT } from './exit-codes.js';

/** Path of the `deqo` executable script, to spawn agents with the same code. */
export const DEQO_BIN = fileURLToPath(new URL('../../bin/deqo.js', import.meta.url));

const KeysSchema = z.object({ adminKey: z.string(), buyerKey: z.string(), providerKeys: z.array(z.string()) });

/** Credits the local network grants its demo buyer at creation. */
export const DEMO_BUYER_CREDITS = 100;

export interface LocalNetworkOptions {
  dataDir: string;
  agents: number;
  port: number;
  engine?: Partial<EngineConfig>;
  /**
   * Extra `deqo agent` flags per agent index (tests: `--test-corrupt-outputs`). When they name `--coordinator`,
   * those replace the network's own URL (tests: a proxy in between).
   */
  agentArgs?: (index: number) => string[];
  /** CPUs each agent lends (default: all of the machine's). */
  agentCpus?: number;
  /** Platform fee on payments, basis points (default 0). */
  feeBps?: number;
}

export interface LocalNetwork {
  url: string;
  adminKey: string;
  buyerKey: string;
  /** Provider account keys, one per agent (index i runs agent provider-(i+1)). */
  providerKeys: string[];
  coordinator: RunningCoordinator;
  agents: ChildProcess[];
  /**
   * Starts agent `index` again with the same flags, data folder and key (after it exited or was killed; its log
   * is appended to). Replaces `agents[index]`; does not wait for it to come online.
   */
  restartAgent(index: number): ChildProcess;
  stop(): Promise<void>;
}

/**
 * Loads the network's keys, or creates an admin, the demo buyer (granted DEMO_BUYER_CREDITS by the admin)
 * and one provider account per agent (keys saved 0600 in keys.json).
 */
async function ensureAccounts(
  coord: RunningCoordinator,
  dataDir: string,
  agents: number,
): Promise<z.infer<typeof KeysSchema>> {
  const file = join(dataDir, 'keys.json');
  let keys: z.infer<typeof KeysSchema> | null = null;
  try {
    keys = KeysSchema.parse(JSON.parse(await readFile(file, 'utf8')));
  } catch {
    keys = null;
  }
  if (!keys) {
    const adminKey = (await coord.engine.accounts.createAccount('admin', ['admin'])).apiKey;
    const buyerKey = (await coord.engine.accounts.createAccount('demo-buyer', ['buyer'])).apiKey;
    await new DeqoClient(coord.url, adminKey).adminGrant(
      'demo-buyer',
      DEMO_BUYER_CREDITS,
      'local network: demo credits',
    );
    keys = { adminKey, buyerKey, providerKeys: [] };
  }
  for (let i = keys.providerKeys.length; i < agents; i++) {
    keys.providerKeys.push((await coord.engine.accounts.createAccount(`provider-${i + 1}`, ['provider'])).apiKey);
    // The local network's agents are the operator's own machines: vouched for, so they are established at once.
    await coord.engine.accounts.vouch(`provider-${i + 1}`);
  }
  await writeFile(file, JSON.stringify(keys, null, 2), { mode: 0o600 });
  return keys;
}

/**
 * Starts the coordinator and agents, and waits until every agent is online (30 s at most).
 * Throws CliError (ENVIRONMENT) with the agent's log tail when an agent exits during start-up.
 */
export async function startLocalNetwork(o: LocalNetworkOptions): Promise<LocalNetwork> {
  await mkdir(o.dataDir, { recursive: true });
  const log = pino(
    { level: 'info' },
    pino.destination({ dest: join(o.dataDir, 'coordinator.log'), sync: false, mkdir: true }),
  );
  const coordinator = await startCoordinator(
    {
      ...DEFAULT_COORDINATOR_CONFIG,
      dataDir: join(o.dataDir, 'coordinator'),
      port: o.port,
      feeBps: o.feeBps ?? DEFAULT_COORDINATOR_CONFIG.feeBps,
      engine: { ...DEFAULT_ENGINE_CONFIG, ...o.engine },
    },
    log,
  );
  const keys = await ensureAccounts(coordinator, o.dataDir, o.agents);
  const agents: ChildProcess[] = [];
  const spawnAgent = (i: number, appendLog: boolean): ChildProcess => {
    const dir = join(o.dataDir, 'agents', `provider-${i + 1}`);
    // The idle policy stays off (the demo machine is busy by design; it must never stall the demo).
    const extra = o.agentArgs?.(i) ?? [];
    const args = [
      DEQO_BIN,
      'agent',
      ...(extra.includes('--coordinator') ? [] : ['--coordinator', coordinator.url]),
      '--data-dir',
      dir,
      '--name',
      `provider-${i + 1}`,
      '--no-idle-policy',
      ...(o.agentCpus ? ['--cpus', String(o.agentCpus)] : []),
      ...extra,
    ];
    const child = spawn(process.execPath, args, {
      env: { ...process.env, DEQO_API_KEY: keys.providerKeys[i]! },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const out = createWriteStream(join(dir, 'agent.log'), { flags: appendLog ? 'a' : 'w' });
    child.stdout!.pipe(out);
    child.stderr!.pipe(out);
    agents[i] = child;
    return child;
  };
  const stop = async () => {
    await Promise.all(
      agents.map(
        (a) =>
          new Promise<void>((resolve) => {
            if (a.exitCode !== null || a.signalCode !== null) {
              resolve();
              return;
            }
            a.once('exit', () => resolve());
            a.kill('SIGTERM');
            setTimeout(() => a.kill('SIGKILL'), 10_000).unref();
          }),
      ),
    );
    await coordinator.close();
  };
  try {
    for (let i = 0; i < o.agents; i++) {
      await mkdir(join(o.dataDir, 'agents', `provider-${i + 1}`), { recursive: true });
      spawnAgent(i, false);
    }
    const client = new DeqoClient(coordinator.url, keys.buyerKey);
    const deadline = Date.now() + 30_000;
    for (;;) {
      const dead = agents.findIndex((a) => a.exitCode !== null);
      if (dead >= 0) {
        const tail = (
          await readFile(join(o.dataDir, 'agents', `provider-${dead + 1}`, 'agent.log'), 'utf8').catch(() => '')
        )
          .trim()
          .split('\n')
          .slice(-5)
          .join('\n');
        throw new CliError(`agent provider-${dead + 1} exited during start-up:\n${tail}`, EXIT.ENVIRONMENT);
      }
      const online = (await client.listProviders()).filter((p) => p.online).length;
      if (online >= o.agents) break;
      if (Date.now() > deadline)
        throw new CliError(
          `only ${online} of ${o.agents} agents came online within 30 s; see ${o.dataDir}/agents/*/agent.log`,
          EXIT.ENVIRONMENT,
        );
      await new Promise((r) => setTimeout(r, 200));
    }
    return {
      url: coordinator.url,
      adminKey: keys.adminKey,
      buyerKey: keys.buyerKey,
      providerKeys: keys.providerKeys,
      coordinator,
      agents,
      restartAgent: (i) => spawnAgent(i, true),
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
