/**
 * Per-account limits over real HTTP (a listening coordinator on a real SQLite store and blob folder, with small
 * limits and a clock the test moves): failed authentications per source address, open event streams per account,
 * queued tasks per buyer, stored blob bytes per account, who may upload, and the sweep of expired blobs. Every
 * refusal is a 429 with Retry-After and the catalogue's body naming the limit.
 */
import { createPublicKey, generateKeyPairSync, sign } from 'node:crypto';
import { access, mkdtemp } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiError, DeqoClient } from '../../src/client/index.js';
import { retryAfterOf } from '../../src/client/client.js';
import { formatWait } from '../../src/cli/command.js';
import { BlobStore, buildServer } from '../../src/coordinator/index.js';
import { sourceOf } from '../../src/coordinator/ratelimit.js';
import { DEFAULT_ACCOUNT_LIMITS, grantTxn, toMicro, type AccountLimits } from '../../src/core/index.js';
import { DEFAULT_ENGINE_CONFIG, Engine } from '../../src/engine/index.js';
import { openSqliteStore, type Store } from '../../src/store/index.js';

const HOUR = 3_600_000;
const LIMITS: AccountLimits = {
  ...DEFAULT_ACCOUNT_LIMITS,
  authFailures: 5,
  authWindowMs: 60_000,
  streams: 3,
  queuedTasks: 4,
  blobBytes: 1000,
  unreferencedBlobTtlMs: HOUR,
  blobRetentionMs: 2 * HOUR,
};

type Who = 'buyer' | 'other' | 'provider';
let store: Store;
let engine: Engine;
let blobs: BlobStore;
let app: ReturnType<typeof buildServer>;
let url: string;
let clock = Date.now();
const keys = {} as Record<Who, string>;
const client = {} as Record<Who, DeqoClient>;

beforeAll(async () => {
  store = await openSqliteStore(':memory:');
  const log = pino({ level: 'silent' });
  blobs = new BlobStore(await mkdtemp(join(tmpdir(), 'deqo-limits-')), 1 << 20);
  engine = new Engine(store, { blobs, config: { ...DEFAULT_ENGINE_CONFIG }, limits: LIMITS, log, now: () => clock });
  app = buildServer({ store, engine, blobs, log });
  await app.listen({ port: 0, host: '127.0.0.1' });
  url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  for (const who of ['buyer', 'other', 'provider'] as const) {
    const role = who === 'provider' ? 'provider' : 'buyer';
    const a = await engine.accounts.createAccount(who, [role], role);
    keys[who] = a.apiKey;
    client[who] = new DeqoClient(url, a.apiKey);
    if (role === 'buyer')
      await store.transaction((tx) => tx.ledger.post(grantTxn(a.accountId, toMicro(100), 'test credits'), clock));
  }
});
afterAll(async () => {
  await app.close();
  await store.close();
});

/** Expects `p` to reject with a 429 ApiError of `code` naming `limit`; returns it. */
async function refused(p: Promise<unknown>, code: string, limit: string): Promise<ApiError> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ApiError);
  const e = err as ApiError;
  expect({ status: e.status, code: e.code, limit: (e.details as { limit?: string }).limit }).toEqual({
    status: 429,
    code,
    limit,
  });
  expect(e.retryAfterSec).toBeGreaterThan(0);
  return e;
}

async function until(what: string, pred: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const bytes = (n: number, fill: number) => new Uint8Array(n).fill(fill);

describe('open event streams per account', () => {
  it('refuses the stream past the limit with 429, counts per account, and frees a place when one closes', async () => {
    const opened: AbortController[] = [];
    const open = async (who: Who): Promise<AbortController> => {
      const ac = new AbortController();
      await new Promise<void>((resolve, reject) => {
        client[who].events({ onOpen: resolve }, () => undefined, ac.signal).catch(reject);
      });
      opened.push(ac);
      return ac;
    };
    try {
      const first = await open('buyer');
      await open('buyer');
      await open('buyer');
      const e = await refused(open('buyer'), 'quota_exceeded', 'streams');
      expect(e.details).toMatchObject({ max: 3, used: 3 });
      // Another account is not affected.
      await open('other');
      // Closing one lets the next one in.
      first.abort();
      await until('a freed stream place', () =>
        open('buyer').then(
          () => true,
          () => false,
        ),
      );
    } finally {
      for (const ac of opened) ac.abort();
    }
  });
});

describe('queued tasks per buyer', () => {
  it('refuses a job that would pass the limit, naming used and requested, and admits it once tasks ended', async () => {
    const spec = (count: number) => ({ image: 'deqo/busybox:test', command: ['true'], array: { count } });
    const { jobId } = await client.buyer.submitJob(spec(3));
    const e = await refused(client.buyer.submitJob(spec(2)), 'quota_exceeded', 'queuedTasks');
    expect(e.details).toMatchObject({ max: 4, used: 3, requested: 2 });
    expect(e.retryAfterSec).toBe(60);
    // Another buyer has its own count; one more task still fits.
    await client.other.submitJob(spec(4));
    const last = await client.buyer.submitJob(spec(1));
    await client.buyer.cancelJob(jobId);
    await client.buyer.cancelJob(last.jobId);
    const full = await client.buyer.submitJob(spec(4));
    await client.buyer.cancelJob(full.jobId);
  });
});

describe('blob bytes per account, and who may upload', () => {
  it('refuses an upload past the quota, declared or streamed, and keeps nothing of it', async () => {
    await client.other.uploadBytes(bytes(600, 1));
    // Declared by Content-Length: refused before any byte is stored.
    const declared = await refused(client.other.uploadBytes(bytes(600, 2)), 'quota_exceeded', 'blobBytes');
    expect(declared.details).toMatchObject({ max: 1000, used: 600, requested: 600 });
    // Streamed without a length: refused as the bytes pass the room left.
    const stream = Readable.toWeb(Readable.from([Buffer.from(bytes(300, 3)), Buffer.from(bytes(300, 3))]));
    await refused(
      client.other.uploadBytes(stream as unknown as ReadableStream<Uint8Array>),
      'quota_exceeded',
      'blobBytes',
    );
    expect(await store.blobs.uploadedBytes((await store.accounts.findAccount('other'))!.id)).toBe(600);
    // What fits is taken.
    expect((await client.other.uploadBytes(bytes(400, 4))).size).toBe(400);
  });

  it('refuses a provider key that runs nothing (403): inputs are uploaded with buyer keys', async () => {
    const err = await client.provider.uploadBytes(bytes(10, 5)).catch((e: unknown) => e);
    expect(err).toMatchObject({ status: 403, code: 'forbidden' });
  });

  it('lets a provider upload while it runs an execution', async () => {
    const { privateKey } = generateKeyPairSync('ed25519');
    const publicKey = createPublicKey(privateKey)
      .export({ type: 'spki', format: 'der' })
      .subarray(-32)
      .toString('base64');
    const timestamp = clock;
    const signature = sign(null, Buffer.from(`deqo-register\n${publicKey}\n${timestamp}`), privateKey).toString(
      'base64',
    );
    const capacity = {
      ...{ cpus: 8, memoryMb: 16_384, arch: 'amd64', os: 'linux', dockerVersion: 'test', gpus: [] },
      allowNetwork: false,
    };
    const { agentId } = await client.provider.registerAgent({ publicKey, name: 'box', timestamp, signature, capacity });
    await engine.schedule();
    const claimed = await client.provider.claim(agentId, 1, 0);
    expect(claimed.length).toBe(1);
    expect((await client.provider.uploadBytes(bytes(10, 5))).size).toBe(10);
  });
});

describe('expiry of blobs', () => {
  it('deletes a blob no job uses after its lifetime, keeps a job’s inputs until its retention ends', async () => {
    const loose = (await client.buyer.uploadBytes(bytes(100, 7))).sha256;
    const input = (await client.buyer.uploadBytes(bytes(100, 8))).sha256;
    const { jobId } = await client.buyer.submitJob({
      image: 'deqo/busybox:test',
      command: ['true'],
      inputs: [{ path: 'in', blob: input }],
    });
    const file = (sha: string) => join(blobs.dir, sha.slice(0, 2), sha);
    const stored = (sha: string) =>
      access(file(sha)).then(
        () => true,
        () => false,
      );
    clock += HOUR + 1;
    await engine.blobSystem.sweep();
    expect(await stored(loose)).toBe(false);
    expect(await client.buyer.openBlob(loose).catch((e: unknown) => (e as ApiError).status)).toBe(404);
    // The open job's input stays; after the job ended it stays for the retention period, then goes.
    expect(await stored(input)).toBe(true);
    await client.buyer.cancelJob(jobId);
    clock += HOUR;
    await engine.blobSystem.sweep();
    expect(await stored(input)).toBe(true);
    clock += HOUR + 1;
    await engine.blobSystem.sweep();
    expect(await stored(input)).toBe(false);
    expect(await store.accounts.blobSize(input)).toBeNull();
  });

  it('frees the quota of what it deleted', async () => {
    await client.other.uploadBytes(bytes(1000, 9));
    await refused(client.other.uploadBytes(bytes(1, 9)), 'quota_exceeded', 'blobBytes');
    clock += HOUR + 1;
    await engine.tick(); // the engine's round sweeps when the sweep is due
    expect((await client.other.uploadBytes(bytes(600, 2))).size).toBe(600);
  });
});

describe('failed authentications per source address', () => {
  const from = (remoteAddress: string, key: string) =>
    app.inject({ method: 'GET', url: '/v1/whoami', remoteAddress, headers: { authorization: `Bearer ${key}` } });
  const wrong = 'deqo_' + 'x'.repeat(43);

  it('answers 429 with Retry-After after N failures from one address, and not from another', async () => {
    for (let i = 0; i < LIMITS.authFailures; i++) expect((await from('203.0.113.7', wrong)).statusCode).toBe(401);
    const res = await from('203.0.113.7', wrong);
    expect(res.statusCode).toBe(429);
    expect(Number(res.headers['retry-after'])).toBe(60);
    expect(res.json().error).toMatchObject({ code: 'rate_limited', details: { limit: 'authFailures', max: 5 } });
    // The same account's key from another address is not locked out.
    expect((await from('198.51.100.1', keys.buyer)).statusCode).toBe(200);
    // The window slides: once the failures are older than it, the address is heard again.
    clock += LIMITS.authWindowMs;
    expect((await from('203.0.113.7', keys.buyer)).statusCode).toBe(200);
  });

  it('counts an IPv6 /64 as one source', () => {
    expect(sourceOf('2001:db8:1:2:aaaa::1')).toBe(sourceOf('2001:0db8:1:2:bbbb:cccc:dddd:eeee'));
    expect(sourceOf('2001:db8:1:3::1')).not.toBe(sourceOf('2001:db8:1:2::1'));
    expect(sourceOf(undefined)).toBe('unknown'); // a request whose socket is already gone
    expect(sourceOf('::ffff:192.0.2.1')).toBe('192.0.2.1');
  });

  it('counts per client behind a trusted proxy (X-Forwarded-For)', async () => {
    const log = pino({ level: 'silent' });
    const proxied = buildServer({ store, engine, blobs, log, trustProxy: ['127.0.0.1'] });
    const via = (client: string) =>
      proxied.inject({
        method: 'GET',
        url: '/v1/whoami',
        headers: { authorization: `Bearer ${wrong}`, 'x-forwarded-for': client },
      });
    try {
      for (let i = 0; i < LIMITS.authFailures; i++) expect((await via('192.0.2.10')).statusCode).toBe(401);
      expect((await via('192.0.2.10')).statusCode).toBe(429);
      expect((await via('192.0.2.11')).statusCode).toBe(401);
    } finally {
      await proxied.close();
    }
  });

  it('surfaces Retry-After through the client', async () => {
    const bad = new DeqoClient(url, wrong);
    for (let i = 0; i < LIMITS.authFailures; i++) await bad.whoami().catch(() => undefined);
    const e = await refused(bad.whoami(), 'rate_limited', 'authFailures');
    expect(e.retryAfterSec).toBe(60);
  });
});

describe('Retry-After for people', () => {
  it('reads delay-seconds and HTTP-dates, and words a wait', () => {
    const now = Date.parse('2026-11-30T06:00:00Z');
    expect(retryAfterOf('42', now)).toBe(42);
    expect(retryAfterOf('Mon, 30 Nov 2026 06:02:00 GMT', now)).toBe(120);
    expect(retryAfterOf('soon', now)).toBeUndefined();
    expect(retryAfterOf(null, now)).toBeUndefined();
    expect([formatWait(45), formatWait(600), formatWait(7200)]).toEqual(['45 s', '10 min', '2 h']);
  });
});
