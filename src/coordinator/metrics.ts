/**
 * Prometheus metrics of one coordinator (prom-client), served at GET /metrics. Each coordinator has a registry
 * of its own (never prom-client's global one), so several can run in one process.
 *
 * Two kinds of numbers:
 * - gauges read from the database at scrape time (jobs, tasks and executions per state, the scheduler's queue,
 *   agents online): every coordinator sharing a database reports the same values. The counts are cached for
 *   COUNTS_CACHE_MS so frequent scrapes cannot load the database.
 * - counters and histograms fed by the engine's events (engine/events.ts): what this process did since it
 *   started. Each change happens in exactly one coordinator, so summing over coordinators gives the total.
 * Labels are bounded enums (states, failure reasons, credit kinds): never an id or a name.
 */
import { performance } from 'node:perf_hooks';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { fromMicro } from '../core/index.js';
import type {
  CreditKind,
  CreditsMovedEvent,
  DispatchedEvent,
  Engine,
  ExecutionSettledEvent,
  JobEndedEvent,
  TaskDecidedEvent,
} from '../engine/index.js';
import { ExecutionStateSchema, JobStateSchema, TaskStateSchema } from '../protocol/index.js';
import type { AgentCounts, Store, StoreCounts } from '../store/index.js';

/** How long store counts are reused between scrapes, ms. */
export const COUNTS_CACHE_MS = 1_000;
/**
 * An agent silent for longer than the engine's agent TTL is suspect (no new work); silent for longer than this
 * many TTLs it counts as offline (4 × 15 s: Bacalhau's one-minute disconnect).
 */
export const OFFLINE_AFTER_TTLS = 4;

const FROM_DB =
  'Read from the database when scraped: every coordinator sharing it reports the same value (aggregate with max, not sum).';
const PER_PROCESS = 'Counted by this coordinator process since it started (with several coordinators, sum over them).';

/** A coordinator's metrics: the text Prometheus scrapes. */
export interface CoordinatorMetrics {
  /** Content-Type of scrape(): the Prometheus text format 0.0.4. */
  readonly contentType: string;
  /** Every metric in the Prometheus text format. Rejects when the store cannot be read. */
  scrape(): Promise<string>;
  /** Stops listening to the engine (the numbers stop moving). */
  close(): void;
}

let processRegistry: Registry | null = null;

/**
 * Node process metrics (CPU, memory, event loop lag, GC, handles), registered once per process: they describe
 * the process, and each registration would start its own event-loop monitor and GC observer that nothing stops.
 */
function processMetrics(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
}

/**
 * Creates the metrics of the coordinator running `engine` over `store`, and starts listening to its events.
 * `cacheMs`: how long store counts are reused (default COUNTS_CACHE_MS; 0 reads them on every scrape).
 */
export function createMetrics(
  store: Store,
  engine: Engine,
  { cacheMs = COUNTS_CACHE_MS }: { cacheMs?: number } = {},
): CoordinatorMetrics {
  const registers = [new Registry()];

  let cached: { at: number; counts: Promise<StoreCounts> } | null = null;
  const counts = (): Promise<StoreCounts> => {
    if (!cached || performance.now() - cached.at >= cacheMs) {
      const now = engine.now();
      const ttl = engine.config.agentTtlMs;
      cached = { at: performance.now(), counts: store.stats.counts(now - ttl, now - OFFLINE_AFTER_TTLS * ttl) };
    }
    return cached.counts;
  };
  const perState = <S extends string>(
    name: string,
    help: string,
    states: readonly S[],
    pick: (c: StoreCounts) => Partial<Record<S, number>>,
  ) =>
    new Gauge({
      name,
      help: `${help} ${FROM_DB}`,
      labelNames: ['state'],
      registers,
      async collect() {
        const c = pick(await counts());
        for (const state of states) this.set({ state }, c[state] ?? 0);
      },
    });
  perState('deqo_jobs', 'Jobs per state.', JobStateSchema.options, (c) => c.jobs);
  perState('deqo_tasks', 'Tasks per state.', TaskStateSchema.options, (c) => c.tasks);
  perState('deqo_executions', 'Executions per state.', ExecutionStateSchema.options, (c) => c.executions);
  new Gauge({
    name: 'deqo_queue_tasks',
    help: `Queue depth: open tasks that want more executions than they have. ${FROM_DB}`,
    registers,
    async collect() {
      this.set((await counts()).tasksWanting);
    },
  });
  new Gauge({
    name: 'deqo_agents',
    labelNames: ['status'],
    registers,
    help: `Agents by last contact: online (heard within the agent TTL), suspect (silent longer: no new work), offline (silent over ${OFFLINE_AFTER_TTLS} TTLs). ${FROM_DB}`,
    async collect() {
      const a = (await counts()).agents;
      for (const status of Object.keys(a) as Array<keyof AgentCounts>) this.set({ status }, a[status]);
    },
  });

  const dispatch = new Histogram({
    name: 'deqo_dispatch_latency_seconds',
    registers,
    help: `Seconds from an execution's placement on an agent to that agent's claim. ${PER_PROCESS}`,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
  });
  const jobDuration = new Histogram({
    name: 'deqo_job_duration_seconds',
    labelNames: ['state'],
    registers,
    help: `Seconds from a job's submission to its end, by final state, observed when the job is settled. ${PER_PROCESS}`,
    buckets: [1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400],
  });
  const tasksDecided = new Counter({
    name: 'deqo_tasks_decided_total',
    labelNames: ['outcome', 'reason'],
    registers,
    help:
      'Tasks the verifier decided: verified (reason "none"), or failed with its reason: a job failure the replicas agreed on ' +
      `(nonzero_exit, out_of_memory, timeout …), or no_quorum, too_many_errors, insufficient_funds. ${PER_PROCESS}`,
  });
  const executionsSettled = new Counter({
    name: 'deqo_executions_settled_total',
    labelNames: ['state'],
    registers,
    help: `Ended executions settled, by final state: valid and invalid are verification verdicts; failed, lost, cancelled. ${PER_PROCESS}`,
  });
  const executionsLost = new Counter({
    name: 'deqo_executions_lost_total',
    labelNames: ['reason'],
    registers,
    help: `Executions lost: lease_expired (the agent stopped heartbeating) or not_claimed (never claimed in time). ${PER_PROCESS}`,
  });
  const credits = new Counter({
    name: 'deqo_credits_moved_total',
    labelNames: ['kind'],
    registers,
    help: `Credits moved by the ledger: escrow_hold (buyer to escrow), payment (escrow to provider), fee (escrow to platform), refund (escrow to buyer). ${PER_PROCESS}`,
  });
  new Counter({
    name: 'deqo_scheduling_rounds_total',
    labelNames: ['outcome'],
    registers,
    help:
      'Scheduling rounds with a task wanting an execution: skipped (no online agent had room, nothing of the queue read) or read_queue ' +
      `(a bounded, fair read of the classes agents can take). ${PER_PROCESS}`,
    collect() {
      const c = engine.scheduling.counts;
      this.reset();
      this.inc({ outcome: 'skipped' }, c.skipped);
      this.inc({ outcome: 'read_queue' }, c.queueReads);
    },
  });
  // Series that exist from the start, so rate() sees their first increase.
  tasksDecided.inc({ outcome: 'verified', reason: 'none' }, 0);
  for (const state of ['valid', 'invalid', 'failed', 'lost', 'cancelled']) executionsSettled.inc({ state }, 0);
  for (const reason of ['lease_expired', 'not_claimed']) executionsLost.inc({ reason }, 0);
  for (const kind of ['escrow_hold', 'payment', 'fee', 'refund'] satisfies CreditKind[]) credits.inc({ kind }, 0);

  const onDispatched = (e: DispatchedEvent) => dispatch.observe(e.latencyMs / 1000);
  const onJobEnded = (e: JobEndedEvent) => jobDuration.observe({ state: e.state }, e.durationMs / 1000);
  const onTaskDecided = (e: TaskDecidedEvent) => tasksDecided.inc({ outcome: e.outcome, reason: e.reason ?? 'none' });
  const onExecutionSettled = (e: ExecutionSettledEvent) => {
    executionsSettled.inc({ state: e.state });
    if (e.state === 'lost' && (e.reason === 'lease_expired' || e.reason === 'not_claimed'))
      executionsLost.inc({ reason: e.reason });
  };
  const onCredits = (e: CreditsMovedEvent) => credits.inc({ kind: e.kind }, fromMicro(e.microCredits));
  engine.events
    .on('dispatched', onDispatched)
    .on('jobEnded', onJobEnded)
    .on('taskDecided', onTaskDecided)
    .on('executionSettled', onExecutionSettled)
    .on('creditsMoved', onCredits);

  const registry = Registry.merge([processMetrics(), ...registers]);
  return {
    contentType: registry.contentType,
    scrape: () => registry.metrics(),
    close() {
      engine.events
        .off('dispatched', onDispatched)
        .off('jobEnded', onJobEnded)
        .off('taskDecided', onTaskDecided)
        .off('executionSettled', onExecutionSettled)
        .off('creditsMoved', onCredits);
    },
  };
}
