/**
 * The agent's coordinators (src/agent/connection.ts `Coordinators`) over real HTTP: a listening coordinator on a real
 * SQLite store, and a URL where nothing listens. Which failures move the agent to the next coordinator, that it stays
 * where it moved, and that several requests failing together move it once.
 */
import { mkdtemp } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Coordinators, outOfReach } from '../../src/agent/connection.js';
import { ApiError, DeqoClient } from '../../src/client/index.js';
import { BlobStore, buildServer } from '../../src/coordinator/index.js';
import { DEFAULT_ENGINE_CONFIG, Engine } from '../../src/engine/index.js';
import { openSqliteStore, type Store } from '../../src/store/index.js';

let store: Store;
let app: ReturnType<typeof buildServer>;
let live: string;
let dead: string;
let key: string;

/** A URL on which nothing listens (a port that was free a moment ago). */
async function deadUrl(): Promise<string> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return `http://127.0.0.1:${port}`;
}

beforeAll(async () => {
  store = await openSqliteStore(':memory:');
  const log = pino({ level: 'silent' });
  const blobs = new BlobStore(await mkdtemp(join(tmpdir(), 'deqo-coords-')), 1 << 20);
  const engine = new Engine(store, { blobs, config: { ...DEFAULT_ENGINE_CONFIG }, log });
  app = buildServer({
    store,
    engine,
    blobs,
    log,
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  live = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  dead = await deadUrl();
  key = (await engine.accounts.createAccount('provider', ['provider'])).apiKey;
});
afterAll(async () => {
  await app.close();
  await store.close();
});

/** Coordinators over `urls` with the provider key, and the log lines they write. */
function coordinators(urls: string[], apiKey = key) {
  const lines: Array<{ level: number; msg: string; from?: string; to?: string }> = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => lines.push(JSON.parse(s) as (typeof lines)[0]) });
  let switches = 0;
  const c = new Coordinators(
    urls.map((u) => new DeqoClient(u, apiKey)),
    log,
    () => switches++,
  );
  return { c, lines, switches: () => switches };
}

describe('the coordinators an agent knows', () => {
  it('reads unreachable and 5xx as out of reach, refusals and aborts as answers', () => {
    expect(outOfReach(new ApiError(0, 'unreachable', 'down', undefined, true))).toBe(true);
    expect(outOfReach(new ApiError(503, 'unavailable', 'busy'))).toBe(true);
    expect(outOfReach(new ApiError(500, 'internal', 'oops'))).toBe(true);
    expect(outOfReach(new ApiError(409, 'stale_lease', 'gone'))).toBe(false);
    expect(outOfReach(new ApiError(404, 'not_found', 'who?'))).toBe(false);
    expect(outOfReach(new ApiError(401, 'unauthorized', 'key'))).toBe(false);
    expect(outOfReach(new DOMException('stopped', 'AbortError'))).toBe(false);
  });

  it('moves on to the next coordinator when one is out of reach, and stays there', async () => {
    const { c, lines, switches } = coordinators([dead, live]);
    const used: string[] = [];
    const me = await c.call((client) => {
      used.push(client.baseUrl);
      return client.whoami();
    });
    expect(me.accountName).toBe('provider');
    expect(used).toEqual([dead, live]);
    expect(c.current.baseUrl).toBe(live);
    expect(switches()).toBe(1);
    expect(lines.map((l) => l.msg)).toEqual([`coordinator ${dead} out of reach: switching to ${live}`]);
    await c.call((client) => {
      used.push(client.baseUrl);
      return client.whoami();
    });
    expect(used).toEqual([dead, live, live]);
  });

  it('logs a move away from a coordinator that answered as a warning, one that never did quietly', async () => {
    const { c, lines } = coordinators([live, dead, live]);
    await c.call((client) => client.whoami());
    expect(c.failed(c.current, new ApiError(503, 'unavailable', 'busy'))).toBe(true);
    await expect(c.call((client) => client.whoami())).resolves.toMatchObject({ accountName: 'provider' });
    expect(lines.map((l) => [l.level, l.from, l.to])).toEqual([
      [40, live, dead], // warn: it had answered
      [20, dead, live], // debug: it never answered
    ]);
  });

  it('does not retry a refusal elsewhere', async () => {
    const { c, switches } = coordinators([live, dead], 'deqo_not_a_key');
    await expect(c.call((client) => client.whoami())).rejects.toMatchObject({ status: 401 });
    expect(c.current.baseUrl).toBe(live);
    expect(switches()).toBe(0);
  });

  it('tries each coordinator once, then throws the last error', async () => {
    const other = await deadUrl();
    const { c } = coordinators([dead, other]);
    const used: string[] = [];
    await expect(
      c.call((client) => {
        used.push(client.baseUrl);
        return client.whoami();
      }),
    ).rejects.toMatchObject({ code: 'unreachable', message: expect.stringContaining(other) as unknown });
    expect(used).toEqual([dead, other]);
  });

  it('moves once when several requests fail on the same coordinator together', async () => {
    const { c, switches } = coordinators([dead, live, live]);
    const first = c.current;
    const down = new ApiError(0, 'unreachable', 'down', undefined, true);
    expect(c.failed(first, down)).toBe(true);
    expect(c.failed(first, down)).toBe(true); // already moved: the next request goes elsewhere anyway
    expect(c.current).toBe(c.clients[1]);
    expect(switches()).toBe(1);
    expect(coordinators([live]).c.failed(first, down)).toBe(false); // a single coordinator has nowhere to go
  });
});
