/**
 * The live API over real HTTP (a listening coordinator on a real SQLite store, agents played through the typed
 * client): the Server-Sent Events stream and who hears what, live output chunks and their buffer, and the chart
 * series. No Docker: the "agents" claim and report over the same routes a real agent uses.
 */
import { createPublicKey, generateKeyPairSync, sign } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiError, DeqoClient } from '../../src/client/index.js';
import { BlobStore, buildServer } from '../../src/coordinator/index.js';
import { grantTxn, toMicro } from '../../src/core/index.js';
import { DEFAULT_ENGINE_CONFIG, Engine } from '../../src/engine/index.js';
import { resultHashOf } from '../../src/core/index.js';
import type { Assignment, LiveEvent, Manifest } from '../../src/protocol/index.js';
import { openSqliteStore, type Store } from '../../src/store/index.js';
import { outputsBytes } from '../helpers/outputs.js';

type Who = 'buyerA' | 'buyerB' | 'providerP' | 'providerQ';
let store: Store;
let engine: Engine;
let app: ReturnType<typeof buildServer>;
let url: string;
const client = {} as Record<Who, DeqoClient>;
const keys = {} as Record<Who, string>;
const agent = { P: '', Q: '' };
const streams: AbortController[] = [];

function registration(name: string) {
  const { privateKey } = generateKeyPairSync('ed25519');
  const publicKey = createPublicKey(privateKey)
    .export({ type: 'spki', format: 'der' })
    .subarray(-32)
    .toString('base64');
  const timestamp = Date.now();
  const signature = sign(null, Buffer.from(`deqo-register\n${publicKey}\n${timestamp}`), privateKey).toString('base64');
  return {
    publicKey,
    name,
    timestamp,
    signature,
    capacity: {
      cpus: 2,
      memoryMb: 2048,
      arch: 'amd64',
      os: 'linux',
      dockerVersion: 'test',
      gpus: [],
      allowNetwork: false,
    },
  };
}

/** Opens an event stream as `who` and collects what arrives. */
function listen(who: Who, jobId?: string): LiveEvent[] {
  const got: LiveEvent[] = [];
  const ac = new AbortController();
  streams.push(ac);
  void client[who].events(jobId ? { jobId } : {}, (e) => got.push(e), ac.signal);
  return got;
}

async function until(what: string, pred: () => boolean): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

type DataOf<K extends LiveEvent['event']> = Extract<LiveEvent, { event: K }>['data'];
/** The data of the events named `k`. */
const ofKind = <K extends LiveEvent['event']>(got: LiveEvent[], k: K): Array<DataOf<K>> =>
  got.filter((e) => e.event === k).map((e) => e.data as DataOf<K>);

/** A consistent completed report of `a`, its blobs uploaded by provider P. */
async function completed(a: Assignment, stdout: string) {
  const up = async (text: string) => (await client.providerP.uploadBytes(new TextEncoder().encode(text))).sha256;
  const stdoutBlob = await up(stdout);
  const manifest: Manifest = { exitCode: 0, stdoutSha256: stdoutBlob, files: [] };
  return {
    outcome: 'completed' as const,
    fencingToken: a.fencingToken,
    manifest,
    resultHash: resultHashOf(manifest),
    stdoutBlob,
    stderrBlob: await up(`stderr ${a.executionId}`),
    // A real tarball of no files (what an agent uploads for an empty output folder), as the manifest says.
    outputsBlob: (await client.providerP.uploadBytes((await outputsBytes({})).bytes)).sha256,
    usage: { wallMs: 60_000, cpuMs: 50_000, maxMemoryBytes: 1 << 20 },
  };
}

beforeAll(async () => {
  store = await openSqliteStore(':memory:');
  const log = pino({ level: 'silent' });
  const blobs = new BlobStore(await mkdtemp(join(tmpdir(), 'deqo-live-')), 1 << 20);
  engine = new Engine(store, { blobs, config: { ...DEFAULT_ENGINE_CONFIG }, log: log });
  app = buildServer({
    store,
    engine,
    blobs,
    log,
    live: { networkIntervalMs: 100, pingIntervalMs: 150, debounceMs: 10 },
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  for (const who of ['buyerA', 'buyerB', 'providerP', 'providerQ'] as const) {
    const role = who.startsWith('buyer') ? 'buyer' : 'provider';
    const a = await engine.accounts.createAccount(who, [role], role);
    keys[who] = a.apiKey;
    client[who] = new DeqoClient(url, a.apiKey);
    if (role === 'buyer')
      await store.transaction((tx) => tx.ledger.post(grantTxn(a.accountId, toMicro(100), 'test credits'), Date.now()));
  }
  agent.P = (await client.providerP.registerAgent(registration('p-box'))).agentId;
  agent.Q = (await client.providerQ.registerAgent(registration('q-box'))).agentId;
});
afterAll(async () => {
  for (const s of streams) s.abort();
  await app.close();
  await store.close();
});

describe('a job followed live', () => {
  let jobId = '';
  let a: Assignment;
  const got = {} as Record<Who | 'otherJob', LiveEvent[]>;

  it('streams job, execution and log events to the buyer, execution events to the provider running it, and nothing to other tenants', async () => {
    for (const who of ['buyerA', 'buyerB', 'providerP', 'providerQ'] as const) got[who] = listen(who);
    got.otherJob = listen('buyerA', 'job_someotherjob0000');
    await until(
      'every stream to open',
      () => app.server.listening && Object.values(got).every((g) => g.some((e) => e.event === 'network')),
    );

    ({ jobId } = await client.buyerA.submitJob({
      image: 'deqo/busybox:test',
      command: ['echo', 'hi'],
      constraints: { providers: [agent.P] },
    }));
    // Submitting schedules at once: the job may be running by the time the stream reads it (states are read, not replayed).
    await engine.schedule();
    await until('the job', () => ofKind(got.buyerA, 'job').some((j) => j.jobId === jobId && j.state === 'running'));
    await until('the assigned execution', () => ofKind(got.buyerA, 'execution').some((e) => e.state === 'assigned'));
    [a] = (await client.providerP.claim(agent.P, 1, 0)) as [Assignment];
    await until('the running execution', () => ofKind(got.providerP, 'execution').some((e) => e.state === 'running'));

    await client.providerP.sendLog(agent.P, a.executionId, {
      fencingToken: a.fencingToken,
      stream: 'stdout',
      offset: 0,
      data: 'hello\n',
    });
    await client.providerP.sendLog(agent.P, a.executionId, {
      fencingToken: a.fencingToken,
      stream: 'stdout',
      offset: 0,
      data: 'hello\nwörld\n',
    }); // resent + new
    await client.providerP.sendLog(agent.P, a.executionId, {
      fencingToken: a.fencingToken,
      stream: 'stderr',
      offset: 0,
      data: 'warning\n',
    });
    await until('the log events', () => ofKind(got.buyerA, 'log').length === 3);
    expect(ofKind(got.buyerA, 'log')).toEqual([
      { jobId, executionId: a.executionId, stream: 'stdout', data: 'hello\n' },
      { jobId, executionId: a.executionId, stream: 'stdout', data: 'wörld\n' },
      { jobId, executionId: a.executionId, stream: 'stderr', data: 'warning\n' },
    ]);
    expect(await client.buyerA.executionLog(jobId, a.executionId)).toBe('hello\nwörld\n');
    expect(await client.buyerA.executionLog(jobId, a.executionId, 'stderr')).toBe('warning\n');

    await client.providerP.report(agent.P, a.executionId, await completed(a, 'hi\n'));
    await until('the succeeded job', () => ofKind(got.buyerA, 'job').some((j) => j.state === 'succeeded'));
    await until('the valid execution at the provider', () =>
      ofKind(got.providerP, 'execution').some((e) => e.state === 'valid'),
    );

    const jobs = ofKind(got.buyerA, 'job').filter((j) => j.jobId === jobId);
    expect(jobs.map((j) => j.state).filter((x) => x !== 'queued')).toEqual(['running', 'succeeded']);
    expect(jobs.at(-1)!.tasks).toEqual({ total: 1, verified: 1, failed: 0 });
    const execs = ofKind(got.buyerA, 'execution');
    expect(execs.map((e) => e.state)).toEqual(['assigned', 'running', 'valid']);
    for (const e of execs)
      expect(e).toMatchObject({ jobId, executionId: a.executionId, taskId: expect.any(String), agentName: 'p-box' });
    expect(ofKind(got.providerP, 'execution').map((e) => e.state)).toEqual(['assigned', 'running', 'valid']);
    expect(ofKind(got.providerP, 'job')).toEqual([]);
    expect(ofKind(got.providerP, 'log')).toEqual([]);
    for (const who of ['buyerB', 'providerQ', 'otherJob'] as const) {
      expect(
        got[who].filter((e) => e.event !== 'network'),
        who,
      ).toEqual([]);
      expect(JSON.stringify(got[who]), who).not.toContain(jobId);
    }
    const net = ofKind(got.buyerB, 'network').at(-1)!;
    expect(net).toMatchObject({
      at: expect.any(Number),
      agentsOnline: 2,
      queueDepth: expect.any(Number),
      runningExecutions: expect.any(Number),
    });
  });

  it('refuses live output from another agent, with a stale fencing token, and after the report; hides it from other buyers', async () => {
    const chunk = { fencingToken: a.fencingToken, stream: 'stdout' as const, offset: 100, data: 'late\n' };
    await expect(client.providerP.sendLog(agent.P, a.executionId, chunk)).rejects.toMatchObject({
      status: 409,
      code: 'stale_lease',
    });
    await expect(client.providerQ.sendLog(agent.Q, a.executionId, chunk)).rejects.toMatchObject({ status: 404 });
    await expect(client.providerQ.sendLog(agent.P, a.executionId, chunk)).rejects.toMatchObject({ status: 404 });
    await expect(client.buyerB.executionLog(jobId, a.executionId)).rejects.toMatchObject({
      status: 404,
      code: 'not_found',
    });
    await expect(client.buyerA.executionLog(jobId, 'exec_nosuchexecution0')).rejects.toMatchObject({ status: 404 });
    const big = { ...chunk, data: 'x'.repeat(64 * 1024 + 1) };
    await expect(client.providerP.sendLog(agent.P, a.executionId, big)).rejects.toMatchObject({
      status: 400,
      code: 'validation_failed',
    });
  });

  it('is text/event-stream with `event:`/`data:` lines and `: ping` comments, and refuses a missing key', async () => {
    const ac = new AbortController();
    const res = await fetch(`${url}/v1/events`, {
      headers: { authorization: `Bearer ${keys.buyerB}` },
      signal: ac.signal,
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    expect(res.headers.get('x-content-type-options')).toBe('nosniff'); // set before the route wrote its own head
    const reader = res.body!.getReader();
    let text = '';
    while (!(text.includes('\n: ping\n') && text.includes('event: network\ndata: {')))
      text += new TextDecoder().decode((await reader.read()).value);
    ac.abort();
    const unauth = new DeqoClient(url, 'deqo_nosuchkey');
    await expect(unauth.events({}, () => undefined)).rejects.toMatchObject({ status: 401, code: 'unauthorized' });
    await expect(client.buyerA.events({ jobId: 'not an id!' }, () => undefined)).rejects.toBeInstanceOf(ApiError);
  });

  it("charts: per-minute activity and recent verifications naming only the caller's jobs; a provider's earnings per hour", async () => {
    const stats = await client.buyerA.networkStats(5);
    expect(stats.points).toHaveLength(5);
    expect(stats.points[4]!.t).toBe(Math.floor(Date.now() / 60_000) * 60_000);
    for (const [i, p] of stats.points.entries()) if (i > 0) expect(p.t - stats.points[i - 1]!.t).toBe(60_000);
    const sum = (k: 'jobsSubmitted' | 'jobsFinished' | 'executionsValid' | 'executionsInvalid') =>
      stats.points.reduce((s, p) => s + p[k], 0);
    expect([sum('jobsSubmitted'), sum('jobsFinished'), sum('executionsValid'), sum('executionsInvalid')]).toEqual([
      1, 1, 1, 0,
    ]);
    expect(stats.agentsOnline).toBe(2);
    expect(stats.recentVerifications).toEqual([
      { at: expect.any(Number), jobId, taskIndex: 0, outcome: 'verified', agreed: 1, outvoted: 0 },
    ]);
    const other = await client.buyerB.networkStats();
    expect(other.points).toHaveLength(60);
    expect(other.recentVerifications).toEqual([{ ...stats.recentVerifications[0], jobId: null }]);
    expect(JSON.stringify(await client.providerQ.networkStats())).not.toContain(jobId);
    await expect(client.buyerA.networkStats(0)).rejects.toMatchObject({ status: 400 });

    const earned = await client.providerP.providerEarnings(3);
    expect(earned.points).toHaveLength(3);
    expect(earned.points[2]!.t).toBe(Math.floor(Date.now() / 3_600_000) * 3_600_000);
    expect(earned.total).toBeGreaterThan(0);
    expect(earned.total).toBe((await client.providerP.balance()).earned);
    expect(earned.points.reduce((s, p) => s + p.credits, 0)).toBeCloseTo(earned.total, 6);
    expect((await client.providerQ.providerEarnings()).total).toBe(0);
    await expect(client.buyerA.providerEarnings()).rejects.toMatchObject({ status: 403 });
  });
});
