/**
 * The agent survives faults, on real parts: an in-process coordinator (Fastify + SQLite) over real HTTP, real
 * `deqo agent` processes killed with SIGKILL and restarted, real Docker containers, and — the one fake, because the
 * network is outside the project — a TCP proxy the test pauses to partition an agent from its coordinator.
 *
 * Jobs "gated" on a marker file wait inside their container until the test drops the marker into the execution's
 * (read-only mounted) inputs folder, so each fault lands at a known point without timing guesses.
 */
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import Docker from 'dockerode';
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
import { settled, testNetwork, waitForJob } from '../helpers/network.js';
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
  const text = await readFile(join(agentDir(dir, i), 'agent.log'), 'utf8').catch(() => '');
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
      provider,
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
