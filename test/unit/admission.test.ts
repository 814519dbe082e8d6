/**
 * Admission control through the HTTP layer (buildServer + inject): job specs that would fail on every agent as the
 * provider's fault (reserved or non-normalized paths, colliding inputs, an environment Docker refuses, an escrow
 * beyond the ledger's safe bound) are refused at submit and at quote with 400 naming the field; admin grants below
 * one micro-credit or beyond the circulation bound are 400 too, and the ledger stays sound.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BlobStore, buildServer } from '../../src/coordinator/index.js';
import { MAX_MICRO, fromMicro } from '../../src/core/index.js';
import { DEFAULT_ENGINE_CONFIG, Engine } from '../../src/engine/index.js';
import { openSqliteStore, type Store } from '../../src/store/index.js';

let store: Store;
let engine: Engine;
let app: ReturnType<typeof buildServer>;
let blobDir: string;
const keys: Record<string, string> = {};
let blob = '';

beforeAll(async () => {
  store = await openSqliteStore(':memory:');
  blobDir = await mkdtemp(join(tmpdir(), 'deqo-blobs-'));
  const log = pino({ level: 'silent' });
  const blobs = new BlobStore(blobDir, 1000);
  engine = new Engine(store, { blobs, config: DEFAULT_ENGINE_CONFIG, log });
  app = buildServer({ store, engine, blobs, log });
  for (const [name, role] of [
    ['buyer', 'buyer'],
    ['admin', 'admin'],
  ] as const) {
    keys[name] = (await engine.accounts.createAccount(name, [role], role)).apiKey;
  }
  await engine.accounts.grant('buyer', 1000, 'test credits');
  const up = await app.inject({
    method: 'POST',
    url: '/v1/blobs',
    headers: { ...auth('buyer'), 'content-type': 'application/octet-stream' },
    payload: Buffer.from('input bytes'),
  });
  blob = up.json<{ sha256: string }>().sha256;
});
afterAll(async () => {
  await app.close();
  await store.close();
  await rm(blobDir, { recursive: true, force: true });
});

const auth = (who: string) => ({ authorization: `Bearer ${keys[who]}` });
const base = { image: 'deqo/busybox:test', command: ['true'] };

/** Posts `spec` to submit and to quote; both answers. */
async function both(spec: object): Promise<{ submit: Answer; quote: Answer }> {
  const post = async (url: string): Promise<Answer> => {
    const r = await app.inject({ method: 'POST', url, headers: auth('buyer'), payload: spec });
    return { status: r.statusCode, body: r.json() };
  };
  return { submit: await post('/v1/jobs'), quote: await post('/v1/quote') };
}
interface Answer {
  status: number;
  body: { error?: { code: string; message: string; details?: { path: string; message: string }[] } };
}

/** Expects 400 validation_failed at submit and quote, naming `field` (a prefix of the first issue's path). */
async function refused(spec: object, field: string, words?: RegExp): Promise<void> {
  const { submit, quote } = await both(spec);
  for (const a of [submit, quote]) {
    expect(a.status, JSON.stringify(a.body)).toBe(400);
    expect(a.body.error?.code).toBe('validation_failed');
    expect(a.body.error?.details?.[0]?.path.startsWith(field), JSON.stringify(a.body.error?.details)).toBe(true);
    if (words) expect(a.body.error?.message).toMatch(words);
  }
}

describe('outputDir', () => {
  it.each([
    '/tmp',
    '/tmp/out',
    '//inputs',
    '/.',
    '/proc',
    '/proc/x',
    '/sys',
    '/dev',
    '/etc',
    '/inputs/x',
    '/a/./b',
    '/a//b',
    '/out/',
  ])('refuses %s', async (outputDir) => {
    await refused({ ...base, outputDir }, 'outputDir');
  });
  it('accepts an ordinary absolute folder', async () => {
    const { submit } = await both({ ...base, outputDir: '/work/out' });
    expect(submit.status).toBe(201);
  });
});

describe('inputs', () => {
  it('refuses a file at a path another input uses as a folder', async () => {
    await refused(
      {
        ...base,
        inputs: [
          { path: 'a', blob },
          { path: 'a/b', blob },
        ],
      },
      'inputs.1.path',
      /inputs\.0\.path/,
    );
  });
  it('refuses a script job input under main.py', async () => {
    await refused(
      { script: { language: 'python', source: 'print(1)' }, inputs: [{ path: 'main.py/x', blob }] },
      'inputs.0.path',
      /main\.py/,
    );
  });
  it('refuses an input nested deeper than the limit', async () => {
    const path = Array.from({ length: 100 }, () => 'd').join('/');
    await refused({ ...base, inputs: [{ path, blob }] }, 'inputs.0.path', /folders deep/);
  });
});

describe('environment', () => {
  it('refuses 60 variables of 65,000 characters (Docker would answer 431)', async () => {
    const env = Object.fromEntries(Array.from({ length: 60 }, (_, i) => [`V${i}`, 'x'.repeat(65_000)]));
    await refused({ ...base, env }, 'env', /KiB/);
  });
  it('refuses a value over the kernel limit of one string counted in bytes, not characters', async () => {
    await refused({ ...base, env: { A: 'é'.repeat(65_000) } }, 'env.A');
  });
  it("refuses array parameters whose DEQO_* variables would not fit in a task's environment", async () => {
    const params = Object.fromEntries(Array.from({ length: 64 }, (_, i) => [`p${i}`, '"'.repeat(1024)]));
    await refused({ ...base, array: { parameters: [{ a: 1 }, params] } }, 'array.parameters.1', /DEQO_PARAMS/);
  });
  it('refuses a command whose arguments are too large together', async () => {
    await refused({ ...base, command: Array.from({ length: 20 }, () => 'x'.repeat(60_000)) }, 'command');
  });
});

describe('money', () => {
  it('refuses an escrow beyond the safe bound with 400 naming the field, at submit and quote alike', async () => {
    const spec = {
      ...base,
      resources: { cpus: 256, gpus: 16 },
      maxPrice: { cpuHour: 1e6, gpuHour: 1e6, memoryGiBHour: 1e6, startFee: 1e6 },
      array: { count: 10_000 },
    };
    await refused(spec, 'maxPrice', /ledger's bound/);
  });
  it('refuses a positive price below one micro-credit', async () => {
    await refused({ ...base, maxPrice: { startFee: 1e-9 } }, 'maxPrice.startFee');
  });
  it('refuses a grant below one micro-credit with 400', async () => {
    const r = await grant(1e-9);
    expect(r.statusCode).toBe(400);
    expect(r.json().error.details[0].path).toBe('amount');
  });
  it('refuses grants that would put more credits in circulation than the ledger counts exactly; the ledger stays sound', async () => {
    const cap = fromMicro(MAX_MICRO);
    const first = await grant(cap / 2);
    expect(first.statusCode).toBe(201);
    const second = await grant(cap / 2);
    expect(second.statusCode).toBe(400);
    expect(second.json().error.details[0].path).toBe('amount');
    expect(second.json().error.message).toMatch(/circulation/);
    const audit = await app.inject({ method: 'GET', url: '/v1/admin/ledger/audit', headers: auth('admin') });
    expect(audit.json()).toMatchObject({ sound: true });
  });
});

function grant(amount: number) {
  return app.inject({
    method: 'POST',
    url: '/v1/admin/grants',
    headers: auth('admin'),
    payload: { account: 'buyer', amount },
  });
}
