/** The coordinator serves the dashboard build: files, SPA fallback, no key needed, never outside the root; a clear 404 without a build. */
import { mkdtemp, mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BlobStore } from '../../src/coordinator/blobs.js';
import { dashboardCsp } from '../../src/coordinator/security-headers.js';
import { buildServer } from '../../src/coordinator/server.js';
import { DEFAULT_ENGINE_CONFIG, Engine } from '../../src/engine/index.js';
import { openSqliteStore, type Store } from '../../src/store/index.js';

let store: Store;
let root: string;
const log = pino({ level: 'silent' });
const app = (webRoot: string) =>
  buildServer({
    store,
    engine: new Engine(store, {
      blobs: new BlobStore(join(root, 'blobs'), 1000),
      config: DEFAULT_ENGINE_CONFIG,
      log: log,
    }),
    blobs: new BlobStore(join(root, 'blobs'), 1000),
    log,
    webRoot,
  });

beforeAll(async () => {
  store = await openSqliteStore(':memory:');
  root = await mkdtemp(join(tmpdir(), 'deqo-web-'));
  await mkdir(join(root, 'web', 'assets'), { recursive: true });
  await writeFile(
    join(root, 'web', 'index.html'),
    '<!doctype html><meta property="csp-nonce" nonce="DEQO_CSP_NONCE"><title>Deqo</title>' +
      '<script type="module" nonce="DEQO_CSP_NONCE" src="/assets/app-1234.js"></script>',
  );
  await writeFile(join(root, 'web', 'assets', 'app-1234.js'), 'console.log(1)');
  await writeFile(join(root, 'secret.txt'), 'outside the web root');
});
afterAll(async () => {
  await store.close();
});

describe('dashboard static files', () => {
  it('serves index.html at / without an API key', async () => {
    const res = await app(join(root, 'web')).inject({ method: 'GET', url: '/' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toContain('text/html');
    expect(res.body).toContain('<title>Deqo</title>');
  });
  it('serves assets with their type and a long cache', async () => {
    const res = await app(join(root, 'web')).inject({ method: 'GET', url: '/assets/app-1234.js' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toContain('text/javascript');
    expect(res.headers['cache-control']).toContain('immutable');
  });
  it('falls back to index.html for app routes, but not for missing files', async () => {
    const a = app(join(root, 'web'));
    expect((await a.inject({ method: 'GET', url: '/jobs/abc' })).body).toContain('<title>Deqo</title>');
    expect((await a.inject({ method: 'GET', url: '/assets/missing.js' })).statusCode).toBe(404);
  });
  it('never serves a file outside the root', async () => {
    const a = app(join(root, 'web'));
    for (const url of ['/../secret.txt', '/%2e%2e/secret.txt', '/assets/..%2f..%2fsecret.txt']) {
      const res = await a.inject({ method: 'GET', url });
      expect(res.body, url).not.toContain('outside the web root');
    }
  });
  it('keeps the API behind keys and JSON 404s', async () => {
    const a = app(join(root, 'web'));
    expect((await a.inject({ method: 'GET', url: '/v1/jobs' })).statusCode).toBe(401);
    const res = await a.inject({ method: 'GET', url: '/v1/nope', headers: { authorization: 'Bearer x' } });
    expect(res.statusCode).toBe(401);
    expect((await a.inject({ method: 'POST', url: '/' })).statusCode).toBe(401);
  });
  it('says how to build the dashboard when it is missing', async () => {
    const res = await app(join(root, 'nothing-here')).inject({ method: 'GET', url: '/' });
    expect(res.statusCode).toBe(404);
    expect(res.body).toContain('npm run build');
  });

  it('sends the dashboard page with a fresh nonce, its Content-Security-Policy and the other security headers', async () => {
    const a = app(join(root, 'web'));
    const nonces = new Set<string>();
    for (const url of ['/', '/index.html', '/jobs/abc']) {
      const res = await a.inject({ method: 'GET', url });
      expect(res.statusCode).toBe(200);
      const nonce = /<meta property="csp-nonce" nonce="([A-Za-z0-9+/=]{24})">/.exec(res.body)?.[1];
      expect(nonce).toBeDefined();
      expect(res.body).not.toContain('DEQO_CSP_NONCE');
      expect(res.body).toContain(`<script type="module" nonce="${nonce}"`);
      nonces.add(nonce!);
      expect(res.headers['content-security-policy']).toBe(dashboardCsp(nonce!));
      expect(res.headers['content-security-policy']).toContain(`style-src 'self' 'nonce-${nonce}'`);
      expect(res.headers['content-security-policy']).toContain("script-src 'self'");
      expect(res.headers['content-security-policy']).toContain("connect-src 'self'");
      expect(res.headers['content-security-policy']).toContain("frame-ancestors 'none'");
      expect(res.headers).toMatchObject({
        'x-frame-options': 'DENY',
        'x-content-type-options': 'nosniff',
        'referrer-policy': 'no-referrer',
      });
    }
    expect(nonces.size).toBe(3); // one per response
    const asset = await a.inject({ method: 'GET', url: '/assets/app-1234.js' });
    expect(asset.headers['x-content-type-options']).toBe('nosniff');
    expect(asset.headers['content-security-policy']).toBe("default-src 'none'; frame-ancestors 'none'");
  });
});
