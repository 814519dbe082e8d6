/**
 * `deqo submit --wait` follows a job (src/cli/follow.ts) over a listening coordinator on a real SQLite store: over
 * the event stream, by polling when the coordinator has none, and over a reopened stream after it dropped. The
 * "agent" claims and reports through the engine (no Docker). Each test makes the interval that is not under test
 * an hour, so a line can only have come from the mechanism under test; it asserts which requests were made and
 * the lines, in order, never how long anything took.
 */
import { mkdtemp } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { followJob, type FollowOptions } from '../../src/cli/follow.js';
import { DeqoClient } from '../../src/client/index.js';
import { BlobStore, buildServer } from '../../src/coordinator/index.js';
import { grantTxn, toMicro } from '../../src/core/index.js';
import { DEFAULT_ENGINE_CONFIG, Engine } from '../../src/engine/index.js';
import type { JobView, LiveEvent } from '../../src/protocol/index.js';
import { openSqliteStore, type Store } from '../../src/store/index.js';
import { claimOne, completedReport, registerAgents, submitJob } from '../helpers/engine-flow.js';

const HOUR = 3_600_000;

/** Something that changes, and promises that resolve once a predicate over it holds (no polling). */
class Watched {
  private waiters: Array<{ pred: () => boolean; resolve: () => void }> = [];
  changed(): void {
    this.waiters = this.waiters.filter((w) => !w.pred() || (w.resolve(), false));
  }
  until(pred: () => boolean): Promise<void> {
    return new Promise((resolve) => {
      if (pred()) resolve();
      else this.waiters.push({ pred, resolve });
    });
  }
}

/** The typed client, counting the event streams it saw accepted. */
class ObservedClient extends DeqoClient {
  opened = 0;
  readonly watch = new Watched();
  override events(
    opts: { jobId?: string; onOpen?: () => void },
    onEvent: (e: LiveEvent) => void,
    signal?: AbortSignal,
  ): Promise<void> {
    const onOpen = (): void => {
      opts.onOpen?.();
      this.opened++;
      this.watch.changed();
    };
    return super.events({ ...opts, onOpen }, onEvent, signal);
  }
}

let store: Store;
let engine: Engine;
let app: ReturnType<typeof buildServer>;
let client: ObservedClient;
let buyerId: string;
/** `GET <path>` of every request the coordinator received, in order. */
let requests: string[];
/** When true the coordinator has no event stream: `GET /v1/events` answers 404 like an unknown route. */
let noEventStream: boolean;

beforeEach(async () => {
  store = await openSqliteStore(':memory:');
  const log = pino({ level: 'silent' });
  const blobs = new BlobStore(await mkdtemp(join(tmpdir(), 'deqo-follow-')), 1 << 20);
  engine = new Engine(store, { blobs, config: { ...DEFAULT_ENGINE_CONFIG }, log: log });
  app = buildServer({
    store,
    engine,
    blobs,
    log,
    live: { networkIntervalMs: HOUR, pingIntervalMs: HOUR, debounceMs: 10 },
  });
  requests = [];
  noEventStream = false;
  app.addHook('onRequest', async (req, reply) => {
    requests.push(`${req.method} ${req.url}`);
    if (noEventStream && req.url.startsWith('/v1/events'))
      return reply.code(404).send({ message: `Route GET:${req.url} not found`, error: 'Not Found', statusCode: 404 });
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const buyer = await engine.accounts.createAccount('buyer', ['buyer']);
  buyerId = buyer.accountId;
  await store.transaction((tx) => tx.ledger.post(grantTxn(buyerId, toMicro(100), 'test credits'), Date.now()));
  client = new ObservedClient(`http://127.0.0.1:${(app.server.address() as AddressInfo).port}`, buyer.apiKey);
});
afterEach(async () => {
  await app.close();
  await store.close();
});

/**
 * Submits a one-task job while no agent is online (so it waits, queued), follows it with `opts`, and once the
 * follower is ready (`ready`), moves the job a step at a time, waiting for each step's line before the next:
 * placed, claimed, reported. Returns the lines written and the final view.
 */
async function followThroughAJob(
  opts: FollowOptions,
  ready: (lines: string[]) => Promise<void>,
): Promise<{ jobId: string; lines: string[]; view: JobView }> {
  const jobId = await submitJob(engine, buyerId);
  await engine.schedule(); // nothing to place it on yet
  const lines: string[] = [];
  const printed = new Watched();
  const line = (text: string) => printed.until(() => lines.includes(text));
  const following = followJob(
    client,
    jobId,
    (l) => {
      lines.push(l);
      printed.changed();
    },
    opts,
  );

  await line('  task 0 (#0): queued');
  await ready(lines);
  const [agentId] = await registerAgents(engine, 1, 'p');
  await engine.schedule();
  await line('  task 0 (#0): running on (assigning)');
  const a = await claimOne(engine, agentId!);
  await line('  task 0 (#0): running on p-box0');
  await engine.report(agentId!, a.executionId, await completedReport(engine, a, 'hi\n'));
  const view = await following;
  return { jobId, lines, view };
}

/** What `deqo submit --wait` prints for that job, however it follows it. */
const expected = (jobId: string) => [
  `job ${jobId}: queued`,
  '  task 0 (#0): queued',
  `job ${jobId}: running`,
  '  task 0 (#0): running on (assigning)',
  '  task 0 (#0): running on p-box0',
  '  task 0 (#0): verified by p-box0',
  `job ${jobId}: succeeded`,
];

const streams = () => requests.filter((r) => r.startsWith('GET /v1/events'));

describe('following a job', () => {
  it('follows over the event stream: every step after the stream opened arrives by an event, not by polling', async () => {
    const { jobId, lines, view } = await followThroughAJob({ pollMs: HOUR, safetyMs: HOUR }, () =>
      client.watch.until(() => client.opened === 1),
    );
    expect(lines).toEqual(expected(jobId));
    expect(view.state).toBe('succeeded');
    expect(streams()).toEqual([`GET /v1/events?jobId=${jobId}`]);
  });

  it('polls when the coordinator has no event stream (404), and does not ask for it again', async () => {
    noEventStream = true;
    const { jobId, lines, view } = await followThroughAJob(
      { pollMs: 10, safetyMs: HOUR, reconnectMs: 10 },
      async () => {},
    );
    expect(lines).toEqual(expected(jobId));
    expect(view.state).toBe('succeeded');
    expect(client.opened).toBe(0);
    expect(streams()).toEqual([`GET /v1/events?jobId=${jobId}`]);
  });

  it('reopens the stream after it drops and follows over the new one', async () => {
    const { jobId, lines, view } = await followThroughAJob(
      { pollMs: HOUR, safetyMs: HOUR, reconnectMs: 10 },
      async () => {
        await client.watch.until(() => client.opened === 1);
        app.server.closeAllConnections(); // the stream drops (as through a proxy restart)
        await client.watch.until(() => client.opened === 2);
      },
    );
    expect(lines).toEqual(expected(jobId));
    expect(view.state).toBe('succeeded');
    expect(streams()).toEqual([`GET /v1/events?jobId=${jobId}`, `GET /v1/events?jobId=${jobId}`]);
  });
});
