/**
 * The agent survives faults, on real parts: an in-process coordinator (Fastify + SQLite) over real HTTP, real
 * `deqo agent` processes killed with SIGKILL and restarted, real Docker containers, and — the one fake, because the
 * network is outside the project — a TCP proxy the test pauses to partition an agent from its coordinator.
 * Coordinators that die are `deqo coordinator` processes: on SQLite, down when an agent starts; on PostgreSQL, one
 * of two an agent knows, killed while it runs work.
 *
 * Jobs "gated" on a marker file wait inside their container until the test drops the marker into the execution's
 * (read-only mounted) inputs folder, so each fault lands at a known point without timing guesses.
 */
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import Docker from 'dockerode';
import pg from 'pg';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from '../../src/agent/agent.js';
import { DockerExecutor } from '../../src/agent/docker-executor.js';
import type { ExecutionOutcome } from '../../src/agent/executor.js';
import { loadOrCreateIdentity, signRegistration } from '../../src/agent/identity.js';
import { buildAgentSettings } from '../../src/agent/offer.js';
import { probeCapacity } from '../../src/agent/probe.js';
import { packageResult, workDirs } from '../../src/agent/report-body.js';
import { AgentState } from '../../src/agent/state.js';
import { DeqoClient } from '../../src/client/index.js';
import type { LocalNetwork } from '../../src/cli/network.js';
import type { ExecutionView, JobSpecInput, JobView } from '../../src/protocol/index.js';
import { accounts, AgentProcess, CoordinatorProcess, FAST_FAULTS } from '../helpers/cluster.js';
import { settled, testNetwork, waitForJob } from '../helpers/network.js';
import { createPgDatabase } from '../helpers/stores.js';
import { freePort, PausableProxy } from '../helpers/tcp-proxy.js';

const BUSYBOX = 'deqo/busybox:test';
const docker = new Docker({ socketPath: '/var/run/docker.sock' });
/** Prints "before", waits for /inputs/go, prints "after" and writes /outputs/x. */
const GATED: JobSpecInput = {
  image: BUSYBOX,
  command: [
    'sh',
    '-c',
    'echo before; while [ ! -e /inputs/go ]; do sleep 0.2; done; echo after; echo done > /outputs/x',
  ],
  resources: { timeoutSeconds: 300 },
  verification: { replicas: 1, quorum: 1 },
};

interface LogLine {
  msg?: string;
  executionId?: string;
  [k: string]: unknown;
}

const agentDir = (dir: string, i: number) => join(dir, 'agents', `provider-${i + 1}`);

/** The agent's pino JSON lines (other lines skipped). */
async function agentLog(dir: string, i: number): Promise<LogLine[]> {
  return logLines(join(agentDir(dir, i), 'agent.log'));
}

/** The pino JSON lines of a log file (other lines skipped). */
async function logLines(file: string): Promise<LogLine[]> {
  const text = await readFile(file, 'utf8').catch(() => '');
  return text.split('\n').flatMap((l) => {
    try {
      return [JSON.parse(l) as LogLine];
    } catch {
      return [];
    }
  });
}

/** Polls `check` until it returns something truthy (60 s at most, then throws naming `what`). */
async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined | false | null>,
  timeoutMs = 60_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const logged = (dir: string, i: number, msg: string | RegExp, executionId?: string) =>
  waitFor(`agent log: ${String(msg)}`, async () =>
    (await agentLog(dir, i)).find(
      (l) =>
        (typeof msg === 'string' ? l.msg === msg : msg.test(l.msg ?? '')) &&
        (!executionId || l.executionId === executionId),
    ),
  );

const containersOf = (executionId: string) =>
  docker.listContainers({ all: true, filters: { label: [`deqo.execution=${executionId}`] } });

/** Rows of an agent's state database (read-only, while the agent may be running). */
function stateRows(dataDir: string): string[] {
  const db = new SqliteDatabase(join(dataDir, 'state.db'), { readonly: true });
  try {
    return (db.prepare('SELECT execution_id FROM executions').all() as Array<{ execution_id: string }>).map(
      (r) => r.execution_id,
    );
  } finally {
    db.close();
  }
}

/** Submits a job and waits until its first execution runs in a container. */
async function startGated(
  client: DeqoClient,
  spec: JobSpecInput = GATED,
): Promise<{ jobId: string; exec: ExecutionView }> {
  const { jobId } = await client.submitJob(spec);
  const view = await waitForJob(client, jobId, (v) => v.tasks[0]!.executions.some((e) => e.state === 'running'));
  const exec = view.tasks[0]!.executions.find((e) => e.state === 'running')!;
  await waitFor('the container to run', async () => (await containersOf(exec.id)).some((c) => c.State === 'running'));
  return { jobId, exec };
}

async function kill(net: LocalNetwork, i: number): Promise<void> {
  const child = net.agents[i]!;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await exited;
}

const release = (dataDir: string, executionId: string) =>
  writeFile(join(dataDir, 'work', executionId, 'inputs', 'go'), '');

/** Stdout of the execution that was paid, and the checks every recovered job must pass. */
async function expectPaidOnce(client: DeqoClient, jobId: string, executionId: string): Promise<JobView> {
  const view = await waitForJob(client, jobId, (v) => settled(v) && v.billing.settled);
  expect(view.state).toBe('succeeded');
  const execs = view.tasks[0]!.executions;
  expect(execs.map((e) => [e.id, e.state])).toEqual([[executionId, 'valid']]); // no replacement was needed
  expect(execs[0]!.paid).toBeGreaterThan(0);
  expect(await client.blobText(execs[0]!.stdoutBlob!)).toBe('before\nafter\n');
  expect((await client.getResults(jobId)).tasks[0]!.manifest!.files.map((f) => f.path)).toEqual(['x']);
  return view;
}

describe('restart: reattach, collect, orphans', () => {
  let net: LocalNetwork;
  let client: DeqoClient;
  let dir: string;
  beforeAll(async () => {
    // Leases long enough that a killed and restarted agent still holds them on a busy machine.
    ({ net, client, dir } = await testNetwork({ agents: 1, engine: { leaseTtlMs: 60_000 } }));
  });
  afterAll(async () => {
    await net?.stop();
  });

  it('an agent killed while its container runs reattaches after a restart, reports, and that execution is the one paid', async () => {
    const { jobId, exec } = await startGated(client);
    await kill(net, 0);
    expect((await containersOf(exec.id)).map((c) => c.State)).toEqual(['running']); // the job outlives its agent
    net.restartAgent(0);
    await logged(dir, 0, 'reattached to its container', exec.id);
    await release(agentDir(dir, 0), exec.id);
    await expectPaidOnce(client, jobId, exec.id);
    const earned = (await new DeqoClient(net.url, net.providerKeys[0]!).balance()).earned;
    expect(earned).toBeGreaterThan(0);
    await waitFor('the state row to go', async () => stateRows(agentDir(dir, 0)).length === 0);
    expect(await containersOf(exec.id)).toEqual([]);
  });

  it('a container that exited while its agent was down is collected and reported at restart', async () => {
    const { jobId, exec } = await startGated(client);
    await kill(net, 0);
    await release(agentDir(dir, 0), exec.id);
    await docker.getContainer((await containersOf(exec.id))[0]!.Id).wait();
    net.restartAgent(0);
    await logged(dir, 0, 'its container exited while the agent was down: collecting its result', exec.id);
    await expectPaidOnce(client, jobId, exec.id);
  });

  it('removes containers its state does not know at start, and reports the execution their labels name as failed', async () => {
    const { jobId, exec } = await startGated(client);
    await kill(net, 0);
    const state = AgentState.open(agentDir(dir, 0));
    state.remove(exec.id); // the record is lost: the container is now an orphan
    state.close();
    const { agentId } = await loadOrCreateIdentity(agentDir(dir, 0));
    const stray = await docker.createContainer({
      Image: BUSYBOX,
      Cmd: ['sleep', '300'],
      Labels: { 'deqo.agent': agentId },
      HostConfig: { NetworkMode: 'none' },
    });
    await stray.start();
    net.restartAgent(0);
    const view = await waitForJob(client, jobId, (v) =>
      v.tasks[0]!.executions.some((e) => e.id === exec.id && e.state === 'failed'),
    );
    const failed = view.tasks[0]!.executions.find((e) => e.id === exec.id)!;
    expect(failed.failure).toMatchObject({ reason: 'agent_restarted', blame: 'provider' });
    expect(failed.failure!.message).toContain('without a record of it');
    expect(failed.paid).toBeNull();
    expect(await containersOf(exec.id)).toEqual([]);
    await expect(stray.inspect()).rejects.toMatchObject({ statusCode: 404 });
    const removed = (await agentLog(dir, 0)).filter(
      (l) => l.msg === 'removed a container an earlier run of this agent left',
    );
    expect(removed.map((l) => l.executionId ?? null).sort()).toEqual([exec.id, null].sort());
    await waitFor(
      'the stray work directory to go',
      async () =>
        !(await readFile(join(agentDir(dir, 0), 'work', exec.id, 'stdout')).then(
          () => true,
          () => false,
        )),
    );
    await client.cancelJob(jobId); // its only provider may not run it again
  });
});

/**
 * A network whose agents may talk to the coordinator through a pausable TCP proxy (`agentArgs` gets the proxy's
 * URL), with 1 s heartbeats and 6 s leases so a partition outlives a lease within a test.
 */
async function partitionableNetwork(agents: number, agentArgs: (i: number, proxyUrl: string) => string[]) {
  const port = await freePort();
  const proxy = await PausableProxy.start(port);
  const started = await testNetwork({
    port,
    agents,
    agentArgs: (i) => agentArgs(i, proxy.url),
    engine: { heartbeatIntervalMs: 1_000, leaseTtlMs: 6_000, agentTtlMs: 6_000 },
  });
  return { ...started, proxy };
}

describe('partition: the coordinator cannot reach the agent', () => {
  let net: LocalNetwork;
  let client: DeqoClient;
  let dir: string;
  let proxy: PausableProxy;
  beforeAll(async () => {
    // provider-1 talks through the proxy and is the cheaper; provider-2 talks directly.
    ({ net, client, dir, proxy } = await partitionableNetwork(2, (i, proxyUrl) =>
      i === 0
        ? ['--coordinator', proxyUrl, '--price-cpu-hour', '0.01', '--start-fee', '0.0001']
        : ['--price-cpu-hour', '0.09', '--start-fee', '0.002'],
    ));
  });
  afterAll(async () => {
    proxy?.resume();
    await net?.stop();
    await proxy?.close();
  });

  it('a partition longer than the lease: the task runs elsewhere, the late report is refused as stale, only the second execution is paid', async () => {
    const spec: JobSpecInput = {
      image: BUSYBOX,
      command: ['sh', '-c', 'sleep 2; echo ok > /outputs/r'],
      verification: { replicas: 1, quorum: 1 },
    };
    const { jobId, exec: first } = await startGated(client, spec);
    expect(first.agentName).toBe('provider-1');
    proxy.pause();
    // The coordinator expires the lease and runs the task on provider-2 while provider-1 finishes it unheard.
    const done = await waitForJob(client, jobId, (v) => settled(v) && v.billing.settled);
    await logged(
      dir,
      0,
      'heartbeat failed: keeping executions running and queueing their reports during the grace period',
    );
    proxy.resume();
    await logged(dir, 0, 'lease lost while disconnected: the coordinator rescheduled it; result discarded', first.id);
    // The heartbeat that finds the coordinator again and the queued report's own retry race: either may come first.
    await logged(dir, 0, 'coordinator reachable again; sending queued reports');

    const view = await client.getJob(jobId);
    expect(view).toEqual(done); // the late report changed nothing
    expect(view.state).toBe('succeeded');
    const byAgent = Object.fromEntries(view.tasks[0]!.executions.map((e) => [e.agentName, e]));
    expect(byAgent['provider-1']).toMatchObject({
      id: first.id,
      state: 'lost',
      paid: null,
      failure: { reason: 'lease_expired' },
    });
    expect(byAgent['provider-2']!.state).toBe('valid');
    expect(byAgent['provider-2']!.paid).toBeGreaterThan(0);
    expect((await new DeqoClient(net.url, net.providerKeys[0]!).balance()).earned).toBe(0);
    expect((await new DeqoClient(net.url, net.providerKeys[1]!).balance()).earned).toBe(byAgent['provider-2']!.paid);
    expect(await new DeqoClient(net.url, net.adminKey).adminAudit()).toEqual({ sound: true, problems: [] });
    expect(stateRows(agentDir(dir, 0))).toEqual([]);
  });
});

describe('partition longer than the grace period', () => {
  let net: LocalNetwork;
  let client: DeqoClient;
  let dir: string;
  let proxy: PausableProxy;
  beforeAll(async () => {
    ({ net, client, dir, proxy } = await partitionableNetwork(1, (_i, proxyUrl) => [
      '--coordinator',
      proxyUrl,
      '--grace-period',
      '3s',
    ]));
  });
  afterAll(async () => {
    proxy?.resume();
    await net?.stop();
    await proxy?.close();
  });

  it('stops the container and drops the execution once no heartbeat succeeded for the grace period', async () => {
    const { jobId, exec } = await startGated(client);
    proxy.pause();
    await logged(dir, 0, /^no heartbeat reached the coordinator for longer than the grace period \(3 s\)/, exec.id);
    await waitFor('the container to be stopped', async () => (await containersOf(exec.id)).length === 0);
    await waitFor('the state row to go', async () => stateRows(agentDir(dir, 0)).length === 0);
    expect(
      (await agentLog(dir, 0)).find((l) => l.msg === 'execution stopped' && l.executionId === exec.id),
    ).toMatchObject({ stoppedBecause: 'grace' });
    proxy.resume();
    const view = await waitForJob(client, jobId, (v) =>
      v.tasks[0]!.executions.some((e) => e.id === exec.id && e.state === 'lost'),
    );
    expect(view.tasks[0]!.executions.find((e) => e.id === exec.id)!.failure?.reason).toBe('lease_expired'); // nothing was reported for it
    await client.cancelJob(jobId);
  });

  it('registers again when the coordinator answers that it does not know the agent', async () => {
    // Play a coordinator database restored from a backup older than the agent: its row is gone.
    const { agentId } = await loadOrCreateIdentity(agentDir(dir, 0));
    const db = new SqliteDatabase(join(dir, 'coordinator', 'deqo.db'));
    db.pragma('busy_timeout = 5000');
    db.pragma('foreign_keys = OFF'); // its earlier executions keep naming it; registering again restores the row
    expect(db.prepare('DELETE FROM agents WHERE id = ?').run(agentId).changes).toBe(1);
    db.close();
    await logged(dir, 0, 'the coordinator does not know this agent (was its database reset?): registering again');
    await waitFor('the agent to be online again', async () =>
      (await client.listProviders()).some((p) => p.agentId === agentId && p.online),
    );
  });
});

describe('a report stored before a crash is sent at the next start', () => {
  let net: LocalNetwork;
  let client: DeqoClient;
  beforeAll(async () => {
    ({ net, client } = await testNetwork({ agents: 0, engine: { leaseTtlMs: 60_000 } }));
  });
  afterAll(async () => {
    // The in-process agent's HTTP client may leave a connected socket that never sent a request; the server would
    // wait for its headers timeout (60 s) before closing. Close connections first (agent processes do it by exiting).
    net?.coordinator.app.server.closeAllConnections();
    await net?.stop();
  });

  it('resends a stored report, and packages a stored outcome whose report was not built yet', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'deqo-agent-'));
    const { apiKey } = await net.coordinator.engine.accounts.createAccount('provider-inproc', ['provider']);
    const provider = new DeqoClient(net.url, apiKey);
    const identity = await loadOrCreateIdentity(dataDir);
    const executor = new DockerExecutor({ agentId: identity.agentId });
    const capacity = await probeCapacity(await executor.version(), { cpus: 2, allowNetwork: false });
    const { offer } = buildAgentSettings(undefined, {});
    const ts = Date.now();
    await provider.registerAgent({
      publicKey: identity.publicKey,
      name: 'inproc',
      timestamp: ts,
      signature: signRegistration(identity, ts),
      capacity,
      offer,
      availability: { state: 'available' },
    });

    // Play the agent's first life by hand: claim two executions, "run" them, and crash at two points.
    const spec: JobSpecInput = { image: BUSYBOX, command: ['true'], verification: { replicas: 1, quorum: 1 } };
    const jobs = [(await client.submitJob(spec)).jobId, (await client.submitJob(spec)).jobId];
    const claimed = [];
    while (claimed.length < 2) claimed.push(...(await provider.claim(identity.agentId, 2 - claimed.length, 5_000)));
    const outcome: ExecutionOutcome = {
      kind: 'exited',
      exitCode: 0,
      usage: { wallMs: 10, cpuMs: 1, maxMemoryBytes: 1 },
      stdoutTruncated: false,
      stderrTruncated: false,
    };
    const state = AgentState.open(dataDir);
    for (const a of claimed) {
      const dirs = workDirs(dataDir, a.executionId);
      await mkdir(dirs.outputs, { recursive: true });
      await writeFile(join(dirs.outputs, 'x'), a.executionId);
      await writeFile(dirs.stdout, 'hi\n');
      await writeFile(dirs.stderr, '');
      state.record(a, Date.now());
      state.finished(a.executionId, outcome, Date.now());
    }
    const [stored, unpackaged] = claimed;
    state.reportReady(
      stored!.executionId,
      await packageResult(provider, stored!.fencingToken, outcome, workDirs(dataDir, stored!.executionId), false),
      Date.now(),
    );
    state.close();

    const lines: Array<{ msg?: string; executionId?: string }> = [];
    const log = pino(
      { level: 'info' },
      {
        write: (s: string) => {
          lines.push(JSON.parse(s) as { msg?: string });
        },
      },
    );
    const agent = new Agent(
      [provider],
      executor,
      capacity,
      { dataDir, name: 'inproc', offer, testCorruptOutputs: false },
      log,
    );
    await agent.start();
    try {
      for (const jobId of jobs) {
        const v = await waitForJob(client, jobId, (j) => settled(j) && j.billing.settled);
        expect(v.state).toBe('succeeded');
        expect(v.tasks[0]!.executions.map((e) => e.state)).toEqual(['valid']);
      }
    } finally {
      await agent.stop();
    }
    expect(
      lines.find(
        (l) => l.executionId === stored!.executionId && l.msg === 'resending the report stored before the restart',
      ),
    ).toBeDefined();
    expect(
      lines.find(
        (l) =>
          l.executionId === unpackaged!.executionId &&
          l.msg === 'packaging the result of an execution that ended before the restart',
      ),
    ).toBeDefined();
    expect(stateRows(dataDir)).toEqual([]);
    const results = await client.getResults(jobs[jobs.indexOf(stored!.jobId)]!);
    expect(results.tasks[0]!.manifest!.files.map((f) => f.path)).toEqual(['x']);
  });
});

/** The lease TTL of FAST_FAULTS (`--lease-ttl 5s`), ms. */
const FAST_LEASE_TTL_MS = 5_000;

/** Index of the first line at or after `from` that matches `msg` (and `executionId`), or -1. */
function indexOfLine(lines: LogLine[], msg: string | RegExp, from = 0, executionId?: string): number {
  return lines.findIndex(
    (l, i) =>
      i >= from &&
      (typeof msg === 'string' ? l.msg === msg : msg.test(l.msg ?? '')) &&
      (!executionId || l.executionId === executionId),
  );
}

/** Waits until the agent's log has a line matching `msg` at or after line `from`; returns its index. */
const loggedAt = (file: string, msg: string | RegExp, from = 0, executionId?: string) =>
  waitFor(`log line ${String(msg)} in ${file}`, async () => {
    const i = indexOfLine(await logLines(file), msg, from, executionId);
    return i >= 0 ? i + 1 : null; // 1-based so that the first line counts as found
  }).then((i) => i - 1);

describe('an agent that knows two coordinators of one PostgreSQL database', () => {
  let dir: string;
  let database: Awaited<ReturnType<typeof createPgDatabase>>;
  let coordinators: CoordinatorProcess[] = [];
  let agent: AgentProcess;
  let buyer: DeqoClient;
  let adminKey: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'deqo-failover-'));
    database = await createPgDatabase();
    const blobs = ['--blob-dir', join(dir, 'blobs')];
    const env = { DEQO_DATABASE_URL: database.url };
    coordinators = [
      new CoordinatorProcess(join(dir, 'coordinator-1'), await freePort(), [...FAST_FAULTS, ...blobs], env),
      new CoordinatorProcess(join(dir, 'coordinator-2'), await freePort(), [...FAST_FAULTS, ...blobs], env),
    ];
    for (const c of coordinators) await c.start(); // one after the other: the first creates the admin
    const admin = await coordinators[0]!.admin();
    adminKey = (await readFile(coordinators[0]!.adminKeyFile, 'utf8')).trim();
    const keys = await accounts(admin, 1, 100);
    buyer = new DeqoClient(coordinators[1]!.url, keys.buyerKey);
    // It knows coordinator 1 first, then 2 (its second --coordinator flag).
    agent = new AgentProcess('provider-1', join(dir, 'agent'), coordinators[0]!.url, keys.providerKeys[0]!, [
      '--coordinator',
      coordinators[1]!.url,
    ]);
    await agent.start();
    await waitFor('the agent to be online', async () => (await buyer.listProviders()).some((p) => p.online));
  });
  afterAll(async () => {
    await agent?.stop();
    for (const c of coordinators) await c.stop();
    await database?.drop();
  });

  it('keeps its execution when the coordinator it talks to is killed for longer than the lease: it renews and reports through the other, and that execution is paid', async () => {
    const { jobId, exec } = await startGated(buyer);
    const lease = async () => {
      const c = new pg.Client({ connectionString: database.url });
      await c.connect();
      try {
        const r = await c.query<{ state: string; lease_expires_at: string }>(
          'SELECT state, lease_expires_at FROM executions WHERE id = $1',
          [exec.id],
        );
        return { state: r.rows[0]!.state, expiresAt: Number(r.rows[0]!.lease_expires_at) };
      } finally {
        await c.end();
      }
    };
    await coordinators[0]!.kill();
    const leaseAtKill = await lease();
    const from = await loggedAt(
      agent.logFile,
      `coordinator ${coordinators[0]!.url} out of reach: switching to ${coordinators[1]!.url}`,
    );
    // Renewed through coordinator 2 at a time later than the lease taken through coordinator 1 ran out: the
    // execution outlived that lease (this orders events by the database's own lease times, not by a timer).
    await waitFor('a renewal after the old lease ran out', async () => {
      const l = await lease();
      expect(l.state).toBe('running');
      return l.expiresAt >= leaseAtKill.expiresAt + FAST_LEASE_TTL_MS;
    });
    await release(agent.dataDir, exec.id);
    const view = await expectPaidOnce(buyer, jobId, exec.id);
    expect(view.tasks[0]!.executions.some((e) => e.failure?.reason === 'lease_expired')).toBe(false);
    const lines = await logLines(agent.logFile);
    const reported = indexOfLine(lines, 'execution reported', from, exec.id);
    expect(reported).toBeGreaterThan(from);
    expect(lines[reported]).toMatchObject({ coordinator: coordinators[1]!.url });
    expect(indexOfLine(lines, /^lease (lost|no longer held)/)).toBe(-1);
    expect(await new DeqoClient(coordinators[1]!.url, adminKey).adminAudit()).toEqual({ sound: true, problems: [] });
  });
});

describe('a coordinator that is down when the agent starts', () => {
  let dir: string;
  let coordinator: CoordinatorProcess;
  let agent: AgentProcess;
  let buyer: DeqoClient;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'deqo-down-at-start-'));
    // A restart grace long enough for the agent's next registration attempt (its backoff reaches 30 s).
    coordinator = new CoordinatorProcess(join(dir, 'coordinator'), await freePort(), [
      ...FAST_FAULTS,
      '--restart-grace',
      '3m',
    ]);
    await coordinator.start();
    const keys = await accounts(await coordinator.admin(), 1, 100);
    buyer = new DeqoClient(coordinator.url, keys.buyerKey);
    agent = new AgentProcess('provider-1', join(dir, 'agent'), coordinator.url, keys.providerKeys[0]!);
    await agent.start();
    await waitFor('the agent to be online', async () => (await buyer.listProviders()).some((p) => p.online));
  });
  afterAll(async () => {
    await agent?.stop();
    await coordinator?.stop();
  });

  it('retries its registration until the coordinator starts, then comes online and delivers the report it had queued', async () => {
    const { jobId, exec } = await startGated(buyer);
    await coordinator.kill();
    // The job ends while the coordinator is down: its result cannot be uploaded, and stays queued in state.db.
    await release(agent.dataDir, exec.id);
    await loggedAt(agent.logFile, 'uploading the result failed; will retry', 0, exec.id);
    await agent.stop();
    expect(stateRows(agent.dataDir)).toEqual([exec.id]);

    const mark = (await logLines(agent.logFile)).length;
    await agent.start(); // the coordinator is still down
    const proc = agent.proc!;
    const waiting = await loggedAt(
      agent.logFile,
      /^cannot register: no coordinator answers; next attempt in \d+ s$/,
      mark,
    );
    const second = await loggedAt(agent.logFile, /^cannot register/, waiting + 1);
    expect((await logLines(agent.logFile))[second]).toMatchObject({ attempt: 2 });
    expect(agent.running).toBe(true); // waiting, not exited

    await coordinator.start();
    const registered = await loggedAt(agent.logFile, 'agent registered', second);
    await waitFor('the agent to be online', async () => (await buyer.listProviders()).some((p) => p.online));
    const packaged = await loggedAt(
      agent.logFile,
      'packaging the result of an execution that ended before the restart',
      registered,
      exec.id,
    );
    await expectPaidOnce(buyer, jobId, exec.id);
    const reported = await loggedAt(agent.logFile, 'execution reported', packaged, exec.id);
    expect(reported).toBeGreaterThan(packaged);
    expect(agent.proc).toBe(proc); // the same process: no restart was needed
    expect(agent.starts).toBe(2);
    await waitFor('the state row to go', async () => stateRows(agent.dataDir).length === 0);
  });
});
