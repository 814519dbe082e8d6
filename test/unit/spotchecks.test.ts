/**
 * Spot-checks and backtracking through the real engine over real SQLite (engine/spotchecks.ts, core/spotchecks.ts):
 * a task verified unanimously becomes a canary; a provider that got work is spot-checked with a replay of a canary
 * it never ran; a wrong answer catches it (blacklisted); the verified tasks that rested on it are re-verified on
 * other providers and a wrong result is replaced, its buyer told and paid back from the liar's earnings.
 */
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DEFAULT_CREDIBILITY, fromMicro, grantTxn, ISSUER, MAX_MICRO, restedOn } from '../../src/core/index.js';
import { DEFAULT_ENGINE_CONFIG, DEFAULT_MARKET_POLICY, Engine, jobResults } from '../../src/engine/index.js';
import type { Assignment, JobView } from '../../src/protocol/index.js';
import { openSqliteStore, type Store } from '../../src/store/index.js';
import { completedReport, fundedBuyer, registerAgents, submitJob } from '../helpers/engine-flow.js';
import { tempBlobStore } from '../helpers/outputs.js';

let store: Store;
let engine: Engine;
let now = 1_700_000_000_000;

beforeEach(async () => {
  store = await openSqliteStore(':memory:');
  now = 1_700_000_000_000;
  engine = new Engine(store, {
    blobs: await tempBlobStore(),
    config: { ...DEFAULT_ENGINE_CONFIG },
    // Every agent that gets work is spot-checked (q = 1), so the test knows when.
    policy: { ...DEFAULT_MARKET_POLICY, credibility: { ...DEFAULT_CREDIBILITY, spotCheckRate: 1 } },
    log: pino({ level: process.env.DEBUG_LOG ? 'debug' : 'silent' }),
    now: () => now,
    random: () => 0,
  });
});
afterEach(async () => {
  await engine.stop();
  await store.close();
});

const view = async (jobId: string, buyerId: string): Promise<JobView> => (await store.views.jobView(jobId, buyerId))!;
const providerOf = async (agentId: string) => (await store.accounts.getAgent(agentId))!.providerId;

/** Claims everything placed on the agent and reports `stdout` for each (its result), later by `dt` ms. */
async function runAll(agentId: string, stdout: (a: Assignment) => string, dt = 1_000): Promise<Assignment[]> {
  const got = await engine.claim(agentId, 8, 0);
  now += dt;
  for (const a of got) await engine.report(agentId, a.executionId, await completedReport(engine, a, stdout(a)));
  return got;
}

describe('spot-checks and backtracking', () => {
  it('catches a provider that lies on a spot-check, re-verifies what rested on it and replaces the wrong result', async () => {
    const buyer = await fundedBuyer(engine, 'buyer', 100);
    const [a, b, c, liar] = await registerAgents(engine, 4);
    for (const id of [a!, b!, c!, liar!]) await engine.accounts.vouch(await providerOf(id)); // all established

    // 1. A buyer's task that allows spot-checks verifies unanimously on a, b, c: it becomes a canary.
    const canaryJob = await submitJob(engine, buyer, {
      verification: { replicas: 3, quorum: 2, spotChecks: true },
      constraints: { providers: [a!, b!, c!] },
    });
    await engine.schedule();
    for (const id of [a!, b!, c!]) await runAll(id, () => 'canary answer');
    expect((await view(canaryJob, buyer)).state).toBe('succeeded');

    // 2. The liar runs a task alone (mode none) and returns a wrong result: accepted, nobody knows yet.
    const victim = await submitJob(engine, buyer, {
      verification: { mode: 'none' },
      constraints: { providers: [liar!] },
    });
    await engine.schedule();
    const planted = (await engine.claim(liar!, 8, 0)).filter((x) => x.jobId !== victim);
    expect(planted).toHaveLength(1); // it got work, so a spot-check too: a replay of the canary it never ran
    expect(planted[0]!.command).toEqual(['echo', 'hi']);
    now += 1_000;
    const own = (await store.views.jobView(victim, buyer))!.tasks[0]!.executions[0]!;
    const ownAssignment = { ...planted[0]!, executionId: own.id, jobId: victim, fencingToken: 1 };
    await engine.report(liar!, own.id, await completedReport(engine, ownAssignment, 'a wrong answer'));
    expect((await view(victim, buyer)).state).toBe('succeeded'); // accepted on its word

    // 3. The spot-check comes back wrong: the liar is caught, the victim's task is re-verified elsewhere.
    await engine.report(liar!, planted[0]!.executionId, await completedReport(engine, planted[0]!, 'made up'));
    const liarRecord = await engine.accounts.reputation(await providerOf(liar!), 10);
    expect(liarRecord.events.map((e) => e.kind)).toContain('caught');
    let v = await view(victim, buyer);
    expect(v.tasks[0]!.audit).toBe('pending');
    expect(v.history.map((h) => h.kind)).toEqual(['reverifying']);
    expect(v.history[0]!.message).toContain('caught');
    expect((await store.views.listJobs(buyer, { limit: 10 })).map((j) => j.id).sort()).toEqual(
      [canaryJob, victim].sort(),
    );

    // 4. The re-verification runs on two other providers (never the liar, which gets no more work), who agree on
    //    the honest answer: the wrong result is replaced, the liar's execution invalid, its pay returned.
    const paidToLiar = v.tasks[0]!.executions[0]!.paid!;
    await engine.schedule();
    expect(await engine.claim(liar!, 8, 0)).toEqual([]);
    for (const id of [a!, b!, c!]) await runAll(id, () => 'the honest answer');
    v = await view(victim, buyer);
    expect(v.tasks[0]!.audit).toBe('changed');
    expect(v.tasks[0]!.executions[0]!.state).toBe('invalid');
    expect(v.history.map((h) => h.kind)).toEqual(['reverifying', 'reverified']);
    expect(v.history[1]!.message).toMatch(/found its result wrong/);
    const results = (await jobResults(store, victim, buyer))!;
    expect(results.tasks[0]!.resultHash).toBe(v.tasks[0]!.resultHash);
    expect(results.tasks[0]!.agreedBy.map((x) => x.agentId)).not.toContain(liar);
    expect(results.tasks[0]!.stdoutBlob).not.toBe(v.tasks[0]!.executions[0]!.stdoutBlob);
    const clawed = (await store.ledger.entries([`acct:${buyer}`], { limit: 50 })).filter((e) => e.kind === 'clawback');
    expect(clawed.map((e) => e.amount)).toEqual([paidToLiar]);
    expect(fromMicro(await store.ledger.balance(`acct:${await providerOf(liar!)}`))).toBe(0);
    expect(await store.ledger.audit()).toEqual([]);
  });

  it('backtracks a provider outvoted by an accepted group, without blacklisting it', async () => {
    const buyer = await fundedBuyer(engine, 'buyer', 100);
    const [a, b, c, liar] = await registerAgents(engine, 4);
    for (const id of [a!, b!, c!, liar!]) await engine.accounts.vouch(await providerOf(id));

    // The liar runs a task alone and returns a wrong result: accepted on its word (no canary: no spot-check).
    const victim = await submitJob(engine, buyer, {
      verification: { mode: 'none' },
      constraints: { providers: [liar!] },
    });
    await engine.schedule();
    await runAll(liar!, () => 'a wrong answer');
    expect((await view(victim, buyer)).tasks[0]!.audit).toBeNull();

    // On a 2-of-3 task its forged result meets two honest ones: outvoted (invalid), so what it alone supported is
    // re-verified; it is not blacklisted (an honest machine can be outvoted on a nondeterministic task).
    const voted = await submitJob(engine, buyer, {
      verification: { replicas: 3, quorum: 2 },
      constraints: { providers: [a!, b!, liar!] },
    });
    await engine.schedule();
    await runAll(liar!, () => 'a wrong answer');
    for (const id of [a!, b!]) await runAll(id, () => 'the honest answer');
    expect((await view(voted, buyer)).tasks[0]!.executions.map((e) => e.state).sort()).toEqual([
      'invalid',
      'valid',
      'valid',
    ]);
    let v = await view(victim, buyer);
    expect(v.tasks[0]!.audit).toBe('pending');
    expect(v.history[0]!.message).toMatch(/outvoted/);
    const record = await engine.accounts.reputation(await providerOf(liar!), 10);
    expect(record.events.map((e) => e.kind)).not.toContain('caught');
    expect(record.reputation.established).toBe(true); // vouched for; the operator decides on a vouch

    // The re-verification on a, b and c (three agreeing) replaces the wrong result.
    await engine.schedule();
    for (const id of [a!, b!, c!]) await runAll(id, () => 'the honest answer');
    v = await view(victim, buyer);
    expect(v.tasks[0]!.audit).toBe('changed');
    expect(v.tasks[0]!.executions[0]!.state).toBe('invalid');
    // Each task is re-verified at most once: another outvote starts nothing new.
    const again = await submitJob(engine, buyer, {
      verification: { replicas: 3, quorum: 2 },
      constraints: { providers: [a!, b!, liar!] },
    });
    await engine.schedule();
    await runAll(liar!, () => 'a wrong answer');
    for (const id of [a!, b!]) await runAll(id, () => 'the honest answer');
    expect((await view(again, buyer)).state).toBe('succeeded');
    expect((await view(victim, buyer)).history.filter((h) => h.kind === 'reverifying')).toHaveLength(1);
    expect(await store.ledger.audit()).toEqual([]);
  });

  it("skips the re-verification at the ledger's circulation bound instead of refusing the report that triggers it", async () => {
    const buyer = await fundedBuyer(engine, 'buyer', 100);
    const [a, b, liar] = await registerAgents(engine, 3);
    for (const id of [a!, b!, liar!]) await engine.accounts.vouch(await providerOf(id));
    const victim = await submitJob(engine, buyer, {
      verification: { mode: 'none' },
      constraints: { providers: [liar!] },
    });
    await engine.schedule();
    await runAll(liar!, () => 'a wrong answer');
    // Every credit the ledger can count is in circulation: the platform cannot issue what a re-verification costs.
    const filler = await store.transaction((tx) => tx.accounts.createAccount('filler', ['buyer'], now));
    const circulation = -(await store.ledger.balance(ISSUER));
    await store.transaction((tx) => tx.ledger.post(grantTxn(filler, MAX_MICRO - circulation, 'fill'), now));

    const voted = await submitJob(engine, buyer, {
      verification: { replicas: 3, quorum: 2 },
      constraints: { providers: [a!, b!, liar!] },
    });
    await engine.schedule();
    await runAll(liar!, () => 'a wrong answer');
    for (const id of [a!, b!]) await runAll(id, () => 'the honest answer'); // accepted: the outvote is decided
    expect((await view(voted, buyer)).state).toBe('succeeded');
    expect((await view(victim, buyer)).tasks[0]!.audit).toBeNull();
    expect(await store.ledger.balance(ISSUER)).toBe(-MAX_MICRO);
    expect(await store.ledger.audit()).toEqual([]);
  });

  it('confirms a result the re-verification agrees with, and leaves honest results alone', async () => {
    const buyer = await fundedBuyer(engine, 'buyer', 100);
    const [a, b, c, sleeper] = await registerAgents(engine, 4);
    for (const id of [a!, b!, c!, sleeper!]) await engine.accounts.vouch(await providerOf(id));
    await submitJob(engine, buyer, {
      verification: { replicas: 3, quorum: 2, spotChecks: true },
      constraints: { providers: [a!, b!, c!] },
    });
    await engine.schedule();
    for (const id of [a!, b!, c!]) await runAll(id, () => 'canary answer');
    // An honest result on the sleeper's word, then it lies on the spot-check that comes with it.
    const honest = await submitJob(engine, buyer, {
      verification: { mode: 'none' },
      constraints: { providers: [sleeper!] },
    });
    await engine.schedule();
    const got = await engine.claim(sleeper!, 8, 0);
    now += 1_000;
    for (const x of got)
      await engine.report(
        sleeper!,
        x.executionId,
        await completedReport(engine, x, x.jobId === honest ? 'the answer' : 'a lie'),
      );
    expect((await view(honest, buyer)).tasks[0]!.audit).toBe('pending');
    await engine.schedule();
    for (const id of [a!, b!, c!]) await runAll(id, () => 'the answer');
    const v = await view(honest, buyer);
    expect(v.tasks[0]!.audit).toBe('confirmed');
    expect(v.tasks[0]!.executions[0]!.state).toBe('valid');
    expect(v.history.at(-1)!.message).toMatch(/the result stands/);
  });

  it('stops serving a task as a canary once a re-verification replaced its verdict', async () => {
    const buyer = await fundedBuyer(engine, 'buyer', 100);
    const [a, b, c, d, liar, partner] = await registerAgents(engine, 6);
    for (const id of [a!, b!, c!, d!, liar!, partner!]) await engine.accounts.vouch(await providerOf(id));
    // An honest canary on a, b, c; then a wrong answer two colluders agree on: a canary too, for now.
    await submitJob(engine, buyer, {
      verification: { replicas: 3, quorum: 2, spotChecks: true },
      constraints: { providers: [a!, b!, c!] },
    });
    await engine.schedule();
    for (const id of [a!, b!, c!]) await runAll(id, () => 'canary answer');
    const forged = await submitJob(engine, buyer, {
      verification: { replicas: 2, quorum: 2, spotChecks: true },
      constraints: { providers: [liar!, partner!] },
    });
    await engine.schedule();
    const got = await engine.claim(liar!, 8, 0);
    await runAll(partner!, () => 'a shared lie');
    now += 1_000;
    const forgedTask = (await view(forged, buyer)).tasks[0]!;
    const canaryIds = async () => (await store.tasks.canariesFor(await providerOf(d!), 50)).map((x) => x.taskId);
    // The liar lies on its spot-check (a replay of the honest canary) as well: caught, and the forged task, which
    // rested on it (its partner alone is below the quorum), is re-verified on a, b, c.
    for (const x of got) await engine.report(liar!, x.executionId, await completedReport(engine, x, 'a shared lie'));
    expect((await view(forged, buyer)).tasks[0]!.audit).toBe('pending');
    await engine.schedule();
    for (const id of [a!, b!, c!, d!]) await runAll(id, () => 'the honest answer');
    expect((await view(forged, buyer)).tasks[0]!.audit).toBe('changed');
    expect(await canaryIds()).not.toContain(forgedTask.id);
    expect(await store.ledger.audit()).toEqual([]);
  });

  it('plants no spot-check when no canary exists or the buyer did not allow replays', async () => {
    const buyer = await fundedBuyer(engine, 'buyer', 100);
    const [a, b, c] = await registerAgents(engine, 3);
    await submitJob(engine, buyer, { verification: { replicas: 3, quorum: 2 } }); // spotChecks off
    await engine.schedule();
    for (const id of [a!, b!, c!]) await runAll(id, () => 'same');
    await submitJob(engine, buyer, { verification: { replicas: 2, quorum: 2 } });
    await engine.schedule();
    const claimed = [
      ...(await engine.claim(a!, 8, 0)),
      ...(await engine.claim(b!, 8, 0)),
      ...(await engine.claim(c!, 8, 0)),
    ];
    expect(claimed).toHaveLength(2); // the job's two replicas, no spot-check
  });
});

describe('restedOn (core/spotchecks.ts)', () => {
  const t = (validProviders: string[], quorum = 2, alone = false) => ({ quorum, alone, validProviders });
  const none = new Set<string>();
  it('after a catch, re-verifies every task whose other uncaught support falls below its quorum', () => {
    expect(restedOn(t(['s'], 1, true), 's', none)).toBe(true);
    expect(restedOn(t(['s', 'a']), 's', none)).toBe(true); // 2-of-2: a alone is below the quorum
    expect(restedOn(t(['s', 'a', 'b']), 's', none)).toBe(false);
    expect(restedOn(t(['s', 'a', 'b']), 's', new Set(['a']))).toBe(true);
    expect(restedOn(t(['a', 'b']), 's', none)).toBe(false); // not its task
  });
  it('after an outvote, re-verifies only what no other uncaught provider agreed with', () => {
    expect(restedOn(t(['s'], 1, true), 's', none, 'outvoted')).toBe(true);
    expect(restedOn(t(['s', 'a']), 's', none, 'outvoted')).toBe(false);
    expect(restedOn(t(['s', 'a']), 's', new Set(['a']), 'outvoted')).toBe(true);
  });
});
