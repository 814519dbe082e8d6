/**
 * The marketplace on a real local network (coordinator, three agents as processes, real Docker): a buyer
 * quotes, submits, pays providers at their offer prices and is refunded the rest to the micro-credit; a
 * provider sees its earnings and reputation; a job nobody matches waits, `explain` says why, and its queue
 * timeout ends it with a full refund; an unaffordable job is refused naming the shortfall.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiError, DeqoClient } from '../../src/client/index.js';
import { DEMO_BUYER_CREDITS, type LocalNetwork } from '../../src/cli/network.js';
import { executionCost, executionMaxCost, toMicro } from '../../src/core/index.js';
import { JobSpecSchema, type JobSpecInput, type JobView, type ProviderView } from '../../src/protocol/index.js';
import { testNetwork, waitForJob } from '../helpers/network.js';

let net: LocalNetwork;
let buyer: DeqoClient;
let catalog: ProviderView[];
/** CPU-hour price of agent provider-(i+1): 0.01, 0.02, 0.03 credits; provider-1 is labelled tier=gold. */
const cpuHour = (i: number) => 0.01 * (i + 1);

beforeAll(async () => {
  ({ net, client: buyer } = await testNetwork({
    agents: 3,
    agentArgs: (i) => ['--price-cpu-hour', String(cpuHour(i)), '--label', `tier=${i === 0 ? 'gold' : 'standard'}`],
  }));
  catalog = await buyer.listProviders();
});
afterAll(async () => {
  await net?.stop();
});

const JOB: JobSpecInput = {
  image: 'deqo/busybox:test',
  command: ['sh', '-c', 'echo paid > /outputs/out.txt'],
  resources: { cpus: 1, memoryMb: 64, timeoutSeconds: 60 },
  verification: { replicas: 3, quorum: 2 },
};
const micro = (credits: number) => toMicro(credits);
const isSettled = (v: JobView) => v.billing.settled;

describe('prices, escrow, payment and refund', () => {
  it("publishes each agent's offer in the catalog", () => {
    expect(catalog.map((p) => [p.name, p.offer.prices.cpuHour, p.offer.labels.tier])).toEqual([
      ['provider-1', 0.01, 'gold'],
      ['provider-2', 0.02, 'standard'],
      ['provider-3', 0.03, 'standard'],
    ]);
    expect(catalog.every((p) => p.online && p.reputation.score === 0.5)).toBe(true);
  });

  it('quotes, holds the escrow, pays each valid execution at its offer price and refunds the rest exactly', async () => {
    const spec = JobSpecSchema.parse(JOB);
    const before = await buyer.balance();
    expect(before.available).toBe(DEMO_BUYER_CREDITS);

    const quote = await buyer.quote(JOB);
    expect(micro(quote.executionMaxCost)).toBe(executionMaxCost(spec));
    expect(micro(quote.escrow)).toBe(3 * executionMaxCost(spec));
    expect(quote.modes.map((m) => [m.mode, m.executionsPerTask])).toEqual([
      ['none', 1],
      ['replicate', 3],
      ['adaptive', 3],
    ]);
    expect(quote.modes[0]!.maxCost).toBeLessThan(quote.modes[1]!.maxCost);
    expect(quote).toMatchObject({ tasks: 1, matchingProviders: 3, affordable: true, shortfall: 0 });

    const { jobId, escrow } = await buyer.submitJob(JOB);
    expect(escrow).toBe(quote.escrow);
    const view = await waitForJob(buyer, jobId, isSettled);
    expect(view.state).toBe('succeeded');

    const valid = view.tasks[0]!.executions.filter((e) => e.state === 'valid');
    expect(valid.length).toBeGreaterThanOrEqual(2);
    let paid = 0;
    for (const e of view.tasks[0]!.executions) {
      if (e.state !== 'valid') {
        expect(e.paid).toBeNull();
        continue;
      }
      const price = catalog.find((p) => p.agentId === e.agentId)!.offer.prices;
      const expected = executionCost(price, { cpus: 1, memoryMb: 64, gpus: 0 }, e.usage!.wallMs, 60_000);
      expect(micro(e.paid!)).toBe(expected);
      paid += expected;
    }
    expect(micro(view.billing.escrowHeld)).toBe(micro(escrow));
    expect(micro(view.billing.paid)).toBe(paid);
    expect(micro(view.billing.refunded)).toBe(micro(escrow) - paid);
    expect(view.billing.inEscrow).toBe(0);
    const after = await buyer.balance();
    expect(micro(after.available)).toBe(micro(before.available) - paid);
    expect(after.inEscrow).toBe(0);

    // The buyer's ledger tells the same story: hold, then refund (payments move escrow → providers).
    const entries = await buyer.ledger({ jobId });
    expect(
      entries
        .filter((x) => x.account.startsWith('acct:'))
        .map((x) => x.kind)
        .sort(),
    ).toEqual(['escrow_hold', 'refund']);

    // Each provider that was paid sees it as earnings, and a cross-checked valid result in its reputation.
    for (const e of valid) {
      const i = catalog.findIndex((p) => p.agentId === e.agentId);
      const provider = new DeqoClient(net.url, net.providerKeys[i]!);
      const b = await provider.balance();
      expect(micro(b.earned)).toBeGreaterThanOrEqual(micro(e.paid!));
      expect(b.available).toBe(b.earned);
      const rep = await provider.providerReputation();
      expect(rep.events.some((ev) => ev.executionId === e.id && ev.kind === 'valid' && ev.crossChecked)).toBe(true);
      expect(rep.reputation.consecutiveValid).toBeGreaterThanOrEqual(1);
    }
    const audit = await new DeqoClient(net.url, net.adminKey).adminAudit();
    expect(audit).toEqual({ sound: true, problems: [] });
  });

  it('refuses a job the buyer cannot afford, naming the shortfall, and holds nothing', async () => {
    const before = await buyer.balance();
    const big: JobSpecInput = { ...JOB, resources: { cpus: 4, memoryMb: 64, timeoutSeconds: 7 * 86_400 } };
    const err = await buyer.submitJob(big).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).status).toBe(402);
    expect((err as ApiError).code).toBe('insufficient_funds');
    const needed = 3 * executionMaxCost(JobSpecSchema.parse(big));
    expect((err as ApiError).details).toMatchObject({ shortfall: (needed - micro(before.available)) / 1e6 });
    expect((err as ApiError).message).toMatch(/short by [\d.]+ cr/);
    expect(await buyer.balance()).toEqual(before);
  });
});

describe('matching that explains itself', () => {
  it("runs only on offers within the job's maximum price", async () => {
    const { jobId } = await buyer.submitJob({ ...JOB, verification: { mode: 'none' }, maxPrice: { cpuHour: 0.015 } });
    const view = await waitForJob(buyer, jobId, isSettled);
    expect(view.tasks[0]!.executions.map((e) => e.agentName)).toEqual(['provider-1']);
    const why = await buyer.explain(jobId);
    const byName = new Map(why.providers.map((p) => [p.name, p]));
    expect(byName.get('provider-2')!.reasons[0]!.code).toBe('price');
    expect(byName.get('provider-3')!.reasons[0]!.message).toMatch(/cpuHour 0\.03 > 0\.015/);
    expect(byName.get('provider-1')!.executions).toBe(1);
  });

  it('keeps a job nobody matches waiting, explains why, and ends it at its queue timeout with a full refund', async () => {
    const before = await buyer.balance();
    const { jobId, escrow } = await buyer.submitJob({
      ...JOB,
      constraints: { labels: { tier: 'platinum' } },
      queueTimeoutSeconds: 4,
    });
    const why = await buyer.explain(jobId);
    expect(why.waitingTasks).toBe(1);
    expect(why.providers).toHaveLength(3);
    expect(why.providers.every((p) => !p.eligible && p.reasons[0]!.code === 'labels')).toBe(true);
    expect(why.summary).toMatch(/no provider can take them now \(3 labels\)/);
    expect(why.queueTimeoutAt).toBeGreaterThan(Date.now());
    expect((await buyer.getJob(jobId)).state).toBe('queued');

    const view = await waitForJob(buyer, jobId, isSettled);
    expect(view.state).toBe('failed');
    expect(view.tasks[0]!.failure).toMatchObject({ reason: 'queue_timeout', blame: 'none' });
    expect(view.tasks[0]!.failure!.message).toContain(`deqo explain ${jobId}`);
    expect(view.billing).toMatchObject({ escrowHeld: escrow, paid: 0, refunded: escrow, inEscrow: 0, settled: true });
    expect(await buyer.balance()).toEqual(before);
  });

  it('filters and sorts the catalog', async () => {
    expect((await buyer.listProviders({ sort: 'price', order: 'desc' })).map((p) => p.name)).toEqual([
      'provider-3',
      'provider-2',
      'provider-1',
    ]);
    expect((await buyer.listProviders({ maxCpuHour: 0.02 })).map((p) => p.name)).toEqual(['provider-1', 'provider-2']);
    expect((await buyer.listProviders({ label: 'tier=gold' })).map((p) => p.name)).toEqual(['provider-1']);
    expect(await buyer.listProviders({ minCpus: 512 })).toEqual([]);
  });
});
