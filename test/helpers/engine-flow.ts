/**
 * Driving a real engine over a real store through a job without Docker: agents registered directly, claims,
 * and consistent reports (real outputs tarballs in a real blob store) whose blobs are recorded as uploaded by the
 * reporting provider.
 */
import { createHash } from 'node:crypto';
import { expect } from 'vitest';
import { grantTxn, resultHashOf, toMicro } from '../../src/core/index.js';
import { BlobStore } from '../../src/coordinator/blobs.js';
import type { Engine } from '../../src/engine/index.js';
import {
  JobSpecSchema,
  OfferSchema,
  type Assignment,
  type Capacity,
  type JobSpecInput,
  type Manifest,
  type ReportRequest,
} from '../../src/protocol/index.js';
import { storeOutputs } from './outputs.js';

const CAPACITY: Capacity = {
  cpus: 2,
  memoryMb: 4096,
  arch: 'amd64',
  os: 'linux',
  dockerVersion: 'x',
  gpus: [],
  allowNetwork: false,
};
const sha = (s: string) => createHash('sha256').update(s).digest('hex');

/** Creates a buyer account holding `credits`. Returns its id. */
export async function fundedBuyer(engine: Engine, name: string, credits: number): Promise<string> {
  const buyerId = await engine.store.transaction((tx) => tx.accounts.createAccount(name, ['buyer'], engine.now()));
  if (credits > 0)
    await engine.store.transaction((tx) =>
      tx.ledger.post(grantTxn(buyerId, toMicro(credits), 'test credits'), engine.now()),
    );
  return buyerId;
}

/** Registers `n` agents named `<prefix>0…`, each under its own provider account. Returns their ids. */
export async function registerAgents(engine: Engine, n: number, prefix = 'agent'): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const providerId = await engine.store.transaction((tx) =>
      tx.accounts.createAccount(`${prefix}-provider${i}`, ['provider'], engine.now()),
    );
    const id = `${prefix}_${i}`;
    await engine.registerAgent({
      id,
      providerId,
      name: `${prefix}-box${i}`,
      publicKey: `pk-${prefix}${i}`,
      capacity: CAPACITY,
      offer: OfferSchema.parse({}),
      availability: { state: 'available' },
    });
    ids.push(id);
  }
  return ids;
}

/** Submits a busybox job for `buyerId` (spec fields overridable). Returns its id. */
export async function submitJob(engine: Engine, buyerId: string, over: Partial<JobSpecInput> = {}): Promise<string> {
  const spec = JobSpecSchema.parse({ image: 'deqo/busybox:test', command: ['echo', 'hi'], ...over });
  return (await engine.submitJob(buyerId, spec)).jobId;
}

/** Claims the one execution placed on `agentId` (asserting there is exactly one). */
export async function claimOne(engine: Engine, agentId: string): Promise<Assignment> {
  const got = await engine.claim(agentId, 4, 0);
  expect(got).toHaveLength(1);
  return got[0]!;
}

/**
 * A completed, consistent report of `a` with `stdout` and its output files — by default one, `result.txt` holding
 * `file <stdout>`; `mtime` (s since the epoch) sets their times, so equal files can make different tarballs — its
 * outputs a real tarball in the engine's blob store (which must be a BlobStore, see helpers/outputs.ts), its blobs
 * recorded and readable by every provider.
 */
export async function completedReport(
  engine: Engine,
  a: Assignment,
  stdout: string,
  o: { files?: Record<string, string>; mtime?: number } = {},
): Promise<ReportRequest> {
  const { store } = engine;
  if (!(engine.blobs instanceof BlobStore))
    throw new Error('completedReport needs an engine whose blobs are a BlobStore');
  const outputs = await storeOutputs(engine.blobs, o.files ?? { 'result.txt': `file ${stdout}` }, o.mtime);
  const stdoutBlob = sha(stdout);
  const stderrBlob = sha(`stderr ${a.executionId}`);
  const outputsBlob = outputs.outputsBlob;
  for (const b of [stdoutBlob, stderrBlob, outputsBlob])
    await store.transaction((tx) => tx.accounts.recordBlob(b, 10, engine.now()));
  for (const agent of await store.accounts.listAgents())
    await store.transaction((tx) =>
      tx.accounts.grantBlobAccess([stdoutBlob, stderrBlob, outputsBlob], agent.providerId),
    );
  const manifest: Manifest = { exitCode: 0, stdoutSha256: stdoutBlob, files: outputs.files };
  return {
    outcome: 'completed',
    fencingToken: a.fencingToken,
    manifest,
    resultHash: resultHashOf(manifest),
    outputsBlob,
    stdoutBlob,
    stderrBlob,
    usage: { wallMs: 1000, cpuMs: 900, maxMemoryBytes: 1 << 20 },
  };
}

/** Claims what is placed on each agent in `agentIds` (up to 4 each), with the agent that claimed it. */
export async function claimAll(
  engine: Engine,
  agentIds: readonly string[],
): Promise<Array<{ agentId: string; a: Assignment }>> {
  const out: Array<{ agentId: string; a: Assignment }> = [];
  for (const agentId of agentIds) for (const a of await engine.claim(agentId, 4, 0)) out.push({ agentId, a });
  return out;
}
