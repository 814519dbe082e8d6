/**
 * Queue benchmark: what a long queue costs the coordinator, and whether one account's untakeable tasks keep another
 * buyer's job waiting (issues 12 and 13).
 *
 * For each size N, an engine over a fresh SQLite file (in this process, no HTTP: the cost measured is the engine's and
 * the store's) is seeded with N queued tasks of one account that nobody can take: array jobs of up to 10,000 tasks at
 * 1 µcr per execution and 0 per hour (a price no agent offers), every other one also asking for a label no agent has. Seeding goes
 * through the submission system directly (no scheduling round per seed job). Then, in this order:
 * - submit: one-task jobs submitted by a funded buyer while no agent is online, each followed by the scheduling it
 *   requests: process CPU ms per submit (the jobs are cancelled afterwards);
 * - idle: the engine's tick running (reap, schedule, settle every tickMs) for a few seconds with no agent online, then
 *   with one idle agent online: process CPU ms per second;
 * - round: scheduling rounds with that agent online and idle (nothing it can take): wall ms per round;
 * - victim: another buyer submits a one-task job it can take; rounds (the one its submit requests, then more) until its
 *   task is placed, and the ms from submit to placement. Not placed within VICTIM_MAX_ROUNDS: `placed: false`.
 * The file uses only engine and store APIs that predate the queue work, so it runs against older checkouts too.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { grantTxn, MAX_TASKS_PER_JOB, toMicro } from '../core/index.js';
import { DEFAULT_ENGINE_CONFIG, Engine } from '../engine/index.js';
import { JobSpecSchema, OfferSchema, type JobSpecInput } from '../protocol/index.js';
import { openSqliteStore } from '../store/index.js';
import { SIM_CAPACITY, TRIVIAL_JOB } from './dispatch.js';
import { distribution, round, type Distribution } from './stats.js';

/** Options of the queue benchmark. */
export interface QueueOptions {
  /** Untakeable queued tasks to measure behind, ascending (default 100, 10,000, 100,000). */
  sizes: number[];
}

/** What the queue benchmark measured at one queue size. */
export interface QueuePoint {
  queued: number;
  /** Process CPU per submit (and the scheduling it requests) with no agent online, ms; over `n` submits. */
  submit: { cpuMsPerSubmit: number; n: number };
  /** Process CPU per second of an idle coordinator (the tick running), ms/s. */
  idleCpuMsPerS: { noAgent: number; idleAgent: number };
  /** Wall time of a scheduling round with one idle agent online that can take nothing queued, ms. */
  roundMs: Distribution;
  /** The victim's one-task job: placed or not, rounds until placed (or tried), ms from submit to placement. */
  victim: { placed: boolean; rounds: number; ms: number };
}

/** What the queue benchmark measured. */
export interface QueueResult {
  benchmark: 'queue';
  database: 'sqlite';
  curve: QueuePoint[];
}

/** 1 µcr per execution (the least a job may offer) and 0 per hour: below every agent's price. */
const CHEAP = { cpuHour: 0, memoryGiBHour: 0, gpuHour: 0, startFee: 0.000001 };
/** Most submits timed per size, and the CPU budget that stops them earlier, ms. */
const SUBMITS = 30;
const SUBMIT_BUDGET_MS = 8_000;
/** Rounds timed per size, and the wall budget that stops them earlier, ms. */
const ROUNDS = 15;
const ROUND_BUDGET_MS = 8_000;
/** How long the idle coordinator is watched, per case, ms. */
const IDLE_MS = 4_000;
/** Rounds the victim's job is given before it counts as not placed. */
const VICTIM_MAX_ROUNDS = 10;

/** Runs the queue benchmark; see the file comment. */
export async function runQueue(o: QueueOptions): Promise<QueueResult> {
  const curve: QueuePoint[] = [];
  for (const size of o.sizes) curve.push(await measureAt(size));
  return { benchmark: 'queue', database: 'sqlite', curve };
}

/** Process CPU (user + system) since `from`, ms. */
function cpuMsSince(from: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(from);
  return (d.user + d.system) / 1000;
}

async function measureAt(size: number): Promise<QueuePoint> {
  const dir = await mkdtemp(join(tmpdir(), 'deqo-bench-queue-'));
  const store = await openSqliteStore(join(dir, 'deqo.db'));
  const engine = new Engine(store, {
    blobs: {
      open: () => Promise.reject(new Error('no blobs in the queue benchmark')),
      remove: () => Promise.resolve(),
    },
    config: { ...DEFAULT_ENGINE_CONFIG },
    log: pino({ level: 'silent' }),
  });
  try {
    const t0 = Date.now();
    const account = (name: string, roles: Array<'buyer' | 'provider'>) =>
      store.transaction((tx) => tx.accounts.createAccount(name, roles, t0));
    const attacker = await account('attacker', ['buyer']);
    const buyer = await account('buyer', ['buyer']);
    const victim = await account('victim', ['buyer']);
    for (const b of [attacker, buyer, victim])
      await store.transaction((tx) => tx.ledger.post(grantTxn(b, toMicro(1_000_000), 'bench credits'), t0));
    const spec = (over: Partial<JobSpecInput>) => JobSpecSchema.parse({ ...TRIVIAL_JOB, ...over });
    for (let left = size, k = 0; left > 0; k++) {
      const count = Math.min(MAX_TASKS_PER_JOB, left);
      const labels: Record<string, string> = k % 2 === 1 ? { gpu: 'none-has-it' } : {};
      await engine.submission.submit(attacker, spec({ array: { count }, maxPrice: CHEAP, constraints: { labels } }));
      left -= count;
    }

    // Submits with no agent online.
    const submitted: string[] = [];
    const cpu = process.cpuUsage();
    while (submitted.length < SUBMITS && (submitted.length < 3 || cpuMsSince(cpu) < SUBMIT_BUDGET_MS)) {
      submitted.push((await engine.submitJob(buyer, spec({}))).jobId);
      await engine.scheduling.idle();
    }
    const submit = { cpuMsPerSubmit: round(cpuMsSince(cpu) / submitted.length, 2), n: submitted.length };
    for (const id of submitted) await engine.cancelJob(id);

    const idle = async (): Promise<number> => {
      engine.start();
      const from = process.cpuUsage();
      await new Promise((r) => setTimeout(r, IDLE_MS));
      const ms = cpuMsSince(from);
      await engine.stop();
      return round(ms / (IDLE_MS / 1000), 1);
    };
    const noAgent = await idle();
    const providerId = await account('provider', ['provider']);
    const agentId = 'agent_bench';
    await engine.registerAgent({
      id: agentId,
      providerId,
      name: 'bench-agent',
      publicKey: 'pk-bench',
      capacity: SIM_CAPACITY,
      offer: OfferSchema.parse({}),
      availability: { state: 'available' },
    });
    await engine.scheduling.idle();
    const idleAgent = await idle();

    await engine.heartbeat(agentId, []); // online through the rounds below (agentTtlMs)
    const rounds: number[] = [];
    const roundsStart = performance.now();
    while (rounds.length < ROUNDS && (rounds.length < 3 || performance.now() - roundsStart < ROUND_BUDGET_MS)) {
      const t = performance.now();
      await engine.schedule();
      rounds.push(performance.now() - t);
    }

    await engine.heartbeat(agentId, []);
    const placedAt = performance.now();
    const jobId = (await engine.submitJob(victim, spec({}))).jobId;
    let tried = 1;
    await engine.scheduling.idle();
    const isPlaced = async () => ((await store.views.jobView(jobId, victim))?.tasks[0]?.executions.length ?? 0) > 0;
    let placed = await isPlaced();
    while (!placed && tried < VICTIM_MAX_ROUNDS) {
      await engine.schedule();
      tried++;
      placed = await isPlaced();
    }
    const victimMs = round(performance.now() - placedAt, 1);
    return {
      queued: size,
      submit,
      idleCpuMsPerS: { noAgent, idleAgent },
      roundMs: distribution(rounds),
      victim: { placed, rounds: tried, ms: victimMs },
    };
  } finally {
    await engine.stop();
    await store.close().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  }
}
