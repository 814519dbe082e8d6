/**
 * The HTTP layer through inject(): blobs (limit, digest check), auth scopes, another provider's agent, and the
 * security headers on every kind of API response.
 */
import { createHash, generateKeyPairSync, sign, createPublicKey } from 'node:crypto';
import { mkdtemp, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BlobStore, buildServer } from '../../src/coordinator/index.js';
import { SECURITY_HEADERS } from '../../src/coordinator/security-headers.js';
import { grantTxn, toMicro } from '../../src/core/index.js';
import { DEFAULT_ENGINE_CONFIG, Engine } from '../../src/engine/index.js';
import { openSqliteStore, type Store } from '../../src/store/index.js';

let store: Store;
let engine: Engine;
let app: ReturnType<typeof buildServer>;
let blobDir: string;
const keys: Record<string, string> = {};

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

beforeAll(async () => {
  store = await openSqliteStore(':memory:');
  blobDir = await mkdtemp(join(tmpdir(), 'deqo-blobs-'));
  const log = pino({ level: 'silent' });
  const blobs = new BlobStore(blobDir, 1000);
  engine = new Engine(store, { blobs, config: DEFAULT_ENGINE_CONFIG, log: log });
  app = buildServer({
    store,
    engine,
    blobs,
    log,
  });
  for (const [name, role] of [
    ['buyer', 'buyer'],
    ['p1', 'provider'],
    ['p2', 'provider'],
  ] as const) {
    const a = await engine.accounts.createAccount(name, [role], role);
    keys[name] = a.apiKey;
    if (role === 'buyer')
      await store.transaction((tx) => tx.ledger.post(grantTxn(a.accountId, toMicro(100), 'test credits'), Date.now()));
  }
});
afterAll(async () => {
  await app.close();
  await store.close();
});

const auth = (who: string) => ({ authorization: `Bearer ${keys[who]}` });

describe('blobs', () => {
  it('stores bytes under their SHA-256 and serves them back', async () => {
    const body = Buffer.from('hello blobs');
    const up = await app.inject({
      method: 'POST',
      url: '/v1/blobs',
      headers: { ...auth('buyer'), 'content-type': 'application/octet-stream' },
      payload: body,
    });
    expect(up.statusCode).toBe(201);
    expect(up.json()).toEqual({ sha256: createHash('sha256').update(body).digest('hex'), size: body.length });
    const down = await app.inject({ method: 'GET', url: `/v1/blobs/${up.json().sha256}`, headers: auth('buyer') });
    expect(down.rawPayload.equals(body)).toBe(true);
  });
  it('refuses a blob over the size limit with 413 and keeps nothing', async () => {
    const r = await app.inject({
      method: 'POST',
      url: '/v1/blobs',
      headers: { ...auth('buyer'), 'content-type': 'application/octet-stream' },
      payload: Buffer.alloc(1001),
    });
    expect(r.statusCode).toBe(413);
    expect(r.json().error.code).toBe('payload_too_large');
    expect(await readdir(join(blobDir, 'tmp'))).toEqual([]);
  });
  it('refuses bytes that do not match the announced digest', async () => {
    const r = await app.inject({
      method: 'POST',
      url: '/v1/blobs',
      payload: Buffer.from('x'),
      headers: { ...auth('buyer'), 'content-type': 'application/octet-stream', 'x-deqo-sha256': 'a'.repeat(64) },
    });
    expect(r.statusCode).toBe(422);
  });
  it('refuses a blob sent as anything but application/octet-stream (415) instead of storing an empty one', async () => {
    for (const type of ['application/json', 'text/plain']) {
      const r = await app.inject({
        method: 'POST',
        url: '/v1/blobs',
        payload: type === 'application/json' ? '{"a":1}' : 'hello',
        headers: { ...auth('buyer'), 'content-type': type },
      });
      expect(r.statusCode).toBe(415);
      expect(r.json().error.message).toContain('application/octet-stream');
    }
    expect(
      await store.accounts.blobSize('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'),
    ).toBeNull(); // no empty blob
  });
  it('answers 404 for an unknown blob and 400 for a malformed name', async () => {
    expect(
      (await app.inject({ method: 'GET', url: `/v1/blobs/${'b'.repeat(64)}`, headers: auth('buyer') })).statusCode,
    ).toBe(404);
    expect(
      (await app.inject({ method: 'GET', url: '/v1/blobs/nothex', headers: auth('buyer') })).json().error.details[0]
        .path,
    ).toBe('sha256');
  });
});

describe('keys and tenancy', () => {
  it('needs the right scope', async () => {
    const r = await app.inject({
      method: 'POST',
      url: '/v1/jobs',
      headers: auth('p1'),
      payload: { image: 'x', command: ['y'] },
    });
    expect(r.statusCode).toBe(403);
    const reg = await app.inject({
      method: 'POST',
      url: '/v1/agents/register',
      headers: auth('buyer'),
      payload: registration('a'),
    });
    expect(reg.statusCode).toBe(403);
  });
  it('refuses a registration whose signature does not match', async () => {
    const body = { ...registration('a'), signature: registration('b').signature };
    const r = await app.inject({ method: 'POST', url: '/v1/agents/register', headers: auth('p1'), payload: body });
    expect(r.statusCode).toBe(401);
  });
  it("hides one provider's agent from another (404)", async () => {
    const r = await app.inject({
      method: 'POST',
      url: '/v1/agents/register',
      headers: auth('p1'),
      payload: registration('p1-agent'),
    });
    expect(r.statusCode).toBe(200);
    const agentId = r.json().agentId as string;
    const own = await app.inject({
      method: 'POST',
      url: `/v1/agents/${agentId}/heartbeat`,
      headers: auth('p1'),
      payload: { executions: [] },
    });
    expect(own.statusCode).toBe(200);
    const other = await app.inject({
      method: 'POST',
      url: `/v1/agents/${agentId}/heartbeat`,
      headers: auth('p2'),
      payload: { executions: [] },
    });
    expect(other.statusCode).toBe(404);
  });
  it("hides one buyer's job from another (404)", async () => {
    keys.buyer2 = (await engine.accounts.createAccount('buyer2', ['buyer'], 'buyer')).apiKey;
    const sub = await app.inject({
      method: 'POST',
      url: '/v1/jobs',
      headers: auth('buyer'),
      payload: { image: 'deqo/busybox:test', command: ['true'] },
    });
    expect(sub.statusCode).toBe(201);
    const id = sub.json().jobId as string;
    expect((await app.inject({ method: 'GET', url: `/v1/jobs/${id}`, headers: auth('buyer') })).statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: `/v1/jobs/${id}`, headers: auth('buyer2') })).statusCode).toBe(404);
    expect(
      (await app.inject({ method: 'POST', url: `/v1/jobs/${id}/cancel`, headers: auth('buyer2') })).statusCode,
    ).toBe(404);
  });
});

describe('job view pages', () => {
  it("returns an array job's counts and one page of its tasks, in index order, filtered by state on request", async () => {
    const sub = await app.inject({
      method: 'POST',
      url: '/v1/jobs',
      headers: auth('buyer'),
      payload: { image: 'deqo/busybox:test', command: ['true'], array: { count: 250 } },
    });
    expect(sub.statusCode).toBe(201);
    const id = sub.json().jobId as string;
    const get = (query: string) => app.inject({ method: 'GET', url: `/v1/jobs/${id}${query}`, headers: auth('buyer') });
    const first = (await get('')).json();
    // An agent registered above may have taken a task already.
    const c = first.taskCounts;
    expect([c.queued + c.running, c.verified + c.failed + c.cancelled]).toEqual([250, 0]);
    expect(first.taskPage).toEqual({ offset: 0, limit: 100, total: 250, state: null });
    expect(first.tasks.map((t: { index: number }) => t.index)).toEqual(Array.from({ length: 100 }, (_, i) => i));
    const last = (await get('?taskOffset=200&taskLimit=1000')).json();
    expect(last.tasks.map((t: { index: number }) => t.index)).toEqual(Array.from({ length: 50 }, (_, i) => 200 + i));
    const queued = (await get(`?taskState=queued&taskOffset=${c.queued - 1}`)).json();
    expect(queued.taskPage).toEqual({ offset: c.queued - 1, limit: 100, total: c.queued, state: 'queued' });
    expect(queued.tasks.map((t: { index: number; state: string }) => [t.index, t.state])).toEqual([[249, 'queued']]);
    const none = (await get('?taskState=verified')).json();
    expect([none.taskPage.total, none.tasks.length]).toEqual([0, 0]);
    const bad = await get('?taskLimit=5000');
    expect(bad.statusCode).toBe(400);
    expect(JSON.stringify(bad.json())).toContain('taskLimit');
    // The results still list every task.
    const results = await app.inject({ method: 'GET', url: `/v1/jobs/${id}/results`, headers: auth('buyer') });
    expect(results.json().tasks).toHaveLength(250);
  });
});

describe('security headers', () => {
  it('are on every API response: answers, errors, refusals, unknown routes, blobs and health', async () => {
    const up = await app.inject({
      method: 'POST',
      url: '/v1/blobs',
      headers: { ...auth('buyer'), 'content-type': 'application/octet-stream' },
      payload: Buffer.from('headers'),
    });
    const responses = [
      up,
      await app.inject({ method: 'GET', url: `/v1/blobs/${up.json().sha256}`, headers: auth('buyer') }),
      await app.inject({ method: 'GET', url: '/v1/jobs', headers: auth('buyer') }),
      await app.inject({ method: 'GET', url: '/v1/jobs' }), // 401
      await app.inject({ method: 'GET', url: '/v1/jobs/nope!', headers: auth('buyer') }), // 400
      await app.inject({ method: 'GET', url: '/v1/no-such-route', headers: auth('buyer') }), // 404
      await app.inject({ method: 'GET', url: '/v1/health' }),
    ];
    expect(responses.map((r) => r.statusCode)).toEqual([201, 200, 200, 401, 400, 404, 200]);
    for (const r of responses) {
      expect(r.headers).toMatchObject(SECURITY_HEADERS);
      expect(r.headers['x-content-type-options']).toBe('nosniff');
      expect(r.headers['content-security-policy']).toBe("default-src 'none'; frame-ancestors 'none'");
    }
  });
});
