/**
 * A client that goes away is not a coordinator error (src/coordinator/server.ts, http.ts isClientDisconnect): an
 * upload cut off mid-body (socket closed or reset) and a closed event stream are logged at info at most, with no
 * stored leftovers; an error of ours is still logged at error. A real listening app, raw sockets, a captured log.
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BlobStore, buildServer } from '../../src/coordinator/index.js';
import { DEFAULT_ENGINE_CONFIG, Engine } from '../../src/engine/index.js';
import { openSqliteStore, type Store } from '../../src/store/index.js';

/** Log entries the app wrote (debug and up). */
const entries: Array<{ level: number; msg: string; code?: string }> = [];
let store: Store;
let blobDir: string;
let app: ReturnType<typeof buildServer>;
let port: number;
let apiKey: string;

beforeAll(async () => {
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      entries.push(JSON.parse(String(chunk)));
      done();
    },
  });
  const log = pino({ level: 'debug' }, sink);
  store = await openSqliteStore(':memory:');
  blobDir = await mkdtemp(join(tmpdir(), 'deqo-disconnect-blobs-'));
  const blobs = new BlobStore(blobDir, 1 << 20);
  const engine = new Engine(store, { blobs, config: DEFAULT_ENGINE_CONFIG, log });
  app = buildServer({ store, engine, blobs, log, live: { pingIntervalMs: 20 } });
  app.get('/v1/test-fault', async () => {
    throw new TypeError('a bug of ours');
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  port = (app.server.address() as AddressInfo).port;
  ({ apiKey } = await engine.accounts.createAccount('buyer', ['buyer']));
});
afterAll(async () => {
  await app.close();
  await store.close();
  await rm(blobDir, { recursive: true, force: true });
});

/** Opens a socket, sends `head` and `body`, waits for `ready` (default: the bytes written), then ends it with `end`. */
async function cutOff(head: string, body: string, end: (s: Socket) => void, ready?: (s: Socket) => Promise<void>) {
  const s = connect(port, '127.0.0.1');
  s.on('error', () => undefined);
  await new Promise<void>((resolve) => s.once('connect', () => resolve()));
  await new Promise<void>((resolve) => s.write(head + body, () => resolve()));
  await ready?.(s);
  end(s);
}

/** The request head of an upload announcing `length` bytes. */
const uploadHead = (length: number) =>
  `POST /v1/blobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${apiKey}\r\n` +
  `Content-Type: application/octet-stream\r\nContent-Length: ${length}\r\n\r\n`;

/** Error-level entries logged since entry `from`. */
const errorsSince = (from: number) => entries.slice(from).filter((e) => e.level >= 50);

describe('a client that goes away', () => {
  for (const [how, end] of [
    ['closes', (s: Socket) => s.destroy()],
    ['resets', (s: Socket) => s.resetAndDestroy()],
  ] as const) {
    it(`mid-upload (it ${how} the connection) is logged at info, not error, and leaves no temporary blob`, async () => {
      const before = entries.length;
      await cutOff(uploadHead(100_000), 'x'.repeat(1_000), end);
      await expect
        .poll(() => entries.slice(before).find((e) => e.msg === 'client closed the connection mid-request'))
        .toMatchObject({ level: 30, code: 'ECONNRESET' });
      expect(errorsSince(before)).toEqual([]);
      await expect.poll(() => readdir(join(blobDir, 'tmp'))).toEqual([]);
    });
  }

  it('by closing an event stream is not logged as an error', async () => {
    const before = entries.length;
    const pinged = (s: Socket) =>
      new Promise<void>((resolve) => {
        let seen = '';
        s.on('data', (c: Buffer) => {
          seen += String(c);
          if (seen.includes(': ping')) resolve();
        });
      });
    await cutOff(
      `GET /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${apiKey}\r\n\r\n`,
      '',
      (s) => s.resetAndDestroy(),
      pinged,
    );
    // Pings go on being due after the close: the stream has to notice it is gone without an error.
    await new Promise((r) => setTimeout(r, 100));
    expect(errorsSince(before)).toEqual([]);
  });

  it('leaves errors of ours at error', async () => {
    const before = entries.length;
    const res = await fetch(`http://127.0.0.1:${port}/v1/test-fault`, {
      headers: { authorization: `Bearer ${apiKey}` },
    });
    expect(res.status).toBe(500);
    expect(errorsSince(before)).toMatchObject([{ level: 50, msg: 'unhandled error' }]);
  });
});
